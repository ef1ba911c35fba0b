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
import { countFor, type Counted } from './paging';

const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;
const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;
const GROUP_COLUMNS = `id, organization_id AS "organizationId", name, display_name AS "displayName",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

const isEveryone = (g: Group): boolean => g.id === g.organizationId;

/**
 * `FROM ... WHERE` of a group's memberships (`$1` the group id), alone for counting or joined to
 * their users. The Everyone group has no rows in group_members: its members are the organization's.
 */
const membershipsOf = (g: Group): string =>
  isEveryone(g)
    ? 'FROM organization_members m WHERE m.organization_id = $1'
    : 'FROM group_members m WHERE m.group_id = $1';
const membersOf = (g: Group): string =>
  membershipsOf(g).replace(' WHERE ', ' JOIN users u ON u.id = m.user_id WHERE ');

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
  ): Promise<{ organizations: Organization[] } & Counted> {
    const fromWhere = `FROM organizations WHERE $1::uuid[] IS NULL OR id = ANY($1::uuid[])`;
    const organizations = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} ${fromWhere} ORDER BY name LIMIT $2 OFFSET $3`,
      [ids, page.limit, page.offset],
    );
    return { organizations, ...(await countFor(this.db, page, organizations.length, fromWhere, [ids])) };
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
  ): Promise<{ members: OrganizationMember[] } & Counted> {
    const members = await q<OrganizationMember[]>(
      this.db,
      `SELECT m.organization_id AS "organizationId", m.user_id AS "userId", u.username, u.name, m.roles,
              m.created_at AS "createdAt"
         FROM organization_members m JOIN users u ON u.id = m.user_id
        WHERE m.organization_id = $1 ORDER BY u.username LIMIT $2 OFFSET $3`,
      [organizationId, page.limit, page.offset],
    );
    const fromWhere = 'FROM organization_members WHERE organization_id = $1';
    return { members, ...(await countFor(this.db, page, members.length, fromWhere, [organizationId])) };
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

  /**
   * Groups of an organization, Everyone first, then by name (the order of groups_list_order_idx).
   * `visibleTo` null: all of them; else only the groups that user is a member of (and the
   * Everyone group when `everyone` is set). The filter runs here, so that paging and `count`
   * see only what the caller may read.
   */
  async listGroups(
    organizationId: string,
    visibleTo: { userId: string; everyone: boolean } | null,
    page: Page,
  ): Promise<{ groups: Group[] } & Counted> {
    const fromWhere = `FROM groups g WHERE g.organization_id = $1 AND ($2::uuid IS NULL
        OR (g.id = g.organization_id AND $3::boolean)
        OR g.id IN (SELECT gm.group_id FROM group_members gm WHERE gm.user_id = $2))`;
    const params = [organizationId, visibleTo?.userId ?? null, visibleTo?.everyone ?? false];
    const groups = await q<Group[]>(
      this.db,
      `SELECT ${GROUP_COLUMNS} ${fromWhere} ORDER BY (g.id <> g.organization_id), g.name LIMIT $4 OFFSET $5`,
      [...params, page.limit, page.offset],
    );
    return { groups, ...(await countFor(this.db, page, groups.length, fromWhere, params)) };
  }

  /** The group's members, by username (the Everyone group's are the organization's members). */
  async listGroupMembers(group: Group, page: Page): Promise<{ members: GroupMember[] } & Counted> {
    const members = await this.pageOfMembers(group, page);
    return { members, ...(await countFor(this.db, page, members.length, membershipsOf(group), [group.id])) };
  }

  /** The first `limit` members by username and the exact member count (an index-only count). */
  async getGroupMemberPreview(
    group: Group,
    limit: number,
  ): Promise<{ memberCount: number; members: GroupMember[] }> {
    const members = await this.pageOfMembers(group, { limit, offset: 0 });
    if (members.length < limit) return { memberCount: members.length, members };
    const rows = await q<{ n: number }[]>(this.db, `SELECT count(*)::int AS n ${membershipsOf(group)}`, [
      group.id,
    ]);
    return { memberCount: rows[0].n, members };
  }

  private async pageOfMembers(group: Group, page: Page): Promise<GroupMember[]> {
    return q<GroupMember[]>(
      this.db,
      `SELECT m.user_id AS "userId", u.username, u.name, m.created_at AS "createdAt"
         ${membersOf(group)} ORDER BY u.username LIMIT $2 OFFSET $3`,
      [group.id, page.limit, page.offset],
    );
  }

  /** Those of `userIds` that are members of the group (at most as many as asked for). */
  async listGroupMembersAmong(group: Group, userIds: string[]): Promise<GroupMember[]> {
    if (userIds.length === 0) return [];
    return q<GroupMember[]>(
      this.db,
      `SELECT m.user_id AS "userId", u.username, u.name, m.created_at AS "createdAt"
         ${membersOf(group)} AND m.user_id = ANY($2::uuid[]) ORDER BY u.username`,
      [group.id, userIds],
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
