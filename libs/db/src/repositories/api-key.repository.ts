import { countFor, type Counted } from './paging';
import { q, type ApiKey, type Db, type OrgRole, type Page, type SiteRole } from './types';

const KEY_COLUMNS = `id, user_id AS "userId", name, expires_at AS "expiresAt", last_used_at AS "lastUsedAt",
  created_at AS "createdAt"`;

/** What authentication needs about a key and its user, in one round trip. */
export interface KeyPrincipal {
  keyId: string;
  secretHash: Buffer;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  userId: string;
  username: string;
  status: 'active' | 'suspended';
  siteRoles: SiteRole[];
  /** organization id -> roles there, for every organization the user is a member of. */
  orgRoles: Record<string, OrgRole[]>;
  /** explicit group memberships (Everyone memberships follow from orgRoles' keys). */
  groupIds: string[];
}

/** Exported so that bench/api's bare baseline sends exactly this statement. */
export const KEY_PRINCIPAL_SQL = `SELECT k.id AS "keyId", k.secret_hash AS "secretHash", k.expires_at AS "expiresAt",
       k.last_used_at AS "lastUsedAt", u.id AS "userId", u.username, u.status, u.roles AS "siteRoles",
       coalesce((SELECT jsonb_object_agg(m.organization_id, to_jsonb(m.roles))
                   FROM organization_members m WHERE m.user_id = u.id), '{}'::jsonb) AS "orgRoles",
       coalesce((SELECT array_agg(gm.group_id) FROM group_members gm WHERE gm.user_id = u.id), '{}') AS "groupIds"
  FROM api_keys k JOIN users u ON u.id = k.user_id
 WHERE k.id = $1`;

export class ApiKeyRepository {
  constructor(private readonly db: Db) {}

  async create(k: {
    id: string;
    userId: string;
    name: string | null;
    secretHash: Buffer;
    expiresAt: Date | null;
  }): Promise<ApiKey> {
    const rows = await q<ApiKey[]>(
      this.db,
      `INSERT INTO api_keys (id, user_id, name, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING ${KEY_COLUMNS}`,
      [k.id, k.userId, k.name, k.secretHash, k.expiresAt],
    );
    return rows[0];
  }

  /** A page of the user's keys, oldest first. */
  async listPageForUser(userId: string, page: Page): Promise<{ keys: ApiKey[] } & Counted> {
    const fromWhere = 'FROM api_keys WHERE user_id = $1';
    const keys = await q<ApiKey[]>(
      this.db,
      `SELECT ${KEY_COLUMNS} ${fromWhere} ORDER BY created_at, id LIMIT $2 OFFSET $3`,
      [userId, page.limit, page.offset],
    );
    return { keys, ...(await countFor(this.db, page, keys.length, fromWhere, [userId])) };
  }

  async listForUser(userId: string): Promise<ApiKey[]> {
    return q<ApiKey[]>(
      this.db,
      `SELECT ${KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id`,
      [userId],
    );
  }

  async get(userId: string, id: string): Promise<ApiKey | null> {
    const rows = await q<ApiKey[]>(
      this.db,
      `SELECT ${KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND id = $2`,
      [userId, id],
    );
    return rows[0] ?? null;
  }

  async delete(userId: string, id: string): Promise<boolean> {
    const rows = await q<{ id: string }[]>(
      this.db,
      'DELETE FROM api_keys WHERE user_id = $1 AND id = $2 RETURNING id',
      [userId, id],
    );
    return rows.length > 0;
  }

  /** The key, its user, the user's organization roles and group memberships: one query. */
  async getPrincipal(keyId: string): Promise<KeyPrincipal | null> {
    const rows = await q<KeyPrincipal[]>(this.db, KEY_PRINCIPAL_SQL, [keyId], 'aigov_key_principal');
    return rows[0] ?? null;
  }

  /**
   * Records use at most once a minute per key, so authentication does not write on every
   * request: the WHERE makes the statement a no-op while the stamp is fresh.
   */
  async touch(keyId: string): Promise<void> {
    await this.db.query(
      `UPDATE api_keys SET last_used_at = now()
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [keyId],
    );
  }
}
