import { randomUUID } from 'node:crypto';
import { Stores } from '@aigov/authz';
import type { IdentityEvent, OrganizationSnapshotData } from '@aigov/contracts';
import { createDataSource } from '@aigov/db';
import {
  beginOrganizationRemoval,
  createTestDatabase,
  insertOverride,
  someoneWaitsForLock,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import { IdentityApplier } from './identity-applier';

// An organization snapshot converges the database to it, whatever the database held; a second
// identical snapshot changes nothing; changes newer than the snapshot are kept; a snapshot in
// parts is applied once, when its last part arrives.

let db: TestDatabase;
let ds: DataSource;
let applier: IdentityApplier;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 4, applicationName: 'aigov-snapshot-test' });
  await ds.initialize();
  applier = new IdentityApplier(new Stores(ds));
});
afterAll(async () => {
  await ds.destroy();
  await db.drop();
});

const T0 = Date.parse('2026-03-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);
const ev = (type: IdentityEvent['type'], data: unknown, time: Date): IdentityEvent =>
  ({ id: randomUUID(), source: 'test', type, time, data }) as IdentityEvent;
const apply = async (...events: IdentityEvent[]) => (await applier.applyBatch(events)).map((o) => o.kind);
const auditCount = async () =>
  Number((await ds.query<{ n: string }[]>('SELECT count(*) AS n FROM audit_logs'))[0].n);

/** The organization as the database holds it, in the snapshot's terms (sorted). */
async function stateOf(org: string) {
  const [o] = await ds.query<{ name: string }[]>('SELECT name FROM organizations WHERE id = $1', [org]);
  const members = await ds.query<{ user_id: string; roles: string[] }[]>(
    `SELECT user_id, roles FROM organization_members WHERE organization_id = $1 ORDER BY user_id`,
    [org],
  );
  const groups = await ds.query<{ group_id: string; name: string; members: string[] }[]>(
    `SELECT g.id AS group_id, g.name,
            coalesce(array_agg(gm.user_id::text ORDER BY gm.user_id) FILTER (WHERE gm.user_id IS NOT NULL), '{}') AS members
       FROM groups g LEFT JOIN group_members gm ON gm.group_id = g.id
      WHERE g.organization_id = $1 AND g.id <> g.organization_id GROUP BY g.id ORDER BY g.id`,
    [org],
  );
  return { name: o?.name, members: members.map((m) => ({ ...m, roles: [...m.roles].sort() })), groups };
}
function expectedOf(s: OrganizationSnapshotData) {
  return {
    name: s.name,
    members: [...s.members]
      .map((m) => ({ user_id: m.user_id, roles: [...m.roles].sort() }))
      .sort((a, b) => a.user_id.localeCompare(b.user_id)),
    groups: [...s.groups]
      .map((g) => ({ group_id: g.group_id, name: g.name, members: [...g.members].sort() }))
      .sort((a, b) => a.group_id.localeCompare(b.group_id)),
  };
}

const user = (n: string) => ({ user_id: randomUUID(), username: n, email: `${n}@example.com` });

describe('organization snapshots', () => {
  const org = randomUUID();
  const [ann, bob, cid, dee, eve] = ['ann', 'bob', 'cid', 'dee', 'eve'].map(user);
  const kept = randomUUID();
  const dropped = randomUUID();
  const fresh = randomUUID();
  let snapshot: OrganizationSnapshotData;

  beforeAll(async () => {
    // The database before: ann (admin), bob, dee are members; eve is not; group `kept` has ann
    // and dee, group `dropped` has bob; dee holds an override on `kept`, bob one on `dropped`.
    const out = await apply(
      ...[ann, bob, cid, dee, eve].map((u) => ev('identity.user.upserted', u, at(1))),
      ev('identity.organization.upserted', { organization_id: org, name: 'old-name' }, at(1)),
      ...[ann, bob, dee].map((u) =>
        ev(
          'identity.organization.member.added',
          { organization_id: org, user_id: u.user_id, roles: u === ann ? ['organization-admin'] : [] },
          at(1),
        ),
      ),
      ev('identity.group.upserted', { group_id: kept, organization_id: org, name: 'Kept old' }, at(1)),
      ev('identity.group.upserted', { group_id: dropped, organization_id: org, name: 'Dropped' }, at(1)),
      ev('identity.group.member.added', { group_id: kept, user_id: ann.user_id }, at(1)),
      ev('identity.group.member.added', { group_id: kept, user_id: dee.user_id }, at(1)),
      ev('identity.group.member.added', { group_id: dropped, user_id: bob.user_id }, at(1)),
    );
    expect(out.every((k) => k === 'applied')).toBe(true);
    await insertOverride(ds, dee.user_id, kept, 1);
    await insertOverride(ds, bob.user_id, dropped, 2);
    // The intended state: bob leaves, cid and eve join, ann loses admin, dee becomes auditor;
    // `kept` is renamed and holds ann and cid; `dropped` goes; `fresh` is new with eve.
    snapshot = {
      organization_id: org,
      name: 'new-name',
      users: [ann, cid, dee, { ...eve, name: 'Eve E.' }],
      members: [
        { user_id: ann.user_id, roles: [] },
        { user_id: cid.user_id, roles: [] },
        { user_id: dee.user_id, roles: ['organization-auditor'] },
        { user_id: eve.user_id, roles: ['organization-user-admin'] },
      ],
      groups: [
        { group_id: kept, name: 'Kept', members: [ann.user_id, cid.user_id] },
        { group_id: fresh, name: 'Fresh', members: [eve.user_id] },
      ],
    };
  });

  it('one snapshot makes a database that disagrees in every way equal to it', async () => {
    expect(await stateOf(org)).not.toEqual(expectedOf(snapshot));
    expect(await apply(ev('identity.organization.snapshot', snapshot, at(10)))).toEqual(['applied']);
    expect(await stateOf(org)).toEqual(expectedOf(snapshot));
    // The overrides on dropped memberships went with them, recorded by the database.
    const overrides = await ds.query<unknown[]>(
      'SELECT user_id FROM user_ai_budget_overrides WHERE user_id = ANY($1)',
      [[dee.user_id, bob.user_id]],
    );
    expect(overrides).toEqual([]);
    const reasons = await ds.query<{ reason: string }[]>(
      `SELECT reason FROM audit_logs WHERE resource_type = 'user_ai_budget_override' AND resource_id = ANY($1) ORDER BY reason`,
      [[dee.user_id, bob.user_id]],
    );
    // Memberships go before the groups and members that held them, so both end by membership removal.
    expect(reasons.map((r) => r.reason)).toEqual(['membership_removed', 'membership_removed']);
    // Users are upserted, not deleted: bob still exists.
    expect(await ds.query('SELECT name FROM users WHERE id = $1', [eve.user_id])).toEqual([
      { name: 'Eve E.' },
    ]);
    expect(await ds.query('SELECT 1 FROM users WHERE id = $1', [bob.user_id])).toHaveLength(1);
  });

  it('a second identical snapshot changes nothing', async () => {
    const before = await auditCount();
    expect(await apply(ev('identity.organization.snapshot', snapshot, at(20)))).toEqual(['applied']);
    expect(await auditCount()).toBe(before);
    expect(await stateOf(org)).toEqual(expectedOf(snapshot));
  });

  it('changes newer than the snapshot are kept; older ones are ignored afterwards', async () => {
    // bob rejoins at 40; a snapshot taken at 30 (without bob) must not remove him.
    expect(
      await apply(
        ev('identity.organization.member.added', { organization_id: org, user_id: bob.user_id }, at(40)),
        ev('identity.organization.snapshot', snapshot, at(30)),
      ),
    ).toEqual(['applied', 'applied']);
    const members = (await stateOf(org)).members.map((m) => m.user_id);
    expect(members).toContain(bob.user_id);
    // An event older than the snapshot about something it set is stale.
    expect(
      await apply(ev('identity.group.member.removed', { group_id: kept, user_id: ann.user_id }, at(25))),
    ).toEqual(['stale']);
  });

  it('a snapshot in parts is applied once, when its last part arrives', async () => {
    const org2 = randomUUID();
    const people = Array.from({ length: 30 }, (_, i) => user(`part-${i}`));
    const group = randomUUID();
    const whole: OrganizationSnapshotData = {
      organization_id: org2,
      name: 'parted',
      users: people,
      members: people.map((p) => ({ user_id: p.user_id, roles: [] })),
      groups: [{ group_id: group, name: 'All', members: people.map((p) => p.user_id) }],
    };
    const snapshotId = randomUUID();
    const parts = [0, 1, 2].map((i) => ({
      ...whole,
      users: people.slice(i * 10, i * 10 + 10),
      members: whole.members.slice(i * 10, i * 10 + 10),
      groups: [
        { group_id: group, name: 'All', members: people.slice(i * 10, i * 10 + 10).map((p) => p.user_id) },
      ],
      part: { snapshot_id: snapshotId, index: i + 1, count: 3 },
    }));
    expect(await apply(ev('identity.organization.snapshot', parts[2], at(50)))).toEqual(['applied']);
    expect(await apply(ev('identity.organization.snapshot', parts[0], at(50)))).toEqual(['applied']);
    expect(await ds.query('SELECT 1 FROM organizations WHERE id = $1', [org2])).toEqual([]);
    expect(await apply(ev('identity.organization.snapshot', parts[1], at(50)))).toEqual(['applied']);
    expect(await stateOf(org2)).toEqual(expectedOf(whole));
    expect(
      await ds.query('SELECT 1 FROM identity_snapshot_parts WHERE snapshot_id = $1', [snapshotId]),
    ).toEqual([]);
  });

  it('an inconsistent snapshot is dead with the reasons', async () => {
    const bad = { ...snapshot, groups: [{ group_id: org, name: 'x', members: [bob.user_id] }] };
    const [outcome] = await applier.applyBatch([ev('identity.organization.snapshot', bad, at(60))]);
    expect(outcome.kind).toBe('dead');
    expect(outcome.kind === 'dead' && outcome.errors.join('\n')).toMatch(
      /Everyone[\s\S]*not among the organization's members/,
    );
  });
});

describe('a snapshot racing a removal from the organization (a rejoin after both already applied)', () => {
  it('adds no group membership that a newer removal, committed while the snapshot waited, ended', async () => {
    // The history: a snapshot at t1 lists u in group G; u leaves the organization at t2 (which
    // ends G's membership) and rejoins at t3, applied first. Another instance applies the removal:
    // the membership locked and the end recorded, not committed, when the snapshot comes.
    const org = randomUUID();
    const group = randomUUID();
    const u = user('race-snap');
    expect(
      await apply(
        ev('identity.user.upserted', u, at(1)),
        ev('identity.organization.upserted', { organization_id: org, name: 'race-snap-org' }, at(1)),
        ev(
          'identity.organization.member.added',
          { organization_id: org, user_id: u.user_id, roles: [] },
          at(1),
        ),
        ev('identity.group.upserted', { group_id: group, organization_id: org, name: 'Race' }, at(1)),
        ev(
          'identity.organization.member.added',
          { organization_id: org, user_id: u.user_id, roles: [] },
          at(30),
        ),
      ),
    ).toEqual(['applied', 'applied', 'applied', 'applied', 'applied']);
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      await other.startTransaction();
      await beginOrganizationRemoval(other, org, u.user_id, at(20));
      const applying = apply(
        ev(
          'identity.organization.snapshot',
          {
            organization_id: org,
            name: 'race-snap-org',
            users: [u],
            members: [{ user_id: u.user_id, roles: [] }],
            groups: [{ group_id: group, name: 'Race', members: [u.user_id] }],
          },
          at(10),
        ),
      );
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      expect(await applying).toEqual(['applied']);
      const members = await ds.query<unknown[]>('SELECT 1 FROM group_members WHERE group_id = $1', [group]);
      expect(members).toEqual([]);
    } finally {
      await other.release();
    }
  });
});
