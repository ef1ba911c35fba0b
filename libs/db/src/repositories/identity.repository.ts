import {
  q,
  type Db,
  type Group,
  type GroupMember,
  type Organization,
  type OrganizationMember,
  type OrgRole,
  type Page,
  type SiteRole,
  type User,
} from './types';

const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;
const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;
const GROUP_COLUMNS = `id, organization_id AS "organizationId", name, display_name AS "displayName",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

/** The identity tables (migrations/). Invariants live in the database; this is plain SQL. */
export class IdentityRepository {
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

  async listUsers(search: string | null, page: Page): Promise<{ users: User[]; count: number }> {
    const pattern = search ? `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    const rows = await q<(User & { total: number })[]>(
      this.db,
      `SELECT ${USER_COLUMNS}, count(*) OVER ()::int AS total FROM users
        WHERE $1::text IS NULL OR username ILIKE $1 OR email ILIKE $1 OR coalesce(name, '') ILIKE $1
        ORDER BY username LIMIT $2 OFFSET $3`,
      [pattern, page.limit, page.offset],
    );
    const count = rows[0]?.total ?? (await this.countMatching(pattern));
    return { users: rows.map(({ total: _total, ...u }) => u), count };
  }

  private async countMatching(pattern: string | null): Promise<number> {
    const rows = await q<{ n: number }[]>(
      this.db,
      `SELECT count(*)::int AS n FROM users
        WHERE $1::text IS NULL OR username ILIKE $1 OR email ILIKE $1 OR coalesce(name, '') ILIKE $1`,
      [pattern],
    );
    return rows[0].n;
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

  async createOrganization(o: { name: string; displayName: string | null }): Promise<Organization> {
    const rows = await q<Organization[]>(
      this.db,
      `INSERT INTO organizations (name, display_name) VALUES ($1, $2) RETURNING ${ORG_COLUMNS}`,
      [o.name, o.displayName],
    );
    return rows[0];
  }

  async getOrganizationById(id: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(this.db, `SELECT ${ORG_COLUMNS} FROM organizations WHERE id = $1`, [
      id,
    ]);
    return rows[0] ?? null;
  }

  async getOrganizationByName(name: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} FROM organizations WHERE name = $1`,
      [name],
    );
    return rows[0] ?? null;
  }

  /** `ids` null: all organizations. */
  async listOrganizations(
    ids: string[] | null,
    page: Page,
  ): Promise<{ organizations: Organization[]; count: number }> {
    const rows = await q<(Organization & { total: number })[]>(
      this.db,
      `SELECT ${ORG_COLUMNS}, count(*) OVER ()::int AS total FROM organizations
        WHERE $1::uuid[] IS NULL OR id = ANY($1::uuid[]) ORDER BY name LIMIT $2 OFFSET $3`,
      [ids, page.limit, page.offset],
    );
    let count = rows[0]?.total;
    if (count === undefined) {
      const c = await q<{ n: number }[]>(
        this.db,
        `SELECT count(*)::int AS n FROM organizations WHERE $1::uuid[] IS NULL OR id = ANY($1::uuid[])`,
        [ids],
      );
      count = c[0].n;
    }
    return { organizations: rows.map(({ total: _t, ...o }) => o), count };
  }

  async getOrganizationMember(organizationId: string, userId: string): Promise<OrganizationMember | null> {
    const rows = await q<OrganizationMember[]>(
      this.db,
      `SELECT m.organization_id AS "organizationId", m.user_id AS "userId", u.username, u.name, m.roles,
              m.created_at AS "createdAt"
         FROM organization_members m JOIN users u ON u.id = m.user_id
        WHERE m.organization_id = $1 AND m.user_id = $2`,
      [organizationId, userId],
    );
    return rows[0] ?? null;
  }

  /** The member's roles, the row locked until the transaction ends; null when not a member. */
  async lockOrganizationMemberRoles(organizationId: string, userId: string): Promise<OrgRole[] | null> {
    const rows = await q<{ roles: OrgRole[] }[]>(
      this.db,
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE',
      [organizationId, userId],
    );
    return rows[0]?.roles ?? null;
  }

  /**
   * Adds the membership, or updates its roles when `roles` is given; a missing `roles` keeps
   * existing ones. Returns the member and the state before (null when it was created).
   */
  async upsertOrganizationMember(
    organizationId: string,
    userId: string,
    roles: OrgRole[] | null,
  ): Promise<{ before: OrganizationMember | null; after: OrganizationMember }> {
    // Insert first: exactly one of two racing adds creates the row, the other sees a conflict
    // and takes the update path below with the row locked, so create/write is never doubled.
    const inserted = await q<{ user_id: string }[]>(
      this.db,
      `INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, coalesce($3::text[], '{}'))
       ON CONFLICT (organization_id, user_id) DO NOTHING RETURNING user_id`,
      [organizationId, userId, roles],
    );
    let before: { roles: OrgRole[] } | null = null;
    if (inserted.length === 0) {
      const locked = await q<{ roles: OrgRole[] }[]>(
        this.db,
        `SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE`,
        [organizationId, userId],
      );
      before = locked[0] ?? null;
      if (roles !== null) {
        await q(
          this.db,
          `UPDATE organization_members SET roles = $3::text[],
                  updated_at = CASE WHEN roles IS DISTINCT FROM $3::text[] THEN now() ELSE updated_at END
            WHERE organization_id = $1 AND user_id = $2`,
          [organizationId, userId, roles],
        );
      }
    }
    const after = await this.getOrganizationMember(organizationId, userId);
    if (!after) throw new Error('organization member vanished inside its own transaction');
    return { before: before ? { ...after, roles: before.roles } : null, after };
  }

  async deleteOrganizationMember(organizationId: string, userId: string): Promise<OrganizationMember | null> {
    const existing = await this.getOrganizationMember(organizationId, userId);
    if (!existing) return null;
    const rows = await q<{ user_id: string }[]>(
      this.db,
      'DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 RETURNING user_id',
      [organizationId, userId],
    );
    return rows.length > 0 ? existing : null;
  }

  async listOrganizationMembers(
    organizationId: string,
    page: Page,
  ): Promise<{ members: OrganizationMember[]; count: number }> {
    const rows = await q<(OrganizationMember & { total: number })[]>(
      this.db,
      `SELECT m.organization_id AS "organizationId", m.user_id AS "userId", u.username, u.name, m.roles,
              m.created_at AS "createdAt", count(*) OVER ()::int AS total
         FROM organization_members m JOIN users u ON u.id = m.user_id
        WHERE m.organization_id = $1 ORDER BY u.username LIMIT $2 OFFSET $3`,
      [organizationId, page.limit, page.offset],
    );
    let count = rows[0]?.total;
    if (count === undefined) {
      const c = await q<{ n: number }[]>(
        this.db,
        'SELECT count(*)::int AS n FROM organization_members WHERE organization_id = $1',
        [organizationId],
      );
      count = c[0].n;
    }
    return { members: rows.map(({ total: _t, ...m }) => m), count };
  }

  async createGroup(g: { organizationId: string; name: string; displayName: string | null }): Promise<Group> {
    const rows = await q<Group[]>(
      this.db,
      `INSERT INTO groups (organization_id, name, display_name) VALUES ($1, $2, $3) RETURNING ${GROUP_COLUMNS}`,
      [g.organizationId, g.name, g.displayName],
    );
    return rows[0];
  }

  async getGroup(id: string): Promise<Group | null> {
    const rows = await q<Group[]>(this.db, `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async listGroups(organizationId: string, page: Page): Promise<{ groups: Group[]; count: number }> {
    const rows = await q<(Group & { total: number })[]>(
      this.db,
      `SELECT ${GROUP_COLUMNS}, count(*) OVER ()::int AS total FROM groups
        WHERE organization_id = $1 ORDER BY (id = organization_id) DESC, name LIMIT $2 OFFSET $3`,
      [organizationId, page.limit, page.offset],
    );
    let count = rows[0]?.total;
    if (count === undefined) {
      const c = await q<{ n: number }[]>(
        this.db,
        'SELECT count(*)::int AS n FROM groups WHERE organization_id = $1',
        [organizationId],
      );
      count = c[0].n;
    }
    return { groups: rows.map(({ total: _t, ...g }) => g), count };
  }

  /** Members of a group; for the Everyone group, the organization's members. */
  async listGroupMembers(group: Group): Promise<GroupMember[]> {
    return q<GroupMember[]>(
      this.db,
      `SELECT e.user_id AS "userId", u.username, u.name
         FROM group_members_expanded e JOIN users u ON u.id = e.user_id
        WHERE e.group_id = $1 ORDER BY u.username`,
      [group.id],
    );
  }

  async isGroupMember(groupId: string, userId: string): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      'SELECT 1 FROM group_members_expanded WHERE group_id = $1 AND user_id = $2',
      [groupId, userId],
    );
    return rows.length > 0;
  }

  async updateGroup(
    id: string,
    patch: { name?: string; displayName?: string | null },
  ): Promise<Group | null> {
    const rows = await q<Group[]>(
      this.db,
      `UPDATE groups SET
          name = CASE WHEN $2::boolean THEN $3 ELSE name END,
          display_name = CASE WHEN $4::boolean THEN $5 ELSE display_name END,
          updated_at = now()
        WHERE id = $1 RETURNING ${GROUP_COLUMNS}`,
      [
        id,
        patch.name !== undefined,
        patch.name ?? null,
        patch.displayName !== undefined,
        patch.displayName ?? null,
      ],
    );
    return rows[0] ?? null;
  }

  /**
   * Locks the group row for the rest of the transaction: changes to one group's name and
   * members serialize on it, so two concurrent PATCHes end as if one ran after the other.
   */
  async lockGroup(id: string): Promise<boolean> {
    const rows = await q<{ id: string }[]>(this.db, 'SELECT id FROM groups WHERE id = $1 FOR UPDATE', [id]);
    return rows.length > 0;
  }

  /**
   * Adds members in one statement (existing ones are skipped). Rows are inserted in user id
   * order, so concurrent writers take their locks in the same order and cannot deadlock on
   * each other. Returns the user ids actually added.
   */
  async addGroupMembers(groupId: string, userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const rows = await q<{ user_id: string }[]>(
      this.db,
      `INSERT INTO group_members (group_id, user_id)
       SELECT $1, u FROM unnest($2::uuid[]) AS u ORDER BY u
       ON CONFLICT DO NOTHING RETURNING user_id`,
      [groupId, userIds],
    );
    return rows.map((r) => r.user_id);
  }

  /** Removes members, locking the rows in user id order first. Returns the user ids removed. */
  async removeGroupMembers(groupId: string, userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const rows = await q<{ user_id: string }[]>(
      this.db,
      `WITH doomed AS (
         SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2::uuid[])
          ORDER BY user_id FOR UPDATE)
       DELETE FROM group_members g USING doomed d
        WHERE g.group_id = $1 AND g.user_id = d.user_id RETURNING g.user_id`,
      [groupId, userIds],
    );
    return rows.map((r) => r.user_id);
  }

  async deleteGroup(id: string): Promise<boolean> {
    const rows = await q<{ id: string }[]>(this.db, 'DELETE FROM groups WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }
}
