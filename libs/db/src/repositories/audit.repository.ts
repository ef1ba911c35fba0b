import { countFor, type Counted } from './paging';
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

  /** Several entries in one statement (call inside the transaction of the changes they record). */
  async insertMany(entries: readonly AuditEntryInput[]): Promise<void> {
    if (entries.length === 0) return;
    await q(
      this.db,
      `INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id, reason)
       SELECT e.actor_id, e.actor, e.action, e.resource_type, e.resource_id, e.organization_id, e.diff, e.request_id, e.reason
         FROM jsonb_to_recordset($1::jsonb) AS e(actor_id uuid, actor text, action text, resource_type text,
              resource_id text, organization_id uuid, diff jsonb, request_id text, reason text)`,
      [
        JSON.stringify(
          entries.map((e) => ({
            actor_id: e.actorId,
            actor: e.actor,
            action: e.action,
            resource_type: e.resourceType,
            resource_id: e.resourceId,
            organization_id: e.organizationId,
            diff: e.diff,
            request_id: e.requestId,
            reason: e.reason ?? null,
          })),
        ),
      ],
      'aigov_audit_insert_many',
    );
  }

  /**
   * Newest first. Only the filters given go into the statement, so each one can use its index
   * (list-indexes migration: one per filter column, ending in time and id).
   */
  async list(f: AuditFilter, page: Page): Promise<{ entries: AuditEntry[] } & Counted> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      conditions.push(sql.replace('?', `$${params.length}`));
    };
    if (f.resourceType !== undefined) add('resource_type = ?', f.resourceType);
    if (f.resourceId !== undefined) add('resource_id = ?', f.resourceId);
    if (f.actor !== undefined) add('actor = ?', f.actor);
    if (f.action !== undefined) add('action = ?', f.action);
    if (f.since !== undefined) add('time >= ?', f.since);
    if (f.until !== undefined) add('time < ?', f.until);
    const fromWhere = `FROM audit_logs${conditions.length ? ` WHERE ${conditions.join(' AND ')}` : ''}`;
    const n = params.length;
    const entries = await q<AuditEntry[]>(
      this.db,
      `SELECT ${COLUMNS} ${fromWhere} ORDER BY time DESC, id DESC LIMIT $${n + 1} OFFSET $${n + 2}`,
      [...params, page.limit, page.offset],
    );
    return { entries, ...(await countFor(this.db, page, entries.length, fromWhere, params)) };
  }
}
