import { randomUUID } from 'node:crypto';
import { Stores } from '@aigov/authz';
import type { IdentityDataBySubject, IdentityEvent, OrganizationRole } from '@aigov/contracts';
import { testSettings } from '@aigov/config';
import { createDataSource } from '@aigov/db';
import { createTestDatabase, type TestDatabase } from '@aigov/testing';
import type { DataSource } from 'typeorm';
import {
  Random,
  databaseState,
  differences,
  flatten,
  generateHistory,
  model,
  reorderLocally,
  toIdentityEvent,
  withDuplicates,
  type IdentityCloudEvent,
} from '../../../../test/helpers/identity-history';
import type { ApplyOutcome } from './applier';
import { IdentityApplier } from './identity-applier';

// Convergence: a random valid history of identity events, delivered with duplicates, local
// reordering and random batches, retried the way the runtime retries, ends in exactly the state
// the source intended (the events applied once each in time order).

const settings = testSettings();
const SEEDS = [20261202, ...(settings.identityHistorySeed === null ? [] : [settings.identityHistorySeed])];
const MAX_ATTEMPTS = 50;

interface Delivery {
  event: IdentityCloudEvent;
  attempts: number;
}

interface Run {
  history: IdentityCloudEvent[];
  deliveries: number;
  counts: Record<ApplyOutcome['kind'], number>;
  /** Terminal outcomes per event id, in the order they came. */
  outcomesById: Map<string, ApplyOutcome['kind'][]>;
  dead: { event: IdentityCloudEvent; outcome: ApplyOutcome }[];
  exhausted: IdentityCloudEvent[];
  overridesMeantToGo: { userId: string; groupId: string }[];
  overridesCreated: number;
  generatedMillis: number;
  millis: number;
}

/**
 * Delivers the history the way JetStream and the listener would: duplicated, locally reordered,
 * in batches of 1..100; an event that comes back `retry` is delivered again some events later,
 * at most MAX_ATTEMPTS times (then it would be dead-lettered).
 */
async function deliver(ds: DataSource, seed: number): Promise<Run> {
  const started = Date.now();
  const history = generateHistory({ seed });
  const intended = flatten(model(history));
  const generatedMillis = Date.now() - started;
  const r = new Random(seed ^ 0x5eed);
  const queue: Delivery[] = reorderLocally(withDuplicates(history, r), r).map((event) => ({
    event,
    attempts: 0,
  }));
  const run: Run = {
    history,
    deliveries: queue.length,
    counts: { applied: 0, duplicate: 0, stale: 0, retry: 0, dead: 0 },
    outcomesById: new Map(),
    dead: [],
    exhausted: [],
    overridesMeantToGo: [],
    overridesCreated: 0,
    generatedMillis,
    millis: 0,
  };
  const finalPairs = new Set(intended.groupMembers);
  const finalMembers = new Set(intended.members.map((m) => m.split(' ')[0]));
  const checkpoints = [Math.floor(queue.length / 3), Math.floor((2 * queue.length) / 3)];
  const applier = new IdentityApplier(new Stores(ds));

  let done = 0;
  while (queue.length > 0) {
    const batch = queue.splice(0, r.int(1, 100));
    const outcomes = await applier.applyBatch(batch.map((d) => toIdentityEvent(d.event)));
    outcomes.forEach((outcome, i) => {
      const d = batch[i];
      run.counts[outcome.kind]++;
      if (outcome.kind === 'retry') {
        if (++d.attempts >= MAX_ATTEMPTS) run.exhausted.push(d.event);
        else queue.splice(Math.min(queue.length, r.int(10, 300)), 0, d);
        return;
      }
      if (outcome.kind === 'dead') run.dead.push({ event: d.event, outcome });
      else done++;
      const seen = run.outcomesById.get(d.event.id) ?? [];
      run.outcomesById.set(d.event.id, [...seen, outcome.kind]);
    });
    if (checkpoints.length > 0 && done >= checkpoints[0]) {
      checkpoints.shift();
      await createOverrides(ds, run, finalPairs, finalMembers, r);
    }
  }
  run.millis = Date.now() - started;
  return run;
}

/**
 * Overrides on memberships present now: some the history removes by its end (they must go with
 * their membership), some it keeps (they may go and come back meanwhile, so only the invariant
 * is checked for them).
 */
async function createOverrides(
  ds: DataSource,
  run: Run,
  finalPairs: Set<string>,
  finalMembers: Set<string>,
  r: Random,
): Promise<void> {
  const pairs = await ds.query<{ group_id: string; user_id: string }[]>(
    `SELECT group_id, user_id FROM group_members
     UNION ALL SELECT organization_id, user_id FROM organization_members ORDER BY 1, 2`,
  );
  const staying = (p: { group_id: string; user_id: string }) =>
    finalPairs.has(`${p.group_id}/${p.user_id}`) || finalMembers.has(`${p.group_id}/${p.user_id}`);
  const going = r.shuffle(pairs.filter((p) => !staying(p))).slice(0, 25);
  const kept = r.shuffle(pairs.filter(staying)).slice(0, 10);
  for (const p of [...going, ...kept]) {
    const created = await ds.query<unknown[]>(
      `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, 1000000)
       ON CONFLICT (user_id) DO NOTHING RETURNING 1`,
      [p.user_id, p.group_id],
    );
    if (created.length === 0) continue;
    run.overridesCreated++;
    if (!staying(p)) run.overridesMeantToGo.push({ userId: p.user_id, groupId: p.group_id });
  }
}

/** A database of its own for each describe block, so that seeds never share names. */
function freshDatabase(): () => DataSource {
  let db: TestDatabase;
  let ds: DataSource;
  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-convergence-test' });
    await ds.initialize();
  });
  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });
  return () => ds;
}

describe.each(SEEDS)('convergence of a random identity history (seed %i)', (seed) => {
  const database = freshDatabase();
  let ds: DataSource;
  let run: Run;
  let usersBefore: Set<string>;

  beforeAll(async () => {
    ds = database();
    usersBefore = new Set((await ds.query<{ id: string }[]>('SELECT id FROM users')).map((u) => u.id));
    run = await deliver(ds, seed);
    console.log(
      `convergence seed ${seed}: ${run.history.length} events, ${run.deliveries} deliveries, ` +
        `outcomes ${JSON.stringify(run.counts)}, ${run.overridesCreated} overrides, ${run.millis} ms (generation and model ${run.generatedMillis} ms)`,
    );
  }, 240_000);

  it('delivers everything: nothing dead, nothing left to retry', () => {
    expect(run.history.length).toBeGreaterThanOrEqual(5000);
    expect(run.dead.map((d) => `${d.event.type} ${JSON.stringify(d.outcome)}`)).toEqual([]);
    expect(run.exhausted.map((e) => `${e.type} ${JSON.stringify(e.data)}`)).toEqual([]);
    expect(run.counts.retry).toBeGreaterThan(0); // the reordering did make events wait
  });

  it('ends in exactly the state the source intended', async () => {
    const intended = flatten(model(run.history));
    const actual = await databaseState((sql) => ds.query(sql), usersBefore);
    expect(differences(intended, actual)).toEqual([]);
    // Not vacuous: the intended state has something of everything.
    for (const rows of Object.values(intended)) expect((rows as string[]).length).toBeGreaterThan(3);
    const everyone = await ds.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM organizations o JOIN groups g ON g.id = o.id AND g.name = 'Everyone'`,
    );
    expect(Number(everyone[0].n)).toBe(intended.organizations.length);
  });

  it('accounts for every delivery: each event applied or stale once, then duplicates', () => {
    const { applied, duplicate, stale } = run.counts;
    expect(applied + duplicate + stale).toBe(run.deliveries);
    expect(run.outcomesById.size).toBe(run.history.length);
    const odd: string[] = [];
    for (const [id, kinds] of run.outcomesById) {
      // A stale event is recorded too (a redelivery is then a duplicate), except when it was
      // found stale before anything was written (a reference removed later): stale again then.
      const ok =
        kinds.every((k) => k === 'stale') ||
        ((kinds[0] === 'applied' || kinds[0] === 'stale') && kinds.slice(1).every((k) => k === 'duplicate'));
      if (!ok) odd.push(`${id}: ${kinds.join(',')}`);
    }
    expect(odd).toEqual([]);
    expect(applied).toBe([...run.outcomesById.values()].filter((k) => k[0] === 'applied').length);
  });

  it('overrides on memberships the history removed are gone; the rest are on memberships', async () => {
    expect(run.overridesMeantToGo.length).toBeGreaterThan(5);
    const left = await ds.query<{ user_id: string; group_id: string }[]>(
      'SELECT user_id, group_id FROM user_ai_budget_overrides',
    );
    const leftKeys = new Set(left.map((o) => `${o.group_id}/${o.user_id}`));
    expect(run.overridesMeantToGo.filter((o) => leftKeys.has(`${o.groupId}/${o.userId}`))).toEqual([]);
    const strays = await ds.query<unknown[]>(
      `SELECT o.user_id FROM user_ai_budget_overrides o
        WHERE NOT EXISTS (SELECT 1 FROM group_members_expanded m WHERE m.user_id = o.user_id AND m.group_id = o.group_id)`,
    );
    expect(strays).toEqual([]);
  });
});

// Minimal delivery orders, found while writing the model, in which the time of each key alone
// would not reach the intended state. The source's story in each: `joined`, `inGroup`, `left`,
// `rejoined` in this time order, so the intended end is a member of the organization that is
// not in the group (or, for `rejoinedThenGroup`, one that is).
describe('orders that need more than the time of each key', () => {
  const database = freshDatabase();
  let ds: DataSource;
  beforeAll(() => {
    ds = database();
  });
  let clock = Date.parse('2027-01-01T00:00:00Z');
  let n = 0;
  const ev = <S extends IdentityEvent['type']>(type: S, data: IdentityDataBySubject[S]): IdentityEvent =>
    ({ id: `order-${++n}`, source: 'test', type, time: new Date((clock += 1000)), data }) as IdentityEvent;
  const apply = async (...events: IdentityEvent[]) =>
    (await new IdentityApplier(new Stores(ds)).applyBatch(events)).map((o) => o.kind);
  const isIn = async (
    table: 'group_members' | 'organization_members',
    column: string,
    id: string,
    user: string,
  ) =>
    (await ds.query<unknown[]>(`SELECT 1 FROM ${table} WHERE ${column} = $1 AND user_id = $2`, [id, user]))
      .length > 0;

  async function world(prefix: string) {
    const [user, org, group] = [randomUUID(), randomUUID(), randomUUID()];
    expect(
      await apply(
        ev('identity.user.upserted', {
          user_id: user,
          username: `${prefix}-u`,
          email: `${prefix}@example.com`,
        }),
        ev('identity.organization.upserted', { organization_id: org, name: `${prefix}-org` }),
        ev('identity.group.upserted', { group_id: group, organization_id: org, name: `${prefix} group` }),
      ),
    ).toEqual(['applied', 'applied', 'applied']);
    const member = (roles?: OrganizationRole[]) =>
      ev('identity.organization.member.added', {
        organization_id: org,
        user_id: user,
        ...(roles ? { roles } : {}),
      });
    return {
      user,
      org,
      group,
      member,
      inGroup: () => ev('identity.group.member.added', { group_id: group, user_id: user }),
    };
  }

  it('a removal applied before the group membership it ends keeps it out after a rejoin', async () => {
    const w = await world('order1');
    const joined = w.member([]);
    const inGroup = w.inGroup();
    const left = ev('identity.organization.member.removed', { organization_id: w.org, user_id: w.user });
    const rejoined = w.member([]);
    await apply(left, rejoined, inGroup, joined);
    expect(await isIn('organization_members', 'organization_id', w.org, w.user)).toBe(true);
    expect(await isIn('group_members', 'group_id', w.group, w.user)).toBe(false);
  });

  it('a removal applied after the rejoin still ends the group memberships older than it', async () => {
    const w = await world('order2');
    const joined = w.member([]);
    const inGroup = w.inGroup();
    const left = ev('identity.organization.member.removed', { organization_id: w.org, user_id: w.user });
    const rejoined = w.member([]);
    await apply(rejoined, inGroup, left, joined);
    expect(await isIn('organization_members', 'organization_id', w.org, w.user)).toBe(true);
    expect(await isIn('group_members', 'group_id', w.group, w.user)).toBe(false);
  });

  it('a removal that arrives before the rejoin keeps a group membership newer than the rejoin', async () => {
    const w = await world('order3');
    const joined = w.member([]);
    const left = ev('identity.organization.member.removed', { organization_id: w.org, user_id: w.user });
    const rejoined = w.member([]);
    const rejoinedThenGroup = w.inGroup();
    const first = await apply(joined, rejoinedThenGroup, left, rejoined);
    // Whatever came back `retry` is delivered again, as the runtime would.
    const again = [joined, rejoinedThenGroup, left, rejoined].filter((_, i) => first[i] === 'retry');
    if (again.length > 0) expect(await apply(...again)).not.toContain('retry');
    expect(await isIn('organization_members', 'organization_id', w.org, w.user)).toBe(true);
    expect(await isIn('group_members', 'group_id', w.group, w.user)).toBe(true);
  });

  it('a snapshot that arrives before the rejoin keeps a group membership newer than the rejoin', async () => {
    const w = await world('order6');
    const joined = w.member([]);
    const left = ev('identity.organization.member.removed', { organization_id: w.org, user_id: w.user });
    const snapshot = ev('identity.organization.snapshot', {
      organization_id: w.org,
      name: 'order6-org',
      users: [],
      members: [],
      groups: [{ group_id: w.group, name: 'order6 group', members: [] }],
    });
    const rejoined = w.member([]);
    const rejoinedThenGroup = w.inGroup();
    const all = [joined, rejoinedThenGroup, snapshot, rejoined, left];
    const first = await apply(...all);
    const again = all.filter((_, i) => first[i] === 'retry');
    if (again.length > 0) expect(await apply(...again)).not.toContain('retry');
    expect(await isIn('organization_members', 'organization_id', w.org, w.user)).toBe(true);
    expect(await isIn('group_members', 'group_id', w.group, w.user)).toBe(true);
  });

  // Not fixed: an event that leaves a field out means "keep it", which one time per key cannot
  // order (the older event with the field is stale once the newer one without it is applied).
  // The generator can make such events (addsWithoutRoles, partialUserUpserts); the random test
  // leaves them out until the applier keeps a time per field.
  it.failing('a member.added without roles after one with roles keeps them, in either order', async () => {
    const w = await world('order4');
    const admin = w.member(['organization-admin']);
    const keep = w.member();
    await apply(keep, admin);
    const [m] = await ds.query<{ roles: string[] }[]>(
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2',
      [w.org, w.user],
    );
    expect(m.roles).toEqual(['organization-admin']);
  });

  it.failing('a user.upserted without status after a suspension keeps it, in either order', async () => {
    const user = randomUUID();
    const suspended = ev('identity.user.upserted', {
      user_id: user,
      username: 'order5-u',
      email: 'order5@example.com',
      status: 'suspended',
    });
    const renamed = ev('identity.user.upserted', {
      user_id: user,
      username: 'order5-v',
      email: 'order5@example.com',
    });
    await apply(renamed, suspended);
    const [u] = await ds.query<{ username: string; status: string }[]>(
      'SELECT username, status FROM users WHERE id = $1',
      [user],
    );
    expect(u).toEqual({ username: 'order5-v', status: 'suspended' });
  });
});
