import { q, type Db, type Page } from './types';

export type AuditAction = 'create' | 'write' | 'delete';

export interface AuditEntryInput {
  actorId: string | null;
  actor: string;
  action: AuditAction;
  resourceType: string;
  resourceId: string;
  organizationId: string | null;
  diff: Record<string, unknown>;
  requestId: string | null;
  reason?: string | null;
}

export interface AuditEntry extends AuditEntryInput {
  id: string;
  time: Date;
  reason: string | null;
}

export interface AuditFilter {
  resourceType?: string;
  resourceId?: string;
  actor?: string;
  action?: AuditAction;
  since?: Date;
  until?: Date;
}

const COLUMNS = `id, time, actor_id AS "actorId", actor, action, resource_type AS "resourceType",
  resource_id AS "resourceId", organization_id AS "organizationId", diff, request_id AS "requestId", reason`;

export class AuditRepository {
  constructor(private readonly db: Db) {}

  /** Call inside the transaction of the change it records. */
  async insert(e: AuditEntryInput): Promise<void> {
    await this.db.query(
      `INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
      [
        e.actorId,
        e.actor,
        e.action,
        e.resourceType,
        e.resourceId,
        e.organizationId,
        JSON.stringify(e.diff),
        e.requestId,
        e.reason ?? null,
      ],
    );
  }

  async list(f: AuditFilter, page: Page): Promise<{ entries: AuditEntry[]; count: number }> {
    const where = `($1::text IS NULL OR resource_type = $1) AND ($2::text IS NULL OR resource_id = $2)
      AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
      AND ($5::timestamptz IS NULL OR time >= $5) AND ($6::timestamptz IS NULL OR time < $6)`;
    const params = [
      f.resourceType ?? null,
      f.resourceId ?? null,
      f.actor ?? null,
      f.action ?? null,
      f.since ?? null,
      f.until ?? null,
    ];
    // Sequential on purpose: inside a transaction both would share one connection anyway.
    const entries = await q<AuditEntry[]>(
      this.db,
      `SELECT ${COLUMNS} FROM audit_logs WHERE ${where} ORDER BY time DESC, id DESC LIMIT $7 OFFSET $8`,
      [...params, page.limit, page.offset],
    );
    const count = await q<{ n: number }[]>(
      this.db,
      `SELECT count(*)::int AS n FROM audit_logs WHERE ${where}`,
      params,
    );
    return { entries, count: count[0].n };
  }
}
