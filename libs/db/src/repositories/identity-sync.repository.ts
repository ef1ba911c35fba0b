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

const versionSql = (entity: string, key: string) =>
  `(SELECT time FROM identity_versions WHERE entity = ${entity} AND key = (${key})::text)`;

/** The event that begins: its id, type and time, and the keys it claims. */
export interface EventStart {
  eventId: string;
  type: string;
  time: Date;
  entity: IdentityEntity;
  keys: readonly string[];
}

/** `blocked`: the gate of a begin method refused; nothing was written (see its context). */
export type BeginState = 'fresh' | 'duplicate' | 'stale' | 'blocked';

export interface MemberContext {
  applied: boolean;
  memberVersion: Date | null;
  organizationExists: boolean;
  organizationVersion: Date | null;
  /** null when the user does not exist */
  username: string | null;
  userVersion: Date | null;
}

export interface GroupMemberContext {
  applied: boolean;
  /** the group id is an organization's: its Everyone group */
  everyone: boolean;
  memberVersion: Date | null;
  /** null when the group does not exist */
  organizationId: string | null;
  groupName: string | null;
  groupVersion: Date | null;
  username: string | null;
  userVersion: Date | null;
  organizationMember: boolean;
  organizationMemberVersion: Date | null;
  /** when the user's membership of the group's organization last ended (see membershipEndedKey) */
  membershipEnded: Date | null;
}

/** One `identity.group.member.added` (`added`) or `.removed` event, for applyGroupMemberEvents. */
export interface GroupMemberEvent {
  eventId: string;
  type: string;
  time: Date;
  /** `<group id>/<user id>`, as the event names them: the event's identity_versions key */
  key: string;
  groupId: string;
  userId: string;
  added: boolean;
}

/**
 * What became of one of them: `state` as a begin method says it (`blocked`: an add the gate of
 * applyGroupMemberEvents refused, or a removal from an Everyone group: `context.everyone`), the
 * context that gate reads (read for removals too: the names for their audit entries), and
 * whether the membership was inserted or deleted (false when it already was as the event says).
 */
export interface GroupMemberEventResult {
  state: BeginState;
  context: GroupMemberContext;
  written: boolean;
}

/**
 * The writes of the membership listener: identities by the ids the identity system gave them,
 * the ids of applied events and the time of the last change applied to each entity and
 * membership (migrations/1764900000000-identity-sync.ts). Statements that touch many rows lock
 * them in key order, so concurrent listeners cannot deadlock on one another within one kind.
 */
export class IdentitySyncRepository {
  constructor(private readonly db: Db) {}

  /**
   * Prepares the open transaction for a batch of events. Every statement of the listener looks
   * rows up by key, and it runs them as prepared statements whose plan is cached per connection:
   * a plan made while a table was freshly analyzed and empty (right after installation, say)
   * scans the table sequentially and keeps doing so as it grows, until autovacuum analyzes it
   * again. So, for this transaction only, the planner is told not to choose sequential scans.
   */
  async beginBatch(): Promise<void> {
    await q(this.db, 'SET LOCAL enable_seqscan = off');
  }

  /** Records the event as applied; false when it was applied before (a duplicate). */
  async markEventApplied(eventId: string, type: string, time: Date): Promise<boolean> {
    const rows = await q<unknown[]>(
      this.db,
      `INSERT INTO identity_applied_events (event_id, type, event_time) VALUES ($1, $2, $3)
       ON CONFLICT (event_id) DO NOTHING RETURNING 1`,
      [eventId, type, time],
      'aigov_identity_mark_event',
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
      'aigov_identity_claim_versions',
    );
    return new Set(rows.map((r) => r.key));
  }

  /** The time of the last change applied to the key (kept after a deletion), or null. */
  async versionOf(entity: IdentityEntity, key: string): Promise<Date | null> {
    const rows = await q<{ time: Date }[]>(
      this.db,
      'SELECT time FROM identity_versions WHERE entity = $1 AND key = $2',
      [entity, key],
      'aigov_identity_version_of',
    );
    return rows[0]?.time ?? null;
  }

  /**
   * The start of one event's change, in one statement: the request id handed to the database
   * (for the entries its triggers write), the event id recorded, and the event's keys claimed.
   * `duplicate`: the id was applied before (nothing happens); `stale`: a newer event holds a key
   * (the id is kept, so a redelivery is a duplicate); `everyone`: `unlessOrganization` names an
   * organization, i.e. the event aims at an Everyone group (nothing happens).
   */
  async beginEvent(
    e: EventStart & { unlessOrganization?: string },
  ): Promise<'fresh' | 'duplicate' | 'stale' | 'everyone'> {
    const { state } = await this.begin<object>(
      'plain',
      e,
      `SELECT NOT ($6::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM organizations WHERE id = $6::uuid)) AS ok`,
      [e.unlessOrganization ?? null],
    );
    return state === 'blocked' ? 'everyone' : state;
  }

  /**
   * `beginEvent` for adding a user to an organization, gated in the same statement on what the
   * change needs: nothing is written (`blocked`) unless the organization and the user exist. The
   * context says why, and when the missing ones were last changed or removed.
   */
  async beginOrganizationMemberAdded(
    e: EventStart & { organizationId: string; userId: string },
  ): Promise<{ state: BeginState; context: MemberContext }> {
    return this.begin<MemberContext>(
      'org_member_added',
      e,
      `SELECT c.*, c."organizationExists" AND c.username IS NOT NULL AS ok FROM (
         SELECT EXISTS (SELECT 1 FROM identity_applied_events WHERE event_id = $1) AS applied,
                ${versionSql("'organization_member'", "$6::text || '/' || $7::text")} AS "memberVersion",
                EXISTS (SELECT 1 FROM organizations WHERE id = $6::uuid) AS "organizationExists",
                ${versionSql("'organization'", '$6::text')} AS "organizationVersion",
                (SELECT username FROM users WHERE id = $7::uuid) AS username,
                ${versionSql("'user'", '$7::text')} AS "userVersion") AS c`,
      [e.organizationId, e.userId],
    );
  }

  /**
   * The statement behind the begin methods. `gate` is a one-row query (its parameters from $6)
   * with a boolean `ok` and the context columns; the event is recorded and its keys claimed only
   * when `ok`. The request id is set first, in the same statement.
   */
  private async begin<C extends object>(
    name: string,
    e: EventStart,
    gate: string,
    gateParams: unknown[],
  ): Promise<{ state: BeginState; context: C }> {
    const keys = [...new Set(e.keys)];
    const rows = await q<(C & { ok: boolean; fresh: boolean; claimed: number })[]>(
      this.db,
      `WITH request AS (SELECT set_config('aigov.request_id', $1, true)),
       gate AS (SELECT g.* FROM request, (${gate}) AS g),
       ev AS (
         INSERT INTO identity_applied_events (event_id, type, event_time)
         SELECT $1, $2, $3 FROM gate WHERE gate.ok
         ON CONFLICT (event_id) DO NOTHING RETURNING 1),
       claim AS (
         INSERT INTO identity_versions AS v (entity, key, time, event_id)
         SELECT $4, k, $3, $1 FROM unnest($5::text[]) AS k WHERE EXISTS (SELECT 1 FROM ev) ORDER BY k
         ON CONFLICT (entity, key) DO UPDATE SET time = EXCLUDED.time, event_id = EXCLUDED.event_id
          WHERE v.time <= EXCLUDED.time
         RETURNING 1)
       SELECT gate.*, EXISTS (SELECT 1 FROM ev) AS fresh, (SELECT count(*)::int FROM claim) AS claimed FROM gate`,
      [e.eventId, e.type, e.time, e.entity, keys, ...gateParams],
      `aigov_identity_begin_${name}`,
    );
    const { ok, fresh, claimed, ...context } = rows[0];
    const state: BeginState = !ok
      ? 'blocked'
      : !fresh
        ? 'duplicate'
        : claimed === keys.length
          ? 'fresh'
          : 'stale';
    return { state, context: context as unknown as C };
  }

  /**
   * Applies group membership events in two statements, each event as a begin statement and its
   * write would: gated, recorded and claimed in the first, then inserted or deleted in the second.
   * An add is gated on the group (not an Everyone group), the user, and the user's membership of
   * the group's organization (the database insists on it) not having ended after the event; a
   * removal only on the group not being an Everyone group (as beginEvent's `unlessOrganization`).
   * The events must be about distinct memberships and have distinct ids: a statement sees the
   * rows as they were before it, so the caller splits a batch where a membership or an id comes
   * again (events about different memberships do not see each other's writes, so doing them at
   * once is doing them in order). Results in the order of `events`.
   */
  async applyGroupMemberEvents(events: readonly GroupMemberEvent[]): Promise<GroupMemberEventResult[]> {
    if (events.length === 0) return [];
    const rows = await q<(GroupMemberContext & { ok: boolean; fresh: boolean; claimed: boolean })[]>(
      this.db,
      `WITH e AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::boolean[])
           WITH ORDINALITY AS e(event_id, type, time, key, gid, uid, added, i)),
       c AS (
         SELECT e.*,
                EXISTS (SELECT 1 FROM identity_applied_events a WHERE a.event_id = e.event_id) AS applied,
                EXISTS (SELECT 1 FROM organizations o WHERE o.id = e.gid::uuid) AS everyone,
                ${versionSql("'group_member'", 'e.key')} AS "memberVersion",
                g.organization_id AS "organizationId", g.name AS "groupName",
                ${versionSql("'group'", 'e.gid')} AS "groupVersion",
                u.username,
                ${versionSql("'user'", 'e.uid')} AS "userVersion",
                EXISTS (SELECT 1 FROM organization_members m
                         WHERE m.organization_id = g.organization_id AND m.user_id = e.uid::uuid) AS "organizationMember",
                ${versionSql("'organization_member'", "g.organization_id::text || '/' || e.uid")}
                  AS "organizationMemberVersion",
                ${versionSql("'organization_member'", "g.organization_id::text || '/' || e.uid || '/ended'")}
                  AS "membershipEnded"
           FROM e LEFT JOIN groups g ON g.id = e.gid::uuid LEFT JOIN users u ON u.id = e.uid::uuid),
       -- An add holds its organization membership (FOR KEY SHARE, as the insert's trigger will) from
       -- here on: a removal from the organization takes that row FOR UPDATE before it looks for
       -- the user's group memberships, so it waits for this transaction and then sees what it
       -- inserted; or this waits for the removal, and the write statement then sees its time.
       locked AS (
         SELECT m.organization_id, m.user_id FROM organization_members m
           JOIN c ON c.added AND m.organization_id = c."organizationId" AND m.user_id = c.uid::uuid
          ORDER BY m.organization_id, m.user_id FOR KEY SHARE OF m),
       gate AS (
         SELECT c.*, NOT c.everyone AND (NOT c.added OR (c."organizationId" IS NOT NULL AND c.username IS NOT NULL
                      AND c."organizationMember" AND NOT coalesce(c."membershipEnded" > c.time, false)
                      AND EXISTS (SELECT 1 FROM locked l
                                   WHERE l.organization_id = c."organizationId" AND l.user_id = c.uid::uuid))) AS ok
           FROM c),
       ev AS (
         INSERT INTO identity_applied_events (event_id, type, event_time)
         SELECT event_id, type, time FROM gate WHERE ok ORDER BY i
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id),
       claim AS (
         INSERT INTO identity_versions AS v (entity, key, time, event_id)
         SELECT 'group_member', gate.key, gate.time, gate.event_id FROM gate JOIN ev ON ev.event_id = gate.event_id
          ORDER BY gate.key
         ON CONFLICT (entity, key) DO UPDATE SET time = EXCLUDED.time, event_id = EXCLUDED.event_id
          WHERE v.time <= EXCLUDED.time
         RETURNING event_id)
       SELECT gate.applied, gate.everyone, gate."memberVersion", gate."organizationId", gate."groupName",
              gate."groupVersion", gate.username, gate."userVersion", gate."organizationMember",
              gate."organizationMemberVersion", gate."membershipEnded", gate.ok,
              ev.event_id IS NOT NULL AS fresh, claim.event_id IS NOT NULL AS claimed
         FROM gate
         LEFT JOIN ev ON ev.event_id = gate.event_id
         LEFT JOIN claim ON claim.event_id = gate.event_id
        ORDER BY gate.i`,
      [
        events.map((e) => e.eventId),
        events.map((e) => e.type),
        events.map((e) => e.time),
        events.map((e) => e.key),
        events.map((e) => e.groupId),
        events.map((e) => e.userId),
        events.map((e) => e.added),
      ],
      'aigov_identity_group_member_events',
    );
    const results = rows.map(({ ok, fresh, claimed, ...context }): GroupMemberEventResult => ({
      state: !ok ? 'blocked' : !fresh ? 'duplicate' : claimed ? 'fresh' : 'stale',
      context,
      written: false,
    }));
    const go = events.filter((_, i) => results[i].state === 'fresh');
    if (go.length === 0) return results;
    // The writes in a statement of their own, as after a begin statement: one that waited for a
    // claim held by another transaction must see what that one wrote (a membership it inserted
    // is to be deleted), and a statement sees the rows as they were when it began. For the same
    // reason an add checks again here whether a removal from the organization newer than it has
    // ended the membership: the first statement may have waited for that removal's lock (see
    // `locked`), and then read the rows from before it. Such an add writes nothing: stale.
    const written = await q<{ written: boolean; ended: boolean }[]>(
      this.db,
      `WITH w AS (
         SELECT w.*, w.added AND coalesce((
                  SELECT ${versionSql("'organization_member'", "g.organization_id::text || '/' || w.uid || '/ended'")}
                    FROM groups g WHERE g.id = w.gid::uuid) > w.time, false) AS ended
           FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::timestamptz[])
           WITH ORDINALITY AS w(event_id, gid, uid, added, time, i)),
       inserted AS (
         INSERT INTO group_members (group_id, user_id)
         SELECT gid::uuid, uid::uuid FROM w WHERE added AND NOT ended ORDER BY 1, 2
         ON CONFLICT DO NOTHING RETURNING group_id, user_id),
       -- The override triggers of group_members record the request id of the removal that fired
       -- them, and the trigger of a row runs as that row leaves the join: the join condition sets
       -- it to the removal's own id. It names a column of each side so that it is evaluated where
       -- the two meet, for the very pair about to be deleted, never earlier for the whole set.
       deleted AS (
         DELETE FROM group_members gm USING w
          WHERE NOT w.added AND gm.group_id = w.gid::uuid AND gm.user_id = w.uid::uuid
            AND set_config('aigov.request_id', w.event_id || left(gm.user_id::text, 0), true) IS NOT NULL
         RETURNING gm.group_id, gm.user_id)
       SELECT (i.user_id IS NOT NULL OR d.user_id IS NOT NULL) AS written, w.ended
         FROM w
         LEFT JOIN inserted i ON w.added AND i.group_id = w.gid::uuid AND i.user_id = w.uid::uuid
         LEFT JOIN deleted d ON NOT w.added AND d.group_id = w.gid::uuid AND d.user_id = w.uid::uuid
        ORDER BY w.i`,
      [
        go.map((e) => e.eventId),
        go.map((e) => e.groupId),
        go.map((e) => e.userId),
        go.map((e) => e.added),
        go.map((e) => e.time),
      ],
      'aigov_identity_group_member_writes',
    );
    let k = 0;
    for (const r of results) {
      if (r.state !== 'fresh') continue;
      const w = written[k++];
      r.written = w.written;
      if (w.ended) r.state = 'stale';
    }
    return results;
  }

  /**
   * Records `time` as the removal time of the memberships that go with a removal (where not
   * newer already), so late events about them stay ignored: a user's organization and group
   * memberships; an organization's members, groups and group memberships; a group's memberships;
   * one member's memberships of the organization's groups. Returns how many there were and the
   * keys claimed (the others are newer than `time`).
   */
  async tombstoneDependents(
    of:
      | { userId: string }
      | { organizationId: string }
      | { groupId: string }
      | { organizationId: string; userId: string },
    time: Date,
    eventId: string,
  ): Promise<{ found: number; claimed: string[] }> {
    const kind =
      'organizationId' in of && 'userId' in of
        ? 'member'
        : 'userId' in of
          ? 'user'
          : 'groupId' in of
            ? 'group'
            : 'organization';
    const [sql, params] =
      'organizationId' in of && 'userId' in of
        ? [
            `SELECT 'group_member', gm.group_id || '/' || gm.user_id FROM group_members gm
               JOIN groups g ON g.id = gm.group_id WHERE g.organization_id = $3 AND gm.user_id = $4`,
            [of.organizationId, of.userId],
          ]
        : 'userId' in of
          ? [
              `SELECT 'organization_member', organization_id || '/' || user_id FROM organization_members WHERE user_id = $3
               UNION ALL SELECT 'group_member', group_id || '/' || user_id FROM group_members WHERE user_id = $3`,
              [of.userId],
            ]
          : 'groupId' in of
            ? [
                `SELECT 'group_member', group_id || '/' || user_id FROM group_members WHERE group_id = $3`,
                [of.groupId],
              ]
            : [
                `SELECT 'organization_member', organization_id || '/' || user_id FROM organization_members WHERE organization_id = $3
                 UNION ALL SELECT 'group', id::text FROM groups WHERE organization_id = $3 AND id <> organization_id
                 UNION ALL SELECT 'group_member', gm.group_id || '/' || gm.user_id FROM group_members gm
                   JOIN groups g ON g.id = gm.group_id WHERE g.organization_id = $3`,
                [of.organizationId],
              ];
    const rows = await q<{ found: number; claimed: string[] }[]>(
      this.db,
      `WITH d(entity, key) AS (${sql}),
       claim AS (
         INSERT INTO identity_versions AS v (entity, key, time, event_id)
         SELECT d.entity, d.key, $1, $2 FROM d ORDER BY d.entity, d.key
         ON CONFLICT (entity, key) DO UPDATE SET time = EXCLUDED.time, event_id = EXCLUDED.event_id
          WHERE v.time <= EXCLUDED.time
         RETURNING key)
       SELECT (SELECT count(*)::int FROM d) AS found, ARRAY(SELECT key FROM claim ORDER BY key) AS claimed`,
      [time, eventId, ...params],
      `aigov_identity_tombstone_${kind}`,
    );
    return rows[0];
  }

  // Users

  async lockUser(id: string): Promise<User | null> {
    const rows = await q<User[]>(
      this.db,
      `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`,
      [id],
      'aigov_identity_lock_user',
    );
    return rows[0] ?? null;
  }

  async insertUser(u: SyncedUser): Promise<User> {
    const rows = await q<User[]>(
      this.db,
      `INSERT INTO users (id, username, email, name, status) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${USER_COLUMNS}`,
      [u.id, u.username, u.email, u.name ?? null, u.status ?? 'active'],
      'aigov_identity_insert_user',
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
      'aigov_identity_update_user',
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

  /** The usernames of those of the ids that are users. */
  async usernames(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const rows = await q<{ id: string; username: string }[]>(
      this.db,
      'SELECT id, username FROM users WHERE id = ANY($1::uuid[])',
      [[...new Set(ids)]],
    );
    return new Map(rows.map((r) => [r.id, r.username]));
  }

  // Organizations

  async lockOrganization(id: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} FROM organizations WHERE id = $1 FOR UPDATE`,
      [id],
      'aigov_identity_lock_organization',
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

  // Organization members

  /** The member's roles, the row locked; null when not a member. */
  async lockOrganizationMember(organizationId: string, userId: string): Promise<OrgRole[] | null> {
    const rows = await q<{ roles: OrgRole[] }[]>(
      this.db,
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE',
      [organizationId, userId],
      'aigov_identity_lock_org_member',
    );
    return rows[0]?.roles ?? null;
  }

  /** Locks the users' memberships (those that exist), in key order: FOR UPDATE or FOR KEY SHARE. */
  async lockOrganizationMembers(
    organizationId: string,
    userIds: readonly string[],
    exclusive: boolean,
  ): Promise<void> {
    if (userIds.length === 0) return;
    await q(
      this.db,
      `SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = ANY($2::uuid[])
        ORDER BY user_id ${exclusive ? 'FOR UPDATE' : 'FOR KEY SHARE'}`,
      [organizationId, [...new Set(userIds)]],
      exclusive ? 'aigov_identity_lock_org_members' : 'aigov_identity_share_org_members',
    );
  }

  async insertOrganizationMember(organizationId: string, userId: string, roles: OrgRole[]): Promise<void> {
    await q(
      this.db,
      'INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3)',
      [organizationId, userId, roles],
      'aigov_identity_insert_org_member',
    );
  }

  async setOrganizationMemberRoles(organizationId: string, userId: string, roles: OrgRole[]): Promise<void> {
    await q(
      this.db,
      `UPDATE organization_members SET roles = $3::text[], updated_at = now()
        WHERE organization_id = $1 AND user_id = $2`,
      [organizationId, userId, roles],
      'aigov_identity_set_org_member_roles',
    );
  }

  /** Removes the membership; its roles and the username, or null when there was none. */
  async deleteOrganizationMember(
    organizationId: string,
    userId: string,
  ): Promise<{ roles: OrgRole[]; username: string } | null> {
    const rows = await q<{ roles: OrgRole[]; username: string }[]>(
      this.db,
      `DELETE FROM organization_members m USING users u
        WHERE m.organization_id = $1 AND m.user_id = $2 AND u.id = m.user_id
        RETURNING m.roles, u.username`,
      [organizationId, userId],
      'aigov_identity_delete_org_member',
    );
    return rows[0] ?? null;
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

  // Groups

  async lockGroup(id: string): Promise<Group | null> {
    const rows = await q<Group[]>(
      this.db,
      `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1 FOR UPDATE`,
      [id],
      'aigov_identity_lock_group',
    );
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
      'aigov_identity_add_group_member',
    );
    return rows.length > 0;
  }

  /** Removes the membership; the group and the username, or null when there was none. */
  async removeGroupMember(
    groupId: string,
    userId: string,
  ): Promise<{ group: Pick<Group, 'id' | 'name' | 'organizationId'>; username: string } | null> {
    const rows = await q<{ name: string; organizationId: string; username: string }[]>(
      this.db,
      `DELETE FROM group_members gm USING groups g, users u
        WHERE gm.group_id = $1 AND gm.user_id = $2 AND g.id = gm.group_id AND u.id = gm.user_id
        RETURNING g.name, g.organization_id AS "organizationId", u.username`,
      [groupId, userId],
      'aigov_identity_remove_group_member',
    );
    const r = rows[0];
    return r
      ? { group: { id: groupId, name: r.name, organizationId: r.organizationId }, username: r.username }
      : null;
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
