import { randomUUID } from 'node:crypto';
import { Stores } from '@aigov/authz';
import type { IdentityDataBySubject, IdentityEvent, IdentitySubject } from '@aigov/contracts';
import { createDataSource } from '@aigov/db';
import {
  beginOrganizationRemoval,
  createTestDatabase,
  insertOverride,
  someoneWaitsForLock,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import type { ApplyOutcome } from './applier';
import { IdentityApplier } from './identity-applier';

// The effect of each identity event on a real PostgreSQL: the rows, the audit entries, the
// overrides the triggers end, and the idempotency and ordering rules.

let db: TestDatabase;
let ds: DataSource;
let applier: IdentityApplier;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 4, applicationName: 'aigov-identity-applier-test' });
  await ds.initialize();
  applier = new IdentityApplier(new Stores(ds));
});
afterAll(async () => {
  await ds.destroy();
  await db.drop();
});

let clock = Date.parse('2026-01-01T00:00:00Z');
/** A later time on every call, unless one is given (seconds after the test's epoch). */
const at = (seconds?: number) =>
  new Date(seconds === undefined ? (clock += 1000) : Date.parse('2030-06-01T00:00:00Z') + seconds * 1000);

function ev<S extends IdentitySubject>(
  type: S,
  data: IdentityDataBySubject[S],
  time = at(),
  id = randomUUID(),
) {
  return { id, source: 'test', type, time, data } as IdentityEvent;
}
const kinds = (outcomes: ApplyOutcome[]) => outcomes.map((o) => o.kind);
const apply = async (...events: IdentityEvent[]) => kinds(await applier.applyBatch(events));
const rows = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  await ds.query<T[]>(sql, params);
const auditOf = (requestId: string) =>
  rows<{ actor: string; action: string; resource_type: string; resource_id: string; reason: string | null }>(
    `SELECT actor, action, resource_type, resource_id, reason FROM audit_logs WHERE request_id = $1 ORDER BY actor, resource_type, resource_id`,
    [requestId],
  );
const auditCount = async () =>
  Number((await rows<{ n: string }>('SELECT count(*) AS n FROM audit_logs'))[0].n);

/** A user, an organization with the user as member, and a group of it with the user in it (unless not `inGroup`). */
async function world(prefix: string, { inGroup = true } = {}) {
  const user = randomUUID();
  const org = randomUUID();
  const group = randomUUID();
  const events = [
    ev('identity.user.upserted', { user_id: user, username: `${prefix}-u`, email: `${prefix}@example.com` }),
    ev('identity.organization.upserted', { organization_id: org, name: `${prefix}-org` }),
    ev('identity.organization.member.added', {
      organization_id: org,
      user_id: user,
      roles: ['organization-auditor'],
    }),
    ev('identity.group.upserted', { group_id: group, organization_id: org, name: `${prefix} group` }),
    ...(inGroup ? [ev('identity.group.member.added', { group_id: group, user_id: user })] : []),
  ];
  expect(await apply(...events)).toEqual(events.map(() => 'applied'));
  return { user, org, group };
}
const isOrgMember = async (org: string, user: string) =>
  (await rows('SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2', [org, user]))
    .length > 0;
const isGroupMember = async (group: string, user: string) =>
  (await rows('SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2', [group, user])).length > 0;
const override = (user: string, group: string) => insertOverride(ds, user, group, 5_000_000);
const overrideOf = async (user: string) =>
  (
    await rows<{ group_id: string }>('SELECT group_id FROM user_ai_budget_overrides WHERE user_id = $1', [
      user,
    ])
  )[0] ?? null;

describe('each event has its documented effect and audit entries', () => {
  it('user.upserted creates, changes only what differs, and says nothing when nothing differs', async () => {
    const id = randomUUID();
    const create = ev('identity.user.upserted', {
      user_id: id,
      username: 'ada',
      email: 'ada@example.com',
      name: 'Ada',
    });
    expect(await apply(create)).toEqual(['applied']);
    expect(await auditOf(create.id)).toEqual([
      {
        actor: 'system:membership-listener',
        action: 'create',
        resource_type: 'user',
        resource_id: id,
        reason: null,
      },
    ]);
    const same = ev('identity.user.upserted', { user_id: id, username: 'ada', email: 'ada@example.com' });
    expect(await apply(same)).toEqual(['applied']);
    expect(await auditOf(same.id)).toEqual([]);
    const change = ev('identity.user.upserted', {
      user_id: id,
      username: 'ada',
      email: 'ada@new.example.com',
      status: 'suspended',
    });
    expect(await apply(change)).toEqual(['applied']);
    const [entry] = await rows<{ action: string; diff: Record<string, unknown> }>(
      'SELECT action, diff FROM audit_logs WHERE request_id = $1',
      [change.id],
    );
    expect(entry.action).toBe('write');
    expect(entry.diff).toMatchObject({
      email: { before: 'ada@example.com', after: 'ada@new.example.com' },
      status: { before: 'active', after: 'suspended' },
    });
    expect(entry.diff).not.toHaveProperty('name'); // absent name keeps the name
    const [u] = await rows<{ name: string; status: string }>('SELECT name, status FROM users WHERE id = $1', [
      id,
    ]);
    expect(u).toEqual({ name: 'Ada', status: 'suspended' });
  });

  it('organization.upserted creates the organization with its Everyone group; member.added sets roles', async () => {
    const { user, org, group } = await world('w1');
    expect(await rows('SELECT name FROM groups WHERE id = $1', [org])).toEqual([{ name: 'Everyone' }]);
    const [m] = await rows<{ roles: string[] }>(
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2',
      [org, user],
    );
    expect(m.roles).toEqual(['organization-auditor']);
    // Without roles, an existing member keeps its roles (and nothing is audited).
    const keep = ev('identity.organization.member.added', { organization_id: org, user_id: user });
    expect(await apply(keep)).toEqual(['applied']);
    expect(await auditOf(keep.id)).toEqual([]);
    expect(await isGroupMember(group, user)).toBe(true);
  });

  it('group.member.removed for the attributed group ends the override, recorded by the database', async () => {
    const { user, group } = await world('w2');
    await override(user, group);
    const remove = ev('identity.group.member.removed', { group_id: group, user_id: user });
    expect(await apply(remove)).toEqual(['applied']);
    expect(await overrideOf(user)).toBeNull();
    expect(await auditOf(remove.id)).toEqual([
      {
        actor: 'system:database',
        action: 'delete',
        resource_type: 'user_ai_budget_override',
        resource_id: user,
        reason: 'membership_removed',
      },
      {
        actor: 'system:membership-listener',
        action: 'delete',
        resource_type: 'group_member',
        resource_id: `${group}/${user}`,
        reason: null,
      },
    ]);
  });

  it('organization.member.removed ends overrides on Everyone and on the organization groups', async () => {
    const a = await world('w3');
    await override(a.user, a.org); // on Everyone
    const other = randomUUID();
    await apply(
      ev('identity.user.upserted', { user_id: other, username: 'w3-other', email: 'w3-other@example.com' }),
      ev('identity.organization.member.added', { organization_id: a.org, user_id: other }),
      ev('identity.group.member.added', { group_id: a.group, user_id: other }),
    );
    await override(other, a.group);
    const r1 = ev('identity.organization.member.removed', { organization_id: a.org, user_id: a.user });
    const r2 = ev('identity.organization.member.removed', { organization_id: a.org, user_id: other });
    expect(await apply(r1, r2)).toEqual(['applied', 'applied']);
    expect(await overrideOf(a.user)).toBeNull();
    expect(await overrideOf(other)).toBeNull();
    expect(await isGroupMember(a.group, other)).toBe(false);
    const types = (await auditOf(r2.id)).map((e) => `${e.actor} ${e.action} ${e.resource_type}`);
    expect(types).toEqual(
      expect.arrayContaining([
        'system:database delete user_ai_budget_override',
        'system:database delete group_member',
        'system:membership-listener delete organization_member',
      ]),
    );
  });

  it('deletions of users, groups and organizations remove what goes with them', async () => {
    const { user, org, group } = await world('w4');
    expect(await apply(ev('identity.group.deleted', { group_id: group }))).toEqual(['applied']);
    expect(await rows('SELECT 1 FROM groups WHERE id = $1', [group])).toEqual([]);
    expect(await apply(ev('identity.user.deleted', { user_id: user }))).toEqual(['applied']);
    expect(await rows('SELECT 1 FROM users WHERE id = $1', [user])).toEqual([]);
    expect(await apply(ev('identity.organization.deleted', { organization_id: org }))).toEqual(['applied']);
    expect(await rows('SELECT 1 FROM organizations WHERE id = $1', [org])).toEqual([]);
    // Removing what is not there is a no-op that still counts.
    expect(await apply(ev('identity.user.deleted', { user_id: randomUUID() }))).toEqual(['applied']);
  });
});

describe('group membership events applied in runs', () => {
  it('one batch: each removal ends its own override under its own request id; repeats see what came before', async () => {
    const org = randomUUID();
    const groups = [randomUUID(), randomUUID()];
    const users = Array.from({ length: 12 }, () => randomUUID());
    expect(
      await apply(
        ev('identity.organization.upserted', { organization_id: org, name: 'runs-org' }),
        ...groups.map((g, i) =>
          ev('identity.group.upserted', { group_id: g, organization_id: org, name: `runs group ${i}` }),
        ),
        ...users.map((u, i) =>
          ev('identity.user.upserted', {
            user_id: u,
            username: `runs-u${i}`,
            email: `runs-u${i}@example.com`,
          }),
        ),
        ...users.map((u) => ev('identity.organization.member.added', { organization_id: org, user_id: u })),
      ),
    ).toEqual(Array<string>(3 + 2 * users.length).fill('applied'));
    // Users 0..9 in group 0 with an override on it; 10 and 11 outside the groups.
    expect(
      await apply(
        ...users
          .slice(0, 10)
          .map((u) => ev('identity.group.member.added', { group_id: groups[0], user_id: u })),
      ),
    ).toEqual(Array<string>(10).fill('applied'));
    for (const u of users.slice(0, 10)) await override(u, groups[0]);

    const removals = users
      .slice(0, 10)
      .map((u) => ev('identity.group.member.removed', { group_id: groups[0], user_id: u }));
    const addA = ev('identity.group.member.added', { group_id: groups[1], user_id: users[10] });
    const removeA = ev('identity.group.member.removed', { group_id: groups[1], user_id: users[10] });
    const addAgain = ev('identity.group.member.added', { group_id: groups[1], user_id: users[10] });
    const late = ev(
      'identity.group.member.added',
      { group_id: groups[0], user_id: users[3] },
      new Date('2025-01-01T00:00:00Z'),
    );
    const outsider = ev('identity.group.member.added', { group_id: groups[1], user_id: randomUUID() });
    const batch = [
      removals[0],
      addA,
      removals[1],
      removals[2],
      ev('identity.group.member.removed', { group_id: org, user_id: users[11] }),
      removals[3],
      removeA,
      removals[4],
      removals[4],
      late,
      removals[5],
      outsider,
      addAgain,
      ...removals.slice(6),
    ];
    const before = await auditCount();
    const out = await applier.applyBatch(batch);
    expect(kinds(out)).toEqual([
      'applied', 'applied', 'applied', 'applied', 'dead', 'applied', 'applied', 'applied',
      'duplicate', 'stale', 'applied', 'retry', 'applied', 'applied', 'applied', 'applied', 'applied',
    ]); // prettier-ignore
    for (const r of removals) {
      const u = (r.data as { user_id: string }).user_id;
      expect(await overrideOf(u)).toBeNull();
      expect(await isGroupMember(groups[0], u)).toBe(false);
      expect(await auditOf(r.id)).toEqual([
        {
          actor: 'system:database',
          action: 'delete',
          resource_type: 'user_ai_budget_override',
          resource_id: u,
          reason: 'membership_removed',
        },
        {
          actor: 'system:membership-listener',
          action: 'delete',
          resource_type: 'group_member',
          resource_id: `${groups[0]}/${u}`,
          reason: null,
        },
      ]);
    }
    // Added, removed and added again within the batch: three changes, three entries.
    const a = `${groups[1]}/${users[10]}`;
    const entryOf = (action: string) => [
      {
        actor: 'system:membership-listener',
        action,
        resource_type: 'group_member',
        resource_id: a,
        reason: null,
      },
    ];
    expect(await auditOf(addA.id)).toEqual(entryOf('create'));
    expect(await auditOf(removeA.id)).toEqual(entryOf('delete'));
    expect(await auditOf(addAgain.id)).toEqual(entryOf('create'));
    expect(await isGroupMember(groups[1], users[10])).toBe(true);
    expect(await auditOf(late.id)).toEqual([]);
    expect((await auditCount()) - before).toBe(2 * removals.length + 3);
    // Recorded once each: a redelivery of the whole batch is all duplicates (and the two dead again).
    expect(kinds(await applier.applyBatch(batch))).toEqual(
      batch.map((_, i) => (out[i].kind === 'dead' || out[i].kind === 'retry' ? out[i].kind : 'duplicate')),
    );
  });
});

describe('group membership events racing another transaction', () => {
  it('a removal that waits for the claim of a concurrent add deletes the membership that add inserted', async () => {
    const { user, group } = await world('race1');
    const removedAt = at();
    expect(await apply(ev('identity.group.member.removed', { group_id: group, user_id: user }))).toEqual([
      'applied',
    ]);
    // Another instance applying an add at t2: its claim taken and its row inserted, not committed.
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      await other.startTransaction();
      const t2 = at();
      await other.query(
        `UPDATE identity_versions SET time = $3, event_id = 'other' WHERE entity = 'group_member' AND key = $1 || '/' || $2`,
        [group, user, t2],
      );
      await other.query('INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [group, user]);
      // The removal at t3 waits for that claim...
      const remove = ev('identity.group.member.removed', { group_id: group, user_id: user });
      const removing = applier.applyBatch([remove]);
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      // ...and then removes the membership the add committed meanwhile.
      expect(kinds(await removing)).toEqual(['applied']);
      expect(await isGroupMember(group, user)).toBe(false);
      expect((await auditOf(remove.id)).map((e) => e.action)).toEqual(['delete']);
      expect(removedAt < remove.time).toBe(true);
    } finally {
      await other.release();
    }
  });
});

describe('group membership events racing another transaction, when the membership goes', () => {
  it('an add whose organization membership is being removed waits for the removal, then is retried', async () => {
    const { user, org } = await world('race2');
    const g = randomUUID();
    expect(
      await apply(ev('identity.group.upserted', { group_id: g, organization_id: org, name: 'race2 other' })),
    ).toEqual(['applied']);
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      // Another transaction removes the user from the organization (and so from its groups), not committed.
      await other.startTransaction();
      await other.query('DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
        org,
        user,
      ]);
      const add = ev('identity.group.member.added', { group_id: g, user_id: user });
      const applying = applier.applyBatch([add]);
      expect(await someoneWaitsForLock(ds)).toBe(true); // the add holds the organization membership first: it waits
      await other.commitTransaction();
      expect(kinds(await applying)).toEqual(['retry']);
      expect(await isGroupMember(g, user)).toBe(false);
      expect(await auditOf(add.id)).toEqual([]);
      expect(await rows('SELECT 1 FROM identity_applied_events WHERE event_id = $1', [add.id])).toEqual([]);
    } finally {
      await other.release();
    }
  });
});

describe('organization removal racing a later group removal', () => {
  it('a group membership removed by a newer event while the organization removal waits is no rejoin', async () => {
    const { user, group, org } = await world('race3');
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      // Another instance applies group.member.removed at t2: claimed and deleted, not committed.
      await other.startTransaction();
      const removeOrg = ev('identity.organization.member.removed', { organization_id: org, user_id: user });
      const t2 = at();
      await other.query(
        `UPDATE identity_versions SET time = $3, event_id = 'other' WHERE entity = 'group_member' AND key = $1 || '/' || $2`,
        [group, user, t2],
      );
      await other.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [group, user]);
      // The organization removal at t1 < t2 still sees the membership and waits for its key.
      const removing = applier.applyBatch([removeOrg]);
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      expect(kinds(await removing)).toEqual(['applied']);
      expect(await isGroupMember(group, user)).toBe(false);
      expect(await isOrgMember(org, user)).toBe(false);
    } finally {
      await other.release();
    }
  });
});

describe('organization removal racing a group membership add (a rejoin after both already applied)', () => {
  // The history: the user joins group G at t1, leaves the organization at t2 (which ends G's
  // membership), rejoins the organization at t3. The rejoin is applied first, so the removal
  // keeps the organization membership and only ends group memberships. Applied one after the
  // other, in either order, G's membership ends up absent; these are the two interleavings of
  // two instances that must end the same way.
  async function setting(prefix: string) {
    const { user, org, group } = await world(prefix, { inGroup: false });
    const [t1, t2, t3] = [at(), at(), at()];
    const rejoin = ev(
      'identity.organization.member.added',
      { organization_id: org, user_id: user, roles: [] },
      t3,
    );
    expect(await apply(rejoin)).toEqual(['applied']);
    const add = ev('identity.group.member.added', { group_id: group, user_id: user }, t1);
    const leave = ev('identity.organization.member.removed', { organization_id: org, user_id: user }, t2);
    return { user, org, group, add, leave, t1, t2 };
  }

  it('the removal waits for an add in flight and then ends the membership it inserted', async () => {
    const { user, org, group, leave, t1 } = await setting('race4');
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      // Another instance applying the add at t1: its first statement (which holds the
      // organization membership) and its insert done, not committed.
      await other.startTransaction();
      await other.query(
        'SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR KEY SHARE',
        [org, user],
      );
      await other.query(
        `INSERT INTO identity_versions (entity, key, time, event_id) VALUES ('group_member', $1 || '/' || $2, $3, 'other')`,
        [group, user, t1],
      );
      await other.query('INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [group, user]);
      const leaving = applier.applyBatch([leave]);
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      expect(kinds(await leaving)).toEqual(['applied']);
      expect(await isGroupMember(group, user)).toBe(false);
      expect(await isOrgMember(org, user)).toBe(true);
    } finally {
      await other.release();
    }
  });

  it('an add that waited for the removal writes nothing: stale', async () => {
    const { user, org, group, add, t2 } = await setting('race5');
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      // Another instance applying the removal at t2: the membership locked and the end of group
      // memberships recorded, not committed (the rejoin keeps the membership itself).
      await other.startTransaction();
      await beginOrganizationRemoval(other, org, user, t2);
      const adding = applier.applyBatch([add]);
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      expect(kinds(await adding)).toEqual(['stale']);
      expect(await isGroupMember(group, user)).toBe(false);
      expect(await auditOf(add.id)).toEqual([]);
      // Recorded: a redelivery is a duplicate.
      expect(await apply(add)).toEqual(['duplicate']);
    } finally {
      await other.release();
    }
  });
});

describe('idempotency and order', () => {
  it('the same event three times has the effect of one', async () => {
    const { user, org } = await world('d1');
    const g = randomUUID();
    const create = ev('identity.group.upserted', { group_id: g, organization_id: org, name: 'dup' });
    const add = ev('identity.group.member.added', { group_id: g, user_id: user });
    const before = await auditCount();
    expect(await apply(create, add, add)).toEqual(['applied', 'applied', 'duplicate']);
    expect(await apply(add, create)).toEqual(['duplicate', 'duplicate']);
    expect((await auditCount()) - before).toBe(2);
    expect(await isGroupMember(g, user)).toBe(true);
  });

  it('a late member.added never resurrects a membership removed later', async () => {
    const { user, group, org } = await world('o1');
    const removed = ev('identity.group.member.removed', { group_id: group, user_id: user }, at(100));
    const lateAdd = ev('identity.group.member.added', { group_id: group, user_id: user }, at(50));
    // Equal times are applied; an older time is stale.
    expect(await apply(removed, lateAdd)).toEqual(['applied', 'stale']);
    expect(await isGroupMember(group, user)).toBe(false);
    // The organization removal counts for the group memberships it took away.
    const orgRemoved = ev(
      'identity.organization.member.removed',
      { organization_id: org, user_id: user },
      at(200),
    );
    expect(await apply(orgRemoved)).toEqual(['applied']);
    expect(
      await apply(ev('identity.organization.member.added', { organization_id: org, user_id: user }, at(150))),
    ).toEqual(['stale']);
    expect(await isOrgMember(org, user)).toBe(false);
  });

  it('late events about a deleted user are ignored, not retried', async () => {
    const { user, org } = await world('o2');
    const deleted = ev('identity.user.deleted', { user_id: user }, at(1000));
    expect(await apply(deleted)).toEqual(['applied']);
    expect(
      await apply(
        ev('identity.user.upserted', { user_id: user, username: 'o2-u', email: 'o2@example.com' }, at(900)),
        ev('identity.organization.member.added', { organization_id: org, user_id: user }, at(900)),
      ),
    ).toEqual(['stale', 'stale']);
    expect(await rows('SELECT 1 FROM users WHERE id = $1', [user])).toEqual([]);
  });

  it('an event about something not known yet is retried, and applies once it is known', async () => {
    const { org } = await world('r1');
    const user = randomUUID();
    const join = ev('identity.organization.member.added', { organization_id: org, user_id: user });
    const [outcome] = await applier.applyBatch([join]);
    expect(outcome).toEqual({ kind: 'retry', reason: `unknown user ${user}` });
    expect(await rows('SELECT 1 FROM identity_applied_events WHERE event_id = $1', [join.id])).toEqual([]);
    await apply(
      ev('identity.user.upserted', { user_id: user, username: 'r1-late', email: 'r1-late@example.com' }),
    );
    expect(await apply(join)).toEqual(['applied']);
    expect(await isOrgMember(org, user)).toBe(true);
  });

  it('a taken username is retried (it may be freed by an event still to come)', async () => {
    await world('c1');
    const [outcome] = await applier.applyBatch([
      ev('identity.user.upserted', {
        user_id: randomUUID(),
        username: 'c1-u',
        email: 'c1-other@example.com',
      }),
    ]);
    expect(outcome.kind).toBe('retry');
    expect(outcome.kind === 'retry' && outcome.reason).toMatch(/users_username_key/);
  });

  it('events aimed at an Everyone group are dead at once; the rest of the batch applies', async () => {
    const { user, org } = await world('e1');
    const out = await applier.applyBatch([
      ev('identity.group.member.removed', { group_id: org, user_id: user }),
      ev('identity.group.upserted', { group_id: org, organization_id: org, name: 'x' }),
      ev('identity.group.deleted', { group_id: org }),
      ev('identity.user.upserted', { user_id: user, username: 'e1-renamed', email: 'e1@example.com' }),
    ]);
    expect(kinds(out)).toEqual(['dead', 'dead', 'dead', 'applied']);
    expect(out[0]).toMatchObject({ reason: 'targets_everyone_group' });
    expect(await isOrgMember(org, user)).toBe(true);
  });
});
