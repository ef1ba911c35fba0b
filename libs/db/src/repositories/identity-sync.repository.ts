import { q, type Db, type Group, type OrgRole, type Organization, type User } from './types';

/** What identity_versions keeps a time for: an entity, or a membership `<org or group>/<user>`. */
export type IdentityEntity = 'user' | 'organization' | 'group' | 'organization_member' | 'group_member';

export interface SyncedUser {
  id: string;
  username: string;
  email: string;
  /** undefined: keep the current name (null on creation). */
  name?: string | null;
  /** undefined: keep the current status (active on creation). */
  status?: User['status'];
}

const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;
const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;
const GROUP_COLUMNS = `id, organization_id AS "organizationId", name, display_name AS "displayName",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

/**
 * The writes of the membership listener: identities by the ids the identity system gave them,
 * the ids of applied events and the time of the last change applied to each entity and
 * membership (migrations/1764900000000-identity-sync.ts). Statements that touch many rows lock
 * them in key order, so concurrent listeners cannot deadlock on one another within one kind.
 */
export class IdentitySyncRepository {
  constructor(private readonly db: Db) {}

  /** Records the event as applied; false when it was applied before (a duplicate). */
  async markEventApplied(eventId: string, type: string, time: Date): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      `INSERT INTO identity_applied_events (event_id, type, event_time) VALUES ($1, $2, $3)
       ON CONFLICT (event_id) DO NOTHING RETURNING 1`,
      [eventId, type, time],
    );
    return rows.length > 0;
  }

  /**
   * Sets the last applied time of each key to `time` where it is not newer already, locking
   * those rows until the transaction ends. Returns the keys claimed: the others have seen a
   * newer event, which wins. An equal time is claimed (applied again).
   */
  async claimVersions(
    entity: IdentityEntity,
    keys: readonly string[],
    time: Date,
    eventId: string,
  ): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await q<{ key: string }[]>(
      this.db,
      `INSERT INTO identity_versions AS v (entity, key, time, event_id)
       SELECT $1, k, $3, $4 FROM unnest($2::text[]) AS k ORDER BY k
       ON CONFLICT (entity, key) DO UPDATE SET time = EXCLUDED.time, event_id = EXCLUDED.event_id
        WHERE v.time <= EXCLUDED.time
       RETURNING key`,
      [entity, [...new Set(keys)], time, eventId],
    );
    return new Set(rows.map((r) => r.key));
  }

  /** The time of the last change applied to the key (kept after a deletion), or null. */
  async versionOf(entity: IdentityEntity, key: string): Promise<Date | null> {
    const rows = await q<{ time: Date }[]>(
      this.db,
      'SELECT time FROM identity_versions WHERE entity = $1 AND key = $2',
      [entity, key],
    );
    return rows[0]?.time ?? null;
  }

  // Users

  async lockUser(id: string): Promise<User | null> {
    const rows = await q<User[]>(this.db, `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0] ?? null;
  }

  async insertUser(u: SyncedUser): Promise<User> {
    const rows = await q<User[]>(
      this.db,
      `INSERT INTO users (id, username, email, name, status) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${USER_COLUMNS}`,
      [u.id, u.username, u.email, u.name ?? null, u.status ?? 'active'],
    );
    return rows[0];
  }

  async updateUser(u: SyncedUser): Promise<User | null> {
    const rows = await q<User[]>(
      this.db,
      `UPDATE users SET username = $2, email = $3,
              name = CASE WHEN $4::boolean THEN $5 ELSE name END,
              status = coalesce($6, status), updated_at = now()
        WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [u.id, u.username, u.email, u.name !== undefined, u.name ?? null, u.status ?? null],
    );
    return rows[0] ?? null;
  }

  async deleteUser(id: string): Promise<boolean> {
    const rows = await q<unknown[]>(this.db, 'DELETE FROM users WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  /** The listed users that do not exist or differ from the listing (snapshots). */
  async usersDifferentFrom(users: readonly SyncedUser[]): Promise<string[]> {
    if (users.length === 0) return [];
    const rows = await q<{ id: string }[]>(
      this.db,
      `SELECT i.id FROM jsonb_to_recordset($1::jsonb)
                AS i(id uuid, username text, email text, name text, has_name boolean, status text)
         LEFT JOIN users u ON u.id = i.id
        WHERE u.id IS NULL OR u.username <> i.username OR u.email <> i.email
           OR (i.has_name AND u.name IS DISTINCT FROM i.name)
           OR (i.status IS NOT NULL AND u.status <> i.status)`,
      [
        JSON.stringify(
          users.map((u) => ({
            ...u,
            has_name: u.name !== undefined,
            name: u.name ?? null,
            status: u.status ?? null,
          })),
        ),
      ],
    );
    return rows.map((r) => r.id);
  }

  async usernameOf(id: string): Promise<string | null> {
    const rows = await q<{ username: string }[]>(this.db, 'SELECT username FROM users WHERE id = $1', [id]);
    return rows[0]?.username ?? null;
  }

  /** Which of the ids are users. */
  async existingUserIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await q<{ id: string }[]>(this.db, 'SELECT id FROM users WHERE id = ANY($1::uuid[])', [
      [...ids],
    ]);
    return new Set(rows.map((r) => r.id));
  }

  // Organizations

  async lockOrganization(id: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} FROM organizations WHERE id = $1 FOR UPDATE`,
      [id],
    );
    return rows[0] ?? null;
  }

  /** Creates the organization with its Everyone group (a trigger adds the group). */
  async insertOrganization(o: {
    id: string;
    name: string;
    displayName: string | null;
  }): Promise<Organization> {
    const rows = await q<Organization[]>(
      this.db,
      `INSERT INTO organizations (id, name, display_name) VALUES ($1, $2, $3) RETURNING ${ORG_COLUMNS}`,
      [o.id, o.name, o.displayName],
    );
    return rows[0];
  }

  /** `displayName` undefined keeps the current one. */
  async updateOrganization(o: {
    id: string;
    name: string;
    displayName?: string | null;
  }): Promise<Organization | null> {
    const rows = await q<Organization[]>(
      this.db,
      `UPDATE organizations SET name = $2, display_name = CASE WHEN $3::boolean THEN $4 ELSE display_name END,
              updated_at = now()
        WHERE id = $1 RETURNING ${ORG_COLUMNS}`,
      [o.id, o.name, o.displayName !== undefined, o.displayName ?? null],
    );
    return rows[0] ?? null;
  }

  async deleteOrganization(id: string): Promise<boolean> {
    const rows = await q<unknown[]>(this.db, 'DELETE FROM organizations WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  /** True when the id is an organization's, hence its Everyone group's. */
  async isOrganization(id: string): Promise<boolean> {
    const rows = await q<unknown[]>(this.db, 'SELECT 1 FROM organizations WHERE id = $1', [id]);
    return rows.length > 0;
  }

  // Organization members

  /** The member's roles, the row locked; null when not a member. */
  async lockOrganizationMember(organizationId: string, userId: string): Promise<OrgRole[] | null> {
    const rows = await q<{ roles: OrgRole[] }[]>(
      this.db,
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE',
      [organizationId, userId],
    );
    return rows[0]?.roles ?? null;
  }

  async insertOrganizationMember(organizationId: string, userId: string, roles: OrgRole[]): Promise<void> {
    await q(
      this.db,
      'INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3)',
      [organizationId, userId, roles],
    );
  }

  async setOrganizationMemberRoles(organizationId: string, userId: string, roles: OrgRole[]): Promise<void> {
    await q(
      this.db,
      `UPDATE organization_members SET roles = $3::text[], updated_at = now()
        WHERE organization_id = $1 AND user_id = $2`,
      [organizationId, userId, roles],
    );
  }

  async deleteOrganizationMember(organizationId: string, userId: string): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      'DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 RETURNING user_id',
      [organizationId, userId],
    );
    return rows.length > 0;
  }

  /** Members of the organization: user id -> roles. */
  async organizationMembers(organizationId: string): Promise<Map<string, OrgRole[]>> {
    const rows = await q<{ user_id: string; roles: OrgRole[] }[]>(
      this.db,
      'SELECT user_id, roles FROM organization_members WHERE organization_id = $1',
      [organizationId],
    );
    return new Map(rows.map((r) => [r.user_id, r.roles]));
  }

  /** Organizations the user is a member of. */
  async organizationsOfUser(userId: string): Promise<string[]> {
    const rows = await q<{ id: string }[]>(
      this.db,
      'SELECT organization_id AS id FROM organization_members WHERE user_id = $1',
      [userId],
    );
    return rows.map((r) => r.id);
  }

  // Groups

  async lockGroup(id: string): Promise<Group | null> {
    const rows = await q<Group[]>(this.db, `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1 FOR UPDATE`, [
      id,
    ]);
    return rows[0] ?? null;
  }

  async insertGroup(g: {
    id: string;
    organizationId: string;
    name: string;
    displayName: string | null;
  }): Promise<Group> {
    const rows = await q<Group[]>(
      this.db,
      `INSERT INTO groups (id, organization_id, name, display_name) VALUES ($1, $2, $3, $4)
       RETURNING ${GROUP_COLUMNS}`,
      [g.id, g.organizationId, g.name, g.displayName],
    );
    return rows[0];
  }

  /** `displayName` undefined keeps the current one. */
  async updateGroup(g: { id: string; name: string; displayName?: string | null }): Promise<Group | null> {
    const rows = await q<Group[]>(
      this.db,
      `UPDATE groups SET name = $2, display_name = CASE WHEN $3::boolean THEN $4 ELSE display_name END,
              updated_at = now()
        WHERE id = $1 RETURNING ${GROUP_COLUMNS}`,
      [g.id, g.name, g.displayName !== undefined, g.displayName ?? null],
    );
    return rows[0] ?? null;
  }

  async deleteGroup(id: string): Promise<boolean> {
    const rows = await q<unknown[]>(this.db, 'DELETE FROM groups WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  /** The organization's groups other than Everyone. */
  async groupsOfOrganization(organizationId: string): Promise<Group[]> {
    return q<Group[]>(
      this.db,
      `SELECT ${GROUP_COLUMNS} FROM groups WHERE organization_id = $1 AND id <> organization_id ORDER BY id`,
      [organizationId],
    );
  }

  // Group members

  async addGroupMember(groupId: string, userId: string): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      `INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING user_id`,
      [groupId, userId],
    );
    return rows.length > 0;
  }

  async removeGroupMember(groupId: string, userId: string): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      'DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING user_id',
      [groupId, userId],
    );
    return rows.length > 0;
  }

  /** Explicit group memberships (`group id/user id`) in the organization, optionally of one user. */
  async groupMembershipsInOrganization(
    organizationId: string,
    userId: string | null = null,
  ): Promise<string[]> {
    const rows = await q<{ key: string }[]>(
      this.db,
      `SELECT gm.group_id || '/' || gm.user_id AS key FROM group_members gm JOIN groups g ON g.id = gm.group_id
        WHERE g.organization_id = $1 AND ($2::uuid IS NULL OR gm.user_id = $2)`,
      [organizationId, userId],
    );
    return rows.map((r) => r.key);
  }

  /** Explicit group memberships (`group id/user id`) of the user, or of the group. */
  async groupMembershipsOf(by: { userId: string } | { groupId: string }): Promise<string[]> {
    const rows = await q<{ key: string }[]>(
      this.db,
      `SELECT group_id || '/' || user_id AS key FROM group_members WHERE ${'userId' in by ? 'user_id' : 'group_id'} = $1`,
      ['userId' in by ? by.userId : by.groupId],
    );
    return rows.map((r) => r.key);
  }

  // Snapshot parts

  /** Keeps one part of a split snapshot; false when that part was kept already. */
  async storeSnapshotPart(p: {
    snapshotId: string;
    index: number;
    count: number;
    organizationId: string;
    eventId: string;
    time: Date;
    data: unknown;
  }): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      `INSERT INTO identity_snapshot_parts (snapshot_id, part_index, part_count, organization_id, event_id, event_time, data)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT DO NOTHING RETURNING 1`,
      [p.snapshotId, p.index, p.count, p.organizationId, p.eventId, p.time, JSON.stringify(p.data)],
    );
    return rows.length > 0;
  }

  /** The parts of the snapshot kept so far, in order, locked (the last part's arrival completes it). */
  async snapshotParts(
    snapshotId: string,
  ): Promise<{ index: number; count: number; organizationId: string; time: Date; data: unknown }[]> {
    return q(
      this.db,
      `SELECT part_index AS index, part_count AS count, organization_id AS "organizationId", event_time AS time, data
         FROM identity_snapshot_parts WHERE snapshot_id = $1 ORDER BY part_index FOR UPDATE`,
      [snapshotId],
    );
  }

  async deleteSnapshotParts(snapshotId: string): Promise<void> {
    await q(this.db, 'DELETE FROM identity_snapshot_parts WHERE snapshot_id = $1', [snapshotId]);
  }

  /** Parts of snapshots that never completed, received longer ago than `olderThanHours`. */
  async deleteAbandonedSnapshotParts(olderThanHours: number): Promise<number> {
    const rows = await q<unknown[]>(
      this.db,
      `DELETE FROM identity_snapshot_parts WHERE received_at < now() - make_interval(hours => $1) RETURNING 1`,
      [olderThanHours],
    );
    return rows.length;
  }
}
