import { q, type Db, type Group, type GroupMember, type Page } from './types';
import { countFor, type Counted } from './paging';

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

/** Groups and their members (migrations/). Invariants live in the database. */
export class GroupRepository {
  constructor(private readonly db: Db) {}

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
