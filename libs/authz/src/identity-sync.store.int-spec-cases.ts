// The cases of IdentitySyncStore for stores.int-spec.ts: every method is the membership
// listener's alone (`identity.sync`), so each is allowed to system:membership-listener and refused
// to a site owner and to another system actor. The fixtures are the identity system's own: rows
// with ids chosen here (the listener receives ids, it never makes them), inserted with plain SQL.
// Assertions use node:assert, not jest's `expect`: this file is no test file, so the build
// compiles it too, without jest's globals.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { MEMBERSHIP_LISTENER_ACTOR, PRICING_WORKER_ACTOR } from '@aigov/contracts';
import { q, type Group, type OrgRole } from '@aigov/db';
import type { Actor, Stores } from '@aigov/authz';
import type { DataSource } from 'typeorm';
import { Stores as StoresOn } from './stores';
import type { World } from './stores.int-spec-helpers';

// The shape of stores.int-spec.ts's scenarios, narrowed to what these cases use (a refusal is
// always `forbidden`: the store checks no resource), so the table there accepts them as they are.

type Who<F> = 'owner' | { label: string; actor: (f: F) => Actor };

interface AuditRow {
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  reason: string | null;
}

export interface IdentitySyncScenario<F, R> {
  title: string;
  arrange?: (w: World) => Promise<F>;
  act: (s: Stores, actor: Actor, f: NoInfer<F>, w: World) => Promise<R>;
  observe?: (f: NoInfer<F>, w: World) => Promise<unknown>;
  expect?: (r: NoInfer<R>, f: NoInfer<F>, w: World, actor: Actor) => void | Promise<void>;
  allow?: Who<NoInfer<F>>[];
  deny?: [Who<NoInfer<F>>, 'forbidden'][];
  audits?: (r: NoInfer<R>, f: NoInfer<F>, w: World, actor: Actor) => AuditRow[];
}
type AnyScenario = IdentitySyncScenario<unknown, unknown>;
const scenario = <F, R>(s: IdentitySyncScenario<F, R>): AnyScenario => s as unknown as AnyScenario;

const LISTENER: Who<unknown> = {
  label: 'system:membership-listener',
  actor: () => MEMBERSHIP_LISTENER_ACTOR,
};
const PRICING_WORKER: Who<unknown> = { label: 'system:pricing-worker', actor: () => PRICING_WORKER_ACTOR };
const ALLOW: Who<unknown>[] = [LISTENER];
/** Even the owner: identity changes come from the identity system, through the listener only. */
const DENY: [Who<unknown>, 'forbidden'][] = [
  ['owner', 'forbidden'],
  [PRICING_WORKER, 'forbidden'],
];

const DATABASE = 'system:database';
const nameOf = (a: Actor): string => (a.kind === 'user' ? a.username : a.name);
const entry = (
  actor: Actor | typeof DATABASE,
  action: 'create' | 'write' | 'delete',
  resource_type: string,
  resource_id: string,
  reason: string | null = null,
): AuditRow => ({
  actor: actor === DATABASE ? actor : nameOf(actor),
  action,
  resource_type,
  resource_id,
  reason,
});

// Fixtures: rows as the identity system would have them, under fresh ids.

type Db = { ds: DataSource };
export const sql = <T = Record<string, unknown>>(w: Db, text: string, params: unknown[] = []) =>
  q<T[]>(w.ds, text, params);

export interface SyncUser {
  id: string;
  username: string;
  email: string;
}

/** A name valid as username, organization name and group name, unique to the id. */
const nameFor = (id: string) => `sync-${id}`;

export async function newUser(w: Db, siteRoles: string[] = []): Promise<SyncUser> {
  const id = randomUUID();
  const u = { id, username: nameFor(id), email: `${nameFor(id)}@example.test` };
  await sql(w, 'INSERT INTO users (id, username, email, roles) VALUES ($1, $2, $3, $4::text[])', [
    u.id,
    u.username,
    u.email,
    siteRoles,
  ]);
  return u;
}

/** Its Everyone group (id = the organization's) comes with it (database trigger). */
export async function newOrganization(w: Db): Promise<{ id: string; name: string }> {
  const id = randomUUID();
  await sql(w, 'INSERT INTO organizations (id, name) VALUES ($1, $2)', [id, nameFor(id)]);
  return { id, name: nameFor(id) };
}

export async function newGroup(w: Db, organizationId: string): Promise<Group> {
  const [g] = await sql<Group>(
    w,
    `INSERT INTO groups (id, organization_id, name) VALUES ($1, $2, $3)
     RETURNING id, organization_id AS "organizationId", name, display_name AS "displayName",
               created_at AS "createdAt", updated_at AS "updatedAt"`,
    [randomUUID(), organizationId, `group ${randomUUID()}`],
  );
  return g;
}

export async function joinOrganization(
  w: Db,
  organizationId: string,
  userId: string,
  roles: OrgRole[] = [],
): Promise<void> {
  await sql(w, 'INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3)', [
    organizationId,
    userId,
    roles,
  ]);
}

/** The user must be a member of the group's organization (database trigger). */
export async function joinGroup(w: Db, groupId: string, userId: string): Promise<void> {
  await sql(w, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [groupId, userId]);
}

/** The user must be a member of the group (database trigger). */
async function addOverride(w: Db, userId: string, groupId: string): Promise<void> {
  await sql(
    w,
    'INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, 1000000)',
    [userId, groupId],
  );
}

async function addBudget(w: Db, groupId: string): Promise<void> {
  await sql(w, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 5000000)', [groupId]);
}

/** An API key of the user; returns its id (10 characters of [a-z0-9]). */
async function addKey(w: Db, userId: string): Promise<string> {
  const id = randomUUID().replace(/-/g, '').slice(0, 10);
  await sql(w, 'INSERT INTO api_keys (id, user_id, name, secret_hash) VALUES ($1, $2, $3, $4)', [
    id,
    userId,
    'sync fixture key',
    randomBytes(32),
  ]);
  return id;
}

/** An organization with a group and a user in both. */
async function orgGroupMember(w: Db) {
  const org = await newOrganization(w);
  const g = await newGroup(w, org.id);
  const u = await newUser(w);
  await joinOrganization(w, org.id, u.id);
  await joinGroup(w, g.id, u.id);
  return { org, g, u };
}

async function addSnapshotPart(
  w: Db,
  p: { snapshotId: string; index: number; count: number; hoursAgo?: number },
): Promise<void> {
  await sql(
    w,
    `INSERT INTO identity_snapshot_parts
       (snapshot_id, part_index, part_count, organization_id, event_id, event_time, data, received_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, now() - make_interval(hours => $8))`,
    [
      p.snapshotId,
      p.index,
      p.count,
      randomUUID(),
      randomUUID(),
      T1,
      JSON.stringify({ part: p.index }),
      p.hoursAgo ?? 0,
    ],
  );
}

const T1 = new Date('2026-03-01T10:00:00.000Z');
const T2 = new Date('2026-03-01T10:00:05.000Z');
const T0 = new Date('2026-03-01T09:59:55.000Z');

async function addAppliedEvent(w: Db, eventId: string, time: Date): Promise<void> {
  await sql(w, 'INSERT INTO identity_applied_events (event_id, type, event_time) VALUES ($1, $2, $3)', [
    eventId,
    'identity.user.upserted',
    time,
  ]);
}

/** The time of the last event applied to the key, as a former event left it. */
async function addVersion(w: Db, entity: string, key: string, time: Date, eventId: string): Promise<void> {
  await sql(w, 'INSERT INTO identity_versions (entity, key, time, event_id) VALUES ($1, $2, $3, $4)', [
    entity,
    key,
    time,
    eventId,
  ]);
}

// What the cases observe.

const userRow = (w: Db, id: string) =>
  sql(w, 'SELECT username, email, name, status FROM users WHERE id = $1', [id]);
const organizationRows = (w: Db, id: string) =>
  sql(
    w,
    `SELECT 'organization' AS kind, name, display_name FROM organizations WHERE id = $1
     UNION ALL SELECT 'group', name, display_name FROM groups WHERE id = $1`,
    [id],
  );
const groupRow = (w: Db, id: string) =>
  sql(w, 'SELECT organization_id, name, display_name FROM groups WHERE id = $1', [id]);
const membershipRow = (w: Db, organizationId: string, userId: string) =>
  sql(w, 'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
    organizationId,
    userId,
  ]);
/** What hangs on a user: memberships, keys, override. */
const userDependents = (w: Db, userId: string) =>
  sql(
    w,
    `SELECT 'user' AS kind, id::text AS key FROM users WHERE id = $1
     UNION ALL SELECT 'organization_member', organization_id::text FROM organization_members WHERE user_id = $1
     UNION ALL SELECT 'group_member', group_id::text FROM group_members WHERE user_id = $1
     UNION ALL SELECT 'api_key', id FROM api_keys WHERE user_id = $1
     UNION ALL SELECT 'override', group_id::text FROM user_ai_budget_overrides WHERE user_id = $1
     ORDER BY 1, 2`,
    [userId],
  );
/** The organization's groups, memberships, budgets and overrides. */
const organizationDependents = (w: Db, organizationId: string) =>
  sql(
    w,
    `SELECT 'organization' AS kind, id::text AS key FROM organizations WHERE id = $1
     UNION ALL SELECT 'group', id::text FROM groups WHERE organization_id = $1
     UNION ALL SELECT 'organization_member', user_id::text FROM organization_members WHERE organization_id = $1
     UNION ALL SELECT 'group_member', gm.group_id || '/' || gm.user_id
                 FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE g.organization_id = $1
     UNION ALL SELECT 'budget', b.group_id::text
                 FROM group_ai_budgets b JOIN groups g ON g.id = b.group_id WHERE g.organization_id = $1
     UNION ALL SELECT 'override', o.user_id::text
                 FROM user_ai_budget_overrides o JOIN groups g ON g.id = o.group_id WHERE g.organization_id = $1
     ORDER BY 1, 2`,
    [organizationId],
  );
const groupMemberRows = (w: Db, groupId: string) =>
  sql(
    w,
    `SELECT 'group_member' AS kind, user_id::text AS key FROM group_members WHERE group_id = $1
     UNION ALL SELECT 'override', user_id::text FROM user_ai_budget_overrides WHERE group_id = $1
     ORDER BY 1, 2`,
    [groupId],
  );
const snapshotRows = (w: Db, snapshotIds: string[]) =>
  sql(
    w,
    `SELECT snapshot_id, part_index, part_count FROM identity_snapshot_parts
      WHERE snapshot_id = ANY($1::text[]) ORDER BY snapshot_id, part_index`,
    [snapshotIds],
  );
const auditDiff = async (w: Db, resourceType: string, resourceId: string): Promise<unknown> => {
  const [r] = await sql<{ diff: unknown }>(
    w,
    `SELECT diff FROM audit_logs WHERE resource_type = $1 AND resource_id = $2 AND actor = $3
      ORDER BY time DESC, id DESC LIMIT 1`,
    [resourceType, resourceId, MEMBERSHIP_LISTENER_ACTOR.name],
  );
  return r?.diff;
};

const versionRows = (w: Db, keys: string[]) =>
  sql(
    w,
    'SELECT entity, key, time, event_id FROM identity_versions WHERE key = ANY($1::text[]) ORDER BY entity, key',
    [keys],
  );
const appliedRows = (w: Db, eventIds: string[]) =>
  sql(
    w,
    'SELECT event_id, type, event_time FROM identity_applied_events WHERE event_id = ANY($1::text[]) ORDER BY event_id',
    [eventIds],
  );
const version = (entity: string, key: string, time: Date, event_id: string) => ({
  entity,
  key,
  time,
  event_id,
});

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

export const IDENTITY_SYNC_CASES: Record<string, AnyScenario[]> = {
  // Event bookkeeping: no audit entries (it records no identity change).

  'IdentitySyncStore.markEventApplied': [
    scenario({
      title: 'a new event',
      arrange: async () => ({ eventId: randomUUID() }),
      act: (s, a, f) => s.identity.markEventApplied(a, f.eventId, 'identity.user.upserted', T1),
      observe: (f, w) =>
        sql(w, 'SELECT type, event_time FROM identity_applied_events WHERE event_id = $1', [f.eventId]),
      expect: (r) => assert.equal(r, true),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'an event applied before',
      arrange: async (w: World) => {
        const eventId = randomUUID();
        await sql(w, 'INSERT INTO identity_applied_events (event_id, type, event_time) VALUES ($1, $2, $3)', [
          eventId,
          'identity.user.upserted',
          T1,
        ]);
        return { eventId };
      },
      act: (s, a, f) => s.identity.markEventApplied(a, f.eventId, 'identity.user.upserted', T2),
      expect: async (r, f, w) => {
        assert.equal(r, false);
        const [row] = await sql<{ event_time: Date }>(
          w,
          'SELECT event_time FROM identity_applied_events WHERE event_id = $1',
          [f.eventId],
        );
        assert.equal(row.event_time.toISOString(), T1.toISOString());
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.claimVersions': [
    scenario({
      title: 'claims the keys no newer event has seen',
      arrange: async (w: World) => {
        const fresh = randomUUID();
        const equal = randomUUID();
        const newer = randomUUID();
        await sql(
          w,
          `INSERT INTO identity_versions (entity, key, time, event_id)
           VALUES ('user', $1, $3, 'older-event'), ('user', $2, $4, 'newer-event')`,
          [equal, newer, T1, T2],
        );
        return { fresh, equal, newer, eventId: randomUUID() };
      },
      act: (s, a, f) => s.identity.claimVersions(a, 'user', [f.fresh, f.equal, f.newer], T1, f.eventId),
      observe: (f, w) =>
        sql(
          w,
          `SELECT key, time, event_id FROM identity_versions WHERE entity = 'user' AND key = ANY($1) ORDER BY key`,
          [[f.fresh, f.equal, f.newer]],
        ),
      expect: (r, f) => assert.deepEqual(sorted(r), sorted([f.fresh, f.equal])),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.versionOf': [
    scenario({
      title: 'a key seen before, and one never seen',
      arrange: async (w: World) => {
        const key = randomUUID();
        await sql(
          w,
          `INSERT INTO identity_versions (entity, key, time, event_id) VALUES ('group', $1, $2, 'e')`,
          [key, T2],
        );
        return { key };
      },
      act: async (s, a, f) => [
        await s.identity.versionOf(a, 'group', f.key),
        await s.identity.versionOf(a, 'user', f.key),
      ],
      expect: ([seen, unseen]) => {
        assert.equal(seen?.toISOString(), T2.toISOString());
        assert.equal(unseen, null);
      },
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.beginBatch': [
    scenario({
      title: 'the planner avoids sequential scans for the rest of the transaction, and only there',
      act: async (_s, a, _f, w) => {
        const inside = await w.ds.transaction(async (em) => {
          await new StoresOn(em).identity.beginBatch(a);
          return em.query<{ enable_seqscan: string }[]>('SHOW enable_seqscan');
        });
        const after = await w.ds.query<{ enable_seqscan: string }[]>('SHOW enable_seqscan');
        return [inside[0].enable_seqscan, after[0].enable_seqscan];
      },
      expect: (r) => assert.deepEqual(r, ['off', 'on']),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.lockOrganizationMembers': [
    scenario({
      title:
        'FOR UPDATE keeps group membership adds (FOR KEY SHARE) out until the end; FOR KEY SHARE keeps removals out',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const [u1, u2] = [await newUser(w), await newUser(w)];
        await joinOrganization(w, org.id, u1.id);
        await joinOrganization(w, org.id, u2.id);
        return { org, users: [u1.id, u2.id] };
      },
      act: async (_s, a, f, w) => {
        // What another connection can take on each row, NOWAIT, while the transaction holds it.
        const probe = async (mode: 'FOR KEY SHARE' | 'FOR UPDATE', user: string) =>
          w.ds
            .query(
              `SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2 ${mode} NOWAIT`,
              [f.org.id, user],
            )
            .then(
              () => 'free',
              (err: { code?: string }) => (err.code === '55P03' ? 'held' : `error ${err.code}`),
            );
        const held = async (exclusive: boolean) =>
          w.ds.transaction(async (em) => {
            await new StoresOn(em).identity.lockOrganizationMembers(a, f.org.id, f.users, exclusive);
            return Promise.all(f.users.flatMap((u) => [probe('FOR KEY SHARE', u), probe('FOR UPDATE', u)]));
          });
        return {
          exclusive: await held(true),
          shared: await held(false),
          after: await probe('FOR UPDATE', f.users[0]),
        };
      },
      expect: (r) =>
        assert.deepEqual(r, {
          exclusive: ['held', 'held', 'held', 'held'],
          shared: ['free', 'held', 'free', 'held'],
          after: 'free',
        }),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.beginEvent': [
    scenario({
      title:
        'a new event: records its id and claims its keys (unlessOrganization a group, not an organization)',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        return { g: await newGroup(w, org.id), eventId: randomUUID() };
      },
      act: (s, a, f) =>
        s.identity.beginEvent(a, {
          eventId: f.eventId,
          type: 'identity.group.upserted',
          time: T1,
          entity: 'group',
          keys: [f.g.id],
          unlessOrganization: f.g.id,
        }),
      observe: (f, w) => Promise.all([appliedRows(w, [f.eventId]), versionRows(w, [f.g.id])]),
      expect: async (r, f, w) => {
        assert.equal(r, 'fresh');
        assert.deepEqual(await appliedRows(w, [f.eventId]), [
          { event_id: f.eventId, type: 'identity.group.upserted', event_time: T1 },
        ]);
        assert.deepEqual(await versionRows(w, [f.g.id]), [version('group', f.g.id, T1, f.eventId)]);
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'hands the event id to the entries the database writes in the same transaction',
      arrange: async (w: World) => ({ ...(await orgGroupMember(w)), eventId: randomUUID() }),
      act: (s, a, f) =>
        s.transaction(null, async (tx) => {
          const r = await tx.identity.beginEvent(a, {
            eventId: f.eventId,
            type: 'identity.organization_member.removed',
            time: T1,
            entity: 'organization_member',
            keys: [`${f.org.id}/${f.u.id}`],
          });
          await tx.identity.removeOrganizationMember(a, f.org.id, f.u.id);
          return r;
        }),
      observe: (f, w) => Promise.all([appliedRows(w, [f.eventId]), userDependents(w, f.u.id)]),
      expect: async (r, f, w) => {
        assert.equal(r, 'fresh');
        assert.deepEqual(
          await sql(w, 'SELECT request_id FROM audit_logs WHERE resource_type = $1 AND resource_id = $2', [
            'group_member',
            `${f.g.id}/${f.u.id}`,
          ]),
          [{ request_id: f.eventId }],
        );
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'organization_member', `${f.org.id}/${f.u.id}`),
        entry(DATABASE, 'delete', 'group_member', `${f.g.id}/${f.u.id}`, 'membership_removed'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'an event id applied before: duplicate, nothing claimed',
      arrange: async (w: World) => {
        const eventId = randomUUID();
        await addAppliedEvent(w, eventId, T1);
        return { eventId, key: randomUUID() };
      },
      act: (s, a, f) =>
        s.identity.beginEvent(a, {
          eventId: f.eventId,
          type: 'identity.user.upserted',
          time: T2,
          entity: 'user',
          keys: [f.key],
        }),
      expect: async (r, f, w) => {
        assert.equal(r, 'duplicate');
        assert.deepEqual(await versionRows(w, [f.key]), []);
        assert.deepEqual(await appliedRows(w, [f.eventId]), [
          { event_id: f.eventId, type: 'identity.user.upserted', event_time: T1 },
        ]);
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'a newer event holds the key: stale, the id kept; an equal time: fresh',
      arrange: async (w: World) => {
        const newer = randomUUID();
        const equal = randomUUID();
        await addVersion(w, 'user', newer, T2, 'newer-event');
        await addVersion(w, 'user', equal, T1, 'equal-event');
        return { newer, equal, staleId: randomUUID(), freshId: randomUUID() };
      },
      act: async (s, a, f) => [
        await s.identity.beginEvent(a, {
          eventId: f.staleId,
          type: 'identity.user.upserted',
          time: T1,
          entity: 'user',
          keys: [f.newer],
        }),
        await s.identity.beginEvent(a, {
          eventId: f.freshId,
          type: 'identity.user.upserted',
          time: T1,
          entity: 'user',
          keys: [f.equal],
        }),
      ],
      observe: (f, w) =>
        Promise.all([appliedRows(w, [f.staleId, f.freshId]), versionRows(w, [f.newer, f.equal])]),
      expect: async (r, f, w) => {
        assert.deepEqual(r, ['stale', 'fresh']);
        // The stale event's id is kept, so its redelivery is a duplicate.
        assert.equal((await appliedRows(w, [f.staleId, f.freshId])).length, 2);
        assert.deepEqual(
          await versionRows(w, [f.newer, f.equal]),
          [version('user', f.newer, T2, 'newer-event'), version('user', f.equal, T1, f.freshId)].sort(
            (x, y) => x.key.localeCompare(y.key),
          ),
        );
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "unlessOrganization an organization's id (its Everyone group): everyone, nothing written",
      arrange: async (w: World) => ({
        org: await newOrganization(w),
        u: await newUser(w),
        eventId: randomUUID(),
      }),
      act: (s, a, f) =>
        s.identity.beginEvent(a, {
          eventId: f.eventId,
          type: 'identity.group_member.added',
          time: T1,
          entity: 'group_member',
          keys: [`${f.org.id}/${f.u.id}`],
          unlessOrganization: f.org.id,
        }),
      expect: async (r, f, w) => {
        assert.equal(r, 'everyone');
        assert.deepEqual(await appliedRows(w, [f.eventId]), []);
        assert.deepEqual(await versionRows(w, [`${f.org.id}/${f.u.id}`]), []);
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.tombstoneDependents': [
    scenario({
      title: "a user's memberships: an older time is replaced, a newer one stays",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w);
        const other = await newUser(w);
        await joinOrganization(w, org.id, other.id);
        await joinGroup(w, g.id, other.id);
        await addVersion(w, 'organization_member', `${org.id}/${u.id}`, T2, 'newer-event');
        await addVersion(w, 'group_member', `${g.id}/${u.id}`, T0, 'older-event');
        const keys = [org.id, g.id].flatMap((x) => [`${x}/${u.id}`, `${x}/${other.id}`]);
        return { org, g, u, eventId: randomUUID(), keys };
      },
      act: (s, a, f) => s.identity.tombstoneDependents(a, { userId: f.u.id }, T1, f.eventId),
      observe: (f, w) => versionRows(w, f.keys),
      expect: async (_r, f, w) =>
        assert.deepEqual(await versionRows(w, f.keys), [
          version('group_member', `${f.g.id}/${f.u.id}`, T1, f.eventId),
          version('organization_member', `${f.org.id}/${f.u.id}`, T2, 'newer-event'),
        ]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "an organization's members, groups other than Everyone and group memberships",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w);
        await addVersion(w, 'group', g.id, T1, 'equal-event');
        const elsewhere = await orgGroupMember(w);
        const keys = [org.id, g.id, `${org.id}/${u.id}`, `${g.id}/${u.id}`];
        keys.push(
          elsewhere.g.id,
          `${elsewhere.org.id}/${elsewhere.u.id}`,
          `${elsewhere.g.id}/${elsewhere.u.id}`,
        );
        return { org, g, u, eventId: randomUUID(), keys };
      },
      act: (s, a, f) => s.identity.tombstoneDependents(a, { organizationId: f.org.id }, T1, f.eventId),
      observe: (f, w) => versionRows(w, f.keys),
      expect: async (_r, f, w) =>
        assert.deepEqual(await versionRows(w, f.keys), [
          version('group', f.g.id, T1, f.eventId),
          version('group_member', `${f.g.id}/${f.u.id}`, T1, f.eventId),
          version('organization_member', `${f.org.id}/${f.u.id}`, T1, f.eventId),
        ]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "a group's memberships, not the members' other ones",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w);
        const g2 = await newGroup(w, org.id);
        await joinGroup(w, g2.id, u.id);
        const keys = [g.id, g2.id, `${org.id}/${u.id}`, `${g.id}/${u.id}`, `${g2.id}/${u.id}`];
        return { g, u, eventId: randomUUID(), keys };
      },
      act: (s, a, f) => s.identity.tombstoneDependents(a, { groupId: f.g.id }, T1, f.eventId),
      observe: (f, w) => versionRows(w, f.keys),
      expect: async (_r, f, w) =>
        assert.deepEqual(await versionRows(w, f.keys), [
          version('group_member', `${f.g.id}/${f.u.id}`, T1, f.eventId),
        ]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "one member's memberships of the organization's groups, not of another organization's",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w);
        const other = await newOrganization(w);
        const g3 = await newGroup(w, other.id);
        await joinOrganization(w, other.id, u.id);
        await joinGroup(w, g3.id, u.id);
        const keys = [`${org.id}/${u.id}`, `${g.id}/${u.id}`, `${other.id}/${u.id}`, `${g3.id}/${u.id}`];
        return { org, g, u, eventId: randomUUID(), keys };
      },
      act: (s, a, f) =>
        s.identity.tombstoneDependents(a, { organizationId: f.org.id, userId: f.u.id }, T1, f.eventId),
      observe: (f, w) => versionRows(w, f.keys),
      expect: async (_r, f, w) =>
        assert.deepEqual(await versionRows(w, f.keys), [
          version('group_member', `${f.g.id}/${f.u.id}`, T1, f.eventId),
        ]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.beginOrganizationMemberAdded': [
    scenario({
      title: 'organization and user there: records the event, claims the membership, reports the context',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const u = await newUser(w);
        await addVersion(w, 'organization', org.id, T2, 'e2');
        await addVersion(w, 'user', u.id, T0, 'e0');
        return { org, u, eventId: randomUUID(), key: `${org.id}/${u.id}` };
      },
      act: (s, a, f) =>
        s.identity.beginOrganizationMemberAdded(a, {
          eventId: f.eventId,
          type: 'identity.organization.member.added',
          time: T1,
          entity: 'organization_member',
          keys: [f.key],
          organizationId: f.org.id,
          userId: f.u.id,
        }),
      observe: (f, w) => Promise.all([appliedRows(w, [f.eventId]), versionRows(w, [f.key])]),
      expect: async (r, f, w) => {
        assert.deepEqual(r, {
          state: 'fresh',
          context: {
            applied: false,
            memberVersion: null,
            organizationExists: true,
            organizationVersion: T2,
            username: f.u.username,
            userVersion: T0,
          },
        });
        assert.deepEqual(await versionRows(w, [f.key]), [
          version('organization_member', f.key, T1, f.eventId),
        ]);
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'organization removed (its time kept), user never seen: blocked, nothing written',
      arrange: async (w: World) => {
        const organizationId = randomUUID();
        await addVersion(w, 'organization', organizationId, T2, 'removal');
        return { organizationId, userId: randomUUID(), eventId: randomUUID() };
      },
      act: (s, a, f) =>
        s.identity.beginOrganizationMemberAdded(a, {
          eventId: f.eventId,
          type: 'identity.organization.member.added',
          time: T1,
          entity: 'organization_member',
          keys: [`${f.organizationId}/${f.userId}`],
          organizationId: f.organizationId,
          userId: f.userId,
        }),
      expect: async (r, f, w) => {
        assert.equal(r.state, 'blocked');
        assert.deepEqual(r.context, {
          applied: false,
          memberVersion: null,
          organizationExists: false,
          organizationVersion: T2,
          username: null,
          userVersion: null,
        });
        assert.deepEqual(await appliedRows(w, [f.eventId]), []);
        assert.deepEqual(await versionRows(w, [`${f.organizationId}/${f.userId}`]), []);
      },
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.applyGroupMemberEvents': [
    scenario({
      title:
        "adds and removals at once, each gated, recorded and claimed; an override ends under its removal's request id",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w); // u: in the group, with an override on it
        await addOverride(w, u.id, g.id);
        const joiner = await newUser(w); // a member of the organization, not of the group
        await joinOrganization(w, org.id, joiner.id);
        const outsider = await newUser(w); // not a member of the organization
        const late = await newUser(w); // in the group, removed at T2 already
        await joinOrganization(w, org.id, late.id);
        await joinGroup(w, g.id, late.id);
        await addVersion(w, 'group_member', `${g.id}/${late.id}`, T2, 'e2');
        const seen = randomUUID();
        await addAppliedEvent(w, seen, T0);
        const event = (userId: string, added: boolean, groupId = g.id, eventId: string = randomUUID()) => ({
          eventId,
          type: added ? 'identity.group.member.added' : 'identity.group.member.removed',
          time: T1,
          key: `${groupId}/${userId}`,
          groupId,
          userId,
          added,
        });
        return {
          org,
          g,
          u,
          joiner,
          events: [
            event(u.id, false),
            event(joiner.id, true),
            event(outsider.id, true),
            event(u.id, false, org.id), // the Everyone group: refused
            event(late.id, false), // older than what was applied: stale
            event(joiner.id, false, g.id, seen), // an id applied before: a duplicate
          ],
        };
      },
      act: (s, a, f) => s.identity.applyGroupMemberEvents(a, f.events, (id) => s.withRequestId(id).identity),
      observe: (f, w) => groupMemberRows(w, f.g.id),
      expect: async (r, f, w) => {
        assert.deepEqual(
          r.map((x) => [x.state, x.written]),
          [
            ['fresh', true],
            ['fresh', true],
            ['blocked', false],
            ['blocked', false],
            ['stale', false],
            ['duplicate', false],
          ],
        );
        assert.equal(r[2].context.organizationMember, false);
        assert.equal(r[3].context.everyone, true);
        assert.equal(r[1].context.groupName, f.g.name);
        const recorded = (
          await appliedRows(
            w,
            f.events.map((e) => e.eventId),
          )
        ).map((x) => String(x.event_id));
        assert.deepEqual(sorted(recorded), sorted([0, 1, 4, 5].map((i) => f.events[i].eventId)));
        const [removal, add] = f.events;
        assert.deepEqual(
          await versionRows(w, [removal.key, add.key]),
          [
            version('group_member', add.key, T1, add.eventId),
            version('group_member', removal.key, T1, removal.eventId),
          ].sort((x, y) => x.key.localeCompare(y.key)),
        );
        const byRequest = await sql(
          w,
          `SELECT actor, resource_type, request_id FROM audit_logs WHERE request_id = ANY($1::text[])
            ORDER BY request_id, actor`,
          [[removal.eventId, add.eventId]],
        );
        assert.deepEqual(
          byRequest,
          [
            { actor: DATABASE, resource_type: 'user_ai_budget_override', request_id: removal.eventId },
            {
              actor: 'system:membership-listener',
              resource_type: 'group_member',
              request_id: removal.eventId,
            },
            { actor: 'system:membership-listener', resource_type: 'group_member', request_id: add.eventId },
          ].sort((x, y) => x.request_id.localeCompare(y.request_id)),
        );
        assert.deepEqual(await auditDiff(w, 'group_member', `${f.g.id}/${f.joiner.id}`), {
          group: { id: f.g.id, name: f.g.name },
          user: { id: f.joiner.id, username: f.joiner.username },
        });
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'group_member', `${f.g.id}/${f.u.id}`),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'membership_removed'),
        entry(a, 'create', 'group_member', `${f.g.id}/${f.joiner.id}`),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Users

  'IdentitySyncStore.upsertUser': [
    scenario({
      title: 'creates a user under its id',
      arrange: async () => {
        const id = randomUUID();
        return { id, username: nameFor(id) };
      },
      act: (s, a, f) =>
        s.identity.upsertUser(a, {
          id: f.id,
          username: f.username,
          email: `${f.username}@example.test`,
          name: 'Ann',
        }),
      observe: (f, w) => userRow(w, f.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'created');
        assert.deepEqual(await auditDiff(w, 'user', f.id), {
          username: f.username,
          email: `${f.username}@example.test`,
          name: 'Ann',
          status: 'active',
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'user', f.id)],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "changes a user's email and status, keeping the name it is not given",
      arrange: async (w: World) => {
        const u = await newUser(w);
        await sql(w, `UPDATE users SET name = 'Bo' WHERE id = $1`, [u.id]);
        return { u };
      },
      act: (s, a, f) =>
        s.identity.upsertUser(a, {
          id: f.u.id,
          username: f.u.username,
          email: `new-${f.u.email}`,
          status: 'suspended',
        }),
      observe: (f, w) => userRow(w, f.u.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'changed');
        assert.deepEqual(await userRow(w, f.u.id), [
          { username: f.u.username, email: `new-${f.u.email}`, name: 'Bo', status: 'suspended' },
        ]);
        assert.deepEqual(await auditDiff(w, 'user', f.u.id), {
          user: { id: f.u.id, username: f.u.username },
          email: { before: f.u.email, after: `new-${f.u.email}` },
          status: { before: 'active', after: 'suspended' },
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'write', 'user', f.u.id)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.deleteUser': [
    scenario({
      title: 'a user with a site role, memberships, a key and an override',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const g = await newGroup(w, org.id);
        const u = await newUser(w, ['auditor']);
        await joinOrganization(w, org.id, u.id, ['organization-admin']);
        await joinGroup(w, g.id, u.id);
        await addOverride(w, u.id, g.id);
        return { org, g, u, keyId: await addKey(w, u.id) };
      },
      act: (s, a, f) => s.identity.deleteUser(a, f.u.id),
      observe: (f, w) => userDependents(w, f.u.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await userDependents(w, f.u.id), []);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'user', f.u.id),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'user_deleted'),
        entry(DATABASE, 'delete', 'group_member', `${f.g.id}/${f.u.id}`, 'user_deleted'),
        entry(DATABASE, 'delete', 'organization_member', `${f.org.id}/${f.u.id}`, 'user_deleted'),
        entry(DATABASE, 'delete', 'api_key', f.keyId, 'user_deleted'),
        entry(DATABASE, 'delete', 'user_roles', f.u.id, 'user_deleted'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'a user with nothing attached',
      arrange: async (w: World) => ({ u: await newUser(w) }),
      act: (s, a, f) => s.identity.deleteUser(a, f.u.id),
      observe: (f, w) => userDependents(w, f.u.id),
      expect: (r) => assert.equal(r, true),
      audits: (_r, f, _w, a) => [entry(a, 'delete', 'user', f.u.id)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.usernames': [
    scenario({
      title: 'of a user (named twice) and an unknown id; of no ids',
      arrange: async (w: World) => ({ u: await newUser(w), unknown: randomUUID() }),
      act: async (s, a, f) => [
        await s.identity.usernames(a, [f.u.id, f.unknown, f.u.id]),
        await s.identity.usernames(a, []),
      ],
      expect: (r, f) => assert.deepEqual(r, [new Map([[f.u.id, f.u.username]]), new Map()]),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.usersDifferentFrom': [
    scenario({
      title: 'a listing with a same, a changed and a missing user',
      arrange: async (w: World) => ({
        same: await newUser(w),
        changed: await newUser(w),
        missing: randomUUID(),
      }),
      act: (s, a, f) =>
        s.identity.usersDifferentFrom(a, [
          { id: f.same.id, username: f.same.username, email: f.same.email },
          { id: f.changed.id, username: f.changed.username, email: f.changed.email, name: 'Cy' },
          { id: f.missing, username: nameFor(f.missing), email: `${nameFor(f.missing)}@example.test` },
        ]),
      expect: (r, f) => assert.deepEqual(sorted(r), sorted([f.changed.id, f.missing])),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Organizations

  'IdentitySyncStore.getOrganization': [
    scenario({
      title: 'an organization by its id',
      arrange: async (w: World) => ({ org: await newOrganization(w) }),
      act: (s, a, f) => s.identity.getOrganization(a, f.org.id),
      expect: (o, f) => assert.deepEqual({ id: o?.id, name: o?.name }, f.org),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.upsertOrganization': [
    scenario({
      title: 'creates an organization, with its Everyone group',
      arrange: async () => {
        const id = randomUUID();
        return { id, name: nameFor(id) };
      },
      act: (s, a, f) => s.identity.upsertOrganization(a, { id: f.id, name: f.name, displayName: 'Acme' }),
      observe: (f, w) => organizationRows(w, f.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'created');
        assert.deepEqual(await organizationRows(w, f.id), [
          { kind: 'organization', name: f.name, display_name: 'Acme' },
          { kind: 'group', name: 'Everyone', display_name: null },
        ]);
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'organization', f.id)],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'renames an organization',
      arrange: async (w: World) => ({ org: await newOrganization(w) }),
      act: (s, a, f) => s.identity.upsertOrganization(a, { id: f.org.id, name: `${f.org.name}-x` }),
      observe: (f, w) => organizationRows(w, f.org.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'changed');
        assert.deepEqual(await auditDiff(w, 'organization', f.org.id), {
          name: { before: f.org.name, after: `${f.org.name}-x` },
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'write', 'organization', f.org.id)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.deleteOrganization': [
    scenario({
      title: 'an organization with a group, members, budgets and overrides',
      arrange: async (w: World) => {
        const { org, g, u: inGroup } = await orgGroupMember(w);
        const admin = await newUser(w);
        await joinOrganization(w, org.id, admin.id, ['organization-admin']);
        await addOverride(w, inGroup.id, g.id);
        await addOverride(w, admin.id, org.id);
        await addBudget(w, g.id);
        await addBudget(w, org.id);
        return { org, g, inGroup, admin };
      },
      act: (s, a, f) => s.identity.deleteOrganization(a, f.org.id),
      observe: (f, w) => organizationDependents(w, f.org.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await organizationDependents(w, f.org.id), []);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'organization', f.org.id),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.inGroup.id, 'group_deleted'),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.admin.id, 'group_deleted'),
        entry(DATABASE, 'delete', 'group_member', `${f.g.id}/${f.inGroup.id}`, 'group_deleted'),
        entry(DATABASE, 'delete', 'group_ai_budget', f.g.id, 'group_deleted'),
        entry(DATABASE, 'delete', 'group_ai_budget', f.org.id, 'group_deleted'),
        entry(
          DATABASE,
          'delete',
          'organization_member',
          `${f.org.id}/${f.inGroup.id}`,
          'organization_deleted',
        ),
        entry(DATABASE, 'delete', 'organization_member', `${f.org.id}/${f.admin.id}`, 'organization_deleted'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Organization members

  'IdentitySyncStore.upsertOrganizationMember': [
    scenario({
      title: 'adds a member with roles',
      arrange: async (w: World) => ({ org: await newOrganization(w), u: await newUser(w) }),
      act: (s, a, f) => s.identity.upsertOrganizationMember(a, f.org.id, f.u, ['organization-auditor']),
      observe: (f, w) => membershipRow(w, f.org.id, f.u.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'created');
        assert.deepEqual(await auditDiff(w, 'organization_member', `${f.org.id}/${f.u.id}`), {
          user: { id: f.u.id, username: f.u.username },
          roles: { before: null, after: ['organization-auditor'] },
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'organization_member', `${f.org.id}/${f.u.id}`)],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "sets a member's roles",
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const u = await newUser(w);
        await joinOrganization(w, org.id, u.id, ['organization-auditor']);
        return { org, u };
      },
      act: (s, a, f) => s.identity.upsertOrganizationMember(a, f.org.id, f.u, ['organization-admin']),
      observe: (f, w) => membershipRow(w, f.org.id, f.u.id),
      expect: (r) => assert.equal(r, 'changed'),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'organization_member', `${f.org.id}/${f.u.id}`)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.removeOrganizationMember': [
    scenario({
      title: 'a member of a group of it with an override there: both go with the membership',
      arrange: async (w: World) => {
        const f = await orgGroupMember(w);
        await addOverride(w, f.u.id, f.g.id);
        return f;
      },
      act: (s, a, f) => s.identity.removeOrganizationMember(a, f.org.id, f.u.id),
      observe: (f, w) => userDependents(w, f.u.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await userDependents(w, f.u.id), [{ kind: 'user', key: f.u.id }]);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'organization_member', `${f.org.id}/${f.u.id}`),
        entry(DATABASE, 'delete', 'group_member', `${f.g.id}/${f.u.id}`, 'membership_removed'),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'membership_removed'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: "a member with an override on the Everyone group; the user's other organization stays",
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const other = await newOrganization(w);
        const u = await newUser(w);
        await joinOrganization(w, org.id, u.id, ['organization-user-admin']);
        await joinOrganization(w, other.id, u.id);
        await addOverride(w, u.id, org.id);
        return { org, other, u };
      },
      act: (s, a, f) => s.identity.removeOrganizationMember(a, f.org.id, f.u.id),
      observe: (f, w) => userDependents(w, f.u.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await userDependents(w, f.u.id), [
          { kind: 'organization_member', key: f.other.id },
          { kind: 'user', key: f.u.id },
        ]);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'organization_member', `${f.org.id}/${f.u.id}`),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'membership_removed'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.organizationMembers': [
    scenario({
      title: 'members and their roles',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const admin = await newUser(w);
        const plain = await newUser(w);
        await joinOrganization(w, org.id, admin.id, ['organization-admin', 'organization-auditor']);
        await joinOrganization(w, org.id, plain.id);
        return { org, admin, plain };
      },
      act: (s, a, f) => s.identity.organizationMembers(a, f.org.id),
      expect: (r, f) =>
        assert.deepEqual(
          new Map(r),
          new Map([
            [f.admin.id, ['organization-admin', 'organization-auditor']],
            [f.plain.id, []],
          ]),
        ),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Groups

  'IdentitySyncStore.getGroup': [
    scenario({
      title: 'a group by its id',
      arrange: async (w: World) => ({ g: await newGroup(w, (await newOrganization(w)).id) }),
      act: (s, a, f) => s.identity.getGroup(a, f.g.id),
      expect: (g, f) => assert.deepEqual(g, f.g),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.upsertGroup': [
    scenario({
      title: 'creates a group under its id',
      arrange: async (w: World) => ({ org: await newOrganization(w), id: randomUUID() }),
      act: (s, a, f) => s.identity.upsertGroup(a, { id: f.id, organizationId: f.org.id, name: 'Research' }),
      observe: (f, w) => groupRow(w, f.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'created');
        assert.deepEqual(await groupRow(w, f.id), [
          { organization_id: f.org.id, name: 'Research', display_name: null },
        ]);
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'group', f.id)],
      allow: ALLOW,
      deny: DENY,
    }),
    scenario({
      title: 'gives a group a display name, keeping its name',
      arrange: async (w: World) => ({ g: await newGroup(w, (await newOrganization(w)).id) }),
      act: (s, a, f) =>
        s.identity.upsertGroup(a, {
          id: f.g.id,
          organizationId: f.g.organizationId,
          name: f.g.name,
          displayName: 'Research & Development',
        }),
      observe: (f, w) => groupRow(w, f.g.id),
      expect: async (r, f, w) => {
        assert.equal(r, 'changed');
        assert.deepEqual(await auditDiff(w, 'group', f.g.id), {
          display_name: { before: null, after: 'Research & Development' },
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'write', 'group', f.g.id)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.deleteGroup': [
    scenario({
      title: 'a group with a member, a budget and an override',
      arrange: async (w: World) => {
        const f = await orgGroupMember(w);
        await addOverride(w, f.u.id, f.g.id);
        await addBudget(w, f.g.id);
        return f;
      },
      act: (s, a, f) => s.identity.deleteGroup(a, f.g.id),
      observe: (f, w) => organizationDependents(w, f.org.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await organizationDependents(w, f.org.id), [
          { kind: 'group', key: f.org.id },
          { kind: 'organization', key: f.org.id },
          { kind: 'organization_member', key: f.u.id },
        ]);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'group', f.g.id),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'group_deleted'),
        entry(DATABASE, 'delete', 'group_member', `${f.g.id}/${f.u.id}`, 'group_deleted'),
        entry(DATABASE, 'delete', 'group_ai_budget', f.g.id, 'group_deleted'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.groupsOfOrganization': [
    scenario({
      title: 'the groups other than Everyone',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        return { org, groups: [await newGroup(w, org.id), await newGroup(w, org.id)] };
      },
      act: (s, a, f) => s.identity.groupsOfOrganization(a, f.org.id),
      expect: (r, f) =>
        assert.deepEqual(
          r,
          [...f.groups].sort((x, y) => x.id.localeCompare(y.id)),
        ),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Group members

  'IdentitySyncStore.addGroupMember': [
    scenario({
      title: 'a member of the organization',
      arrange: async (w: World) => {
        const org = await newOrganization(w);
        const g = await newGroup(w, org.id);
        const u = await newUser(w);
        await joinOrganization(w, org.id, u.id);
        return { g, u };
      },
      act: (s, a, f) => s.identity.addGroupMember(a, f.g, f.u),
      observe: (f, w) => groupMemberRows(w, f.g.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await auditDiff(w, 'group_member', `${f.g.id}/${f.u.id}`), {
          group: { id: f.g.id, name: f.g.name },
          user: { id: f.u.id, username: f.u.username },
        });
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'group_member', `${f.g.id}/${f.u.id}`)],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.removeGroupMember': [
    scenario({
      title: 'a member with an override on the group, which goes with it',
      arrange: async (w: World) => {
        const f = await orgGroupMember(w);
        await addOverride(w, f.u.id, f.g.id);
        return f;
      },
      act: (s, a, f) => s.identity.removeGroupMember(a, f.g.id, f.u.id),
      observe: (f, w) => groupMemberRows(w, f.g.id),
      expect: async (r, f, w) => {
        assert.equal(r, true);
        assert.deepEqual(await membershipRow(w, f.org.id, f.u.id), [{ roles: [] }]);
      },
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'group_member', `${f.g.id}/${f.u.id}`),
        entry(DATABASE, 'delete', 'user_ai_budget_override', f.u.id, 'membership_removed'),
      ],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.groupMembershipsInOrganization': [
    scenario({
      title: "the organization's, not another organization's",
      arrange: async (w: World) => {
        const { org, g, u } = await orgGroupMember(w);
        const g2 = await newGroup(w, org.id);
        const other = await newUser(w);
        await joinOrganization(w, org.id, other.id);
        await joinGroup(w, g2.id, other.id);
        await joinGroup(w, g2.id, u.id);
        // The same user in a group of another organization: no part of it.
        const elsewhere = await newOrganization(w);
        const g3 = await newGroup(w, elsewhere.id);
        await joinOrganization(w, elsewhere.id, u.id);
        await joinGroup(w, g3.id, u.id);
        return { org, g, g2, u, other };
      },
      act: (s, a, f) => s.identity.groupMembershipsInOrganization(a, f.org.id),
      expect: (r, f) =>
        assert.deepEqual(
          sorted(r),
          sorted([`${f.g.id}/${f.u.id}`, `${f.g2.id}/${f.u.id}`, `${f.g2.id}/${f.other.id}`]),
        ),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  // Snapshot parts: bookkeeping of the listener, not audited (the snapshot's changes are, when applied).

  'IdentitySyncStore.storeSnapshotPart': [
    scenario({
      title: 'a new part, then the same part again',
      arrange: async () => ({ snapshotId: randomUUID(), organizationId: randomUUID() }),
      act: async (s, a, f) => {
        const part = {
          snapshotId: f.snapshotId,
          index: 2,
          count: 3,
          organizationId: f.organizationId,
          eventId: randomUUID(),
          time: T1,
          data: { users: [] },
        };
        return [await s.identity.storeSnapshotPart(a, part), await s.identity.storeSnapshotPart(a, part)];
      },
      observe: (f, w) => snapshotRows(w, [f.snapshotId]),
      expect: (r) => assert.deepEqual(r, [true, false]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.snapshotParts': [
    scenario({
      title: 'the parts kept, in order',
      arrange: async (w: World) => {
        const snapshotId = randomUUID();
        await addSnapshotPart(w, { snapshotId, index: 3, count: 3 });
        await addSnapshotPart(w, { snapshotId, index: 1, count: 3 });
        return { snapshotId };
      },
      act: (s, a, f) => s.identity.snapshotParts(a, f.snapshotId),
      expect: (r) =>
        assert.deepEqual(
          r.map((p) => [p.index, p.count, p.data]),
          [
            [1, 3, { part: 1 }],
            [3, 3, { part: 3 }],
          ],
        ),
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.deleteSnapshotParts': [
    scenario({
      title: "a snapshot's parts, not another's",
      arrange: async (w: World) => {
        const snapshotId = randomUUID();
        const other = randomUUID();
        await addSnapshotPart(w, { snapshotId, index: 1, count: 2 });
        await addSnapshotPart(w, { snapshotId, index: 2, count: 2 });
        await addSnapshotPart(w, { snapshotId: other, index: 1, count: 2 });
        return { snapshotId, other };
      },
      act: (s, a, f) => s.identity.deleteSnapshotParts(a, f.snapshotId),
      observe: (f, w) => snapshotRows(w, [f.snapshotId, f.other]),
      expect: async (_r, f, w) =>
        assert.deepEqual(await snapshotRows(w, [f.snapshotId, f.other]), [
          { snapshot_id: f.other, part_index: 1, part_count: 2 },
        ]),
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],

  'IdentitySyncStore.deleteAbandonedSnapshotParts': [
    scenario({
      title: 'parts older than the limit, not recent ones',
      arrange: async (w: World) => {
        const old = randomUUID();
        const recent = randomUUID();
        await addSnapshotPart(w, { snapshotId: old, index: 1, count: 2, hoursAgo: 50 });
        await addSnapshotPart(w, { snapshotId: recent, index: 1, count: 2, hoursAgo: 1 });
        return { old, recent };
      },
      act: (s, a) => s.identity.deleteAbandonedSnapshotParts(a, 48),
      observe: (f, w) => snapshotRows(w, [f.old, f.recent]),
      expect: async (r, f, w) => {
        // At least this case's old part; refused attempts may have left theirs.
        assert.ok(r >= 1, `deleted ${r}`);
        assert.deepEqual(await snapshotRows(w, [f.old, f.recent]), [
          { snapshot_id: f.recent, part_index: 1, part_count: 2 },
        ]);
      },
      audits: () => [],
      allow: ALLOW,
      deny: DENY,
    }),
  ],
};
