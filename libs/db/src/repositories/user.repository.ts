import { q, type Db, type Page, type SiteRole, type User } from './types';
import { countFor, type Counted } from './paging';

const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Users and their site roles and status (migrations/). Invariants live in the database. */
export class UserRepository {
  constructor(private readonly db: Db) {}

  async countUsers(): Promise<number> {
    const rows = await q<{ n: number }[]>(this.db, 'SELECT count(*)::int AS n FROM users');
    return rows[0].n;
  }

  async createUser(u: {
    username: string;
    email: string;
    name: string | null;
    roles: SiteRole[];
  }): Promise<User> {
    const rows = await q<User[]>(
      this.db,
      `INSERT INTO users (username, email, name, roles) VALUES ($1, $2, $3, $4::text[]) RETURNING ${USER_COLUMNS}`,
      [u.username, u.email, u.name, u.roles],
    );
    return rows[0];
  }

  async getUserById(id: string): Promise<User | null> {
    const rows = await q<User[]>(this.db, `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async getUserByUsername(username: string): Promise<User | null> {
    const rows = await q<User[]>(this.db, `SELECT ${USER_COLUMNS} FROM users WHERE username = $1`, [
      username,
    ]);
    return rows[0] ?? null;
  }

  /** `search`: a substring of the username, email or name (case-insensitive), or null for all. */
  async listUsers(search: string | null, page: Page): Promise<{ users: User[] } & Counted> {
    const pattern = search ? `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    // Trigram indexes (list-indexes migration) serve the ILIKEs; without a search the page walks
    // the username index.
    const fromWhere = pattern
      ? `FROM users WHERE username ILIKE $1 OR email ILIKE $1 OR name ILIKE $1`
      : `FROM users`;
    const params = pattern ? [pattern] : [];
    const n = params.length;
    const users = await q<User[]>(
      this.db,
      `SELECT ${USER_COLUMNS} ${fromWhere} ORDER BY username LIMIT $${n + 1} OFFSET $${n + 2}`,
      [...params, page.limit, page.offset],
    );
    return { users, ...(await countFor(this.db, page, users.length, fromWhere, params)) };
  }

  async deleteUser(id: string): Promise<boolean> {
    const rows = await q<{ id: string }[]>(this.db, 'DELETE FROM users WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  async setUserRoles(id: string, roles: SiteRole[]): Promise<User | null> {
    const rows = await q<User[]>(
      this.db,
      `UPDATE users SET roles = $2::text[], updated_at = now() WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [id, roles],
    );
    return rows[0] ?? null;
  }

  /** The user's row, locked until the transaction ends: checks on it then hold for the write. */
  async lockUser(id: string): Promise<User | null> {
    const rows = await q<User[]>(this.db, `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0] ?? null;
  }

  async setUserStatus(id: string, status: User['status']): Promise<User | null> {
    const rows = await q<User[]>(
      this.db,
      `UPDATE users SET status = $2,
              updated_at = CASE WHEN status IS DISTINCT FROM $2 THEN now() ELSE updated_at END
        WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [id, status],
    );
    return rows[0] ?? null;
  }

  /** Organizations the user belongs to, earliest membership first. */
  async organizationIdsOfUser(userId: string): Promise<string[]> {
    const rows = await q<{ id: string }[]>(
      this.db,
      `SELECT organization_id AS id FROM organization_members WHERE user_id = $1 ORDER BY created_at, organization_id`,
      [userId],
    );
    return rows.map((r) => r.id);
  }
}
