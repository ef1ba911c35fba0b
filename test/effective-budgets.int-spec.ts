import type { Pool } from 'pg';
import {
  addGroupMember,
  addOrganizationMember,
  closePool,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  insertOverride,
  insertUser,
  type TestDatabase,
  testPool,
  testClient,
} from '@aigov/testing';

// ai_effective_budgets (migrations/1765200000000-effective-budgets.ts) equals ai_effective_budget()
// for every user after every kind of change, and after changes racing from two connections.
// Real PostgreSQL, READ COMMITTED. The race also runs against the triggers with their locks
// removed, to show that it catches the stale rows they prevent.

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = testPool({ connectionString: db.url, max: 6, application_name: 'aigov-effective-budgets-test' });
});
afterAll(async () => {
  if (pool) await closePool(pool);
  await db?.drop();
});

interface Row {
  limit_source: string | null;
  spend_limit_micros: string | null;
  effective_group_id: string | null;
}
const rows = async <T>(sql: string, params: unknown[] = []) => (await pool.query(sql, params)).rows as T[];

/** The users whose row is missing or differs from the function (the reconcile's question). */
const DIFFERENCES_SQL = `
  SELECT u.id FROM users u
   CROSS JOIN LATERAL ai_effective_budget(u.id) e
    LEFT JOIN ai_effective_budgets b ON b.user_id = u.id
   WHERE b.user_id IS NULL
      OR (b.limit_source, b.spend_limit_micros, b.effective_group_id)
         IS DISTINCT FROM (e.limit_source, e.spend_limit_micros, e.effective_group_id)`;
const differences = async (target: { query: Pool['query'] } = pool) =>
  (await target.query<{ id: string }>(DIFFERENCES_SQL)).rows.map((r) => r.id);

/** The stored row of a user; also checks that the table equals the function for every user. */
async function stored(userId: string): Promise<Row | undefined> {
  expect(await differences()).toEqual([]);
  const [r] = await rows<Row>(
    'SELECT limit_source, spend_limit_micros, effective_group_id FROM ai_effective_budgets WHERE user_id = $1',
    [userId],
  );
  return r;
}
const row = (limitSource: string | null, limit: number | null, group: string | null): Row => ({
  limit_source: limitSource,
  spend_limit_micros: limit === null ? null : String(limit),
  effective_group_id: group,
});
const setBudget = (groupId: string, micros: number) =>
  pool.query(
    `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)
     ON CONFLICT (group_id) DO UPDATE SET spend_limit_micros = EXCLUDED.spend_limit_micros`,
    [groupId, micros],
  );

describe('after each kind of change', () => {
  it('follows users, memberships, overrides, budgets, groups and organizations', async () => {
    const u = await insertUser(pool);
    const other = await insertUser(pool);
    // user created
    expect(await stored(u.id)).toEqual(row(null, null, null));

    // organization member added: no budget, spend attributed to its Everyone group
    const org = await insertOrganization(pool);
    await addOrganizationMember(pool, org.id, u.id);
    await addOrganizationMember(pool, org.id, other.id);
    expect(await stored(u.id)).toEqual(row(null, null, org.id));

    // Everyone group's budget set: every member of the organization
    await setBudget(org.id, 100);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));
    expect(await stored(other.id)).toEqual(row('group', 100, org.id));

    // normal group: budget set, member added, budget changed, member removed
    const g1 = await insertGroup(pool, org.id);
    const g2 = await insertGroup(pool, org.id);
    await setBudget(g1.id, 500);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));
    await addGroupMember(pool, g1.id, u.id);
    expect(await stored(u.id)).toEqual(row('group', 500, g1.id));
    expect(await stored(other.id)).toEqual(row('group', 100, org.id));
    await setBudget(g1.id, 50);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));
    await setBudget(g1.id, 700);
    expect(await stored(u.id)).toEqual(row('group', 700, g1.id));
    // Everyone budget changed above a normal group's
    await setBudget(org.id, 900);
    expect(await stored(u.id)).toEqual(row('group', 900, org.id));
    await setBudget(org.id, 100);

    // override set, moved to another group, limit changed, deleted
    await addGroupMember(pool, g2.id, u.id);
    await insertOverride(pool, u.id, g2.id, 10);
    expect(await stored(u.id)).toEqual(row('user_override', 10, g2.id));
    await pool.query('UPDATE user_ai_budget_overrides SET group_id = $2 WHERE user_id = $1', [u.id, g1.id]);
    expect(await stored(u.id)).toEqual(row('user_override', 10, g1.id));
    await pool.query('UPDATE user_ai_budget_overrides SET spend_limit_micros = 20 WHERE user_id = $1', [
      u.id,
    ]);
    expect(await stored(u.id)).toEqual(row('user_override', 20, g1.id));
    await pool.query('DELETE FROM user_ai_budget_overrides WHERE user_id = $1', [u.id]);
    expect(await stored(u.id)).toEqual(row('group', 700, g1.id));

    // group member removed (with the override on it, which goes too)
    await insertOverride(pool, u.id, g1.id, 30);
    await pool.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [g1.id, u.id]);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));

    // group budget deleted, then the group deleted (its members and budget go in its trigger)
    await addGroupMember(pool, g1.id, u.id);
    expect(await stored(u.id)).toEqual(row('group', 700, g1.id));
    await pool.query('DELETE FROM group_ai_budgets WHERE group_id = $1', [g1.id]);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));
    await setBudget(g1.id, 800);
    expect(await stored(u.id)).toEqual(row('group', 800, g1.id));
    await pool.query('DELETE FROM groups WHERE id = $1', [g1.id]);
    expect(await stored(u.id)).toEqual(row('group', 100, org.id));

    // Everyone budget deleted
    await pool.query('DELETE FROM group_ai_budgets WHERE group_id = $1', [org.id]);
    expect(await stored(u.id)).toEqual(row(null, null, org.id));
    expect(await stored(other.id)).toEqual(row(null, null, org.id));

    // a second organization: ties by earliest membership, then membership times moved
    const org2 = await insertOrganization(pool);
    await setBudget(org.id, 300);
    await setBudget(org2.id, 300);
    await addOrganizationMember(pool, org2.id, u.id);
    expect(await stored(u.id)).toEqual(row('group', 300, org.id));
    await pool.query(
      `UPDATE organization_members SET created_at = created_at - interval '1 day' WHERE organization_id = $1 AND user_id = $2`,
      [org2.id, u.id],
    );
    expect(await stored(u.id)).toEqual(row('group', 300, org2.id));
    // a change of roles alone changes nothing (and must not break anything)
    await addOrganizationMember(pool, org2.id, u.id, ['organization-admin']);
    expect(await stored(u.id)).toEqual(row('group', 300, org2.id));

    // organization member removed (its group memberships and overrides go with it)
    const g3 = await insertGroup(pool, org2.id);
    await setBudget(g3.id, 5_000);
    await addGroupMember(pool, g3.id, u.id);
    await insertOverride(pool, u.id, g3.id, 1);
    expect(await stored(u.id)).toEqual(row('user_override', 1, g3.id));
    await pool.query('DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
      org2.id,
      u.id,
    ]);
    expect(await stored(u.id)).toEqual(row('group', 300, org.id));

    // organization deleted: everything in it goes
    await addOrganizationMember(pool, org2.id, u.id);
    await addGroupMember(pool, g3.id, u.id);
    expect(await stored(u.id)).toEqual(row('group', 5_000, g3.id));
    await pool.query('DELETE FROM organizations WHERE id = $1', [org2.id]);
    expect(await stored(u.id)).toEqual(row('group', 300, org.id));
    await pool.query('DELETE FROM organizations WHERE id = $1', [org.id]);
    expect(await stored(u.id)).toEqual(row(null, null, null));

    // user deleted: the row goes with it
    await pool.query('DELETE FROM users WHERE id = $1', [other.id]);
    expect(await stored(other.id)).toBeUndefined();
  });

  it('follows statements of many rows, and users and memberships made in one statement', async () => {
    const org = await insertOrganization(pool);
    const g = await insertGroup(pool, org.id);
    await setBudget(g.id, 42);
    const { rows: made } = await pool.query<{ id: string }>(
      `INSERT INTO users (username, email)
       SELECT 'bulk-' || i || '-' || $1, 'bulk-' || i || '-' || $1 || '@example.com' FROM generate_series(1, 300) i
       RETURNING id`,
      [org.id.slice(0, 8)],
    );
    const ids = made.map((r) => r.id);
    await pool.query(
      'INSERT INTO organization_members (organization_id, user_id) SELECT $1, unnest($2::uuid[])',
      [org.id, ids],
    );
    await pool.query('INSERT INTO group_members (group_id, user_id) SELECT $1, unnest($2::uuid[])', [
      g.id,
      ids,
    ]);
    expect(await differences()).toEqual([]);
    expect(
      await rows('SELECT count(*)::int AS n FROM ai_effective_budgets WHERE effective_group_id = $1', [g.id]),
    ).toEqual([{ n: 300 }]);
    await pool.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = ANY($2::uuid[])', [
      g.id,
      ids.slice(0, 150),
    ]);
    expect(
      await rows('SELECT count(*)::int AS n FROM ai_effective_budgets WHERE effective_group_id = $1', [g.id]),
    ).toEqual([{ n: 150 }]);

    // A user and its organization membership in one statement.
    await pool.query(
      `WITH u AS (INSERT INTO users (username, email) VALUES ('cte-' || $2, 'cte-' || $2 || '@example.com') RETURNING id),
            om AS (INSERT INTO organization_members (organization_id, user_id) SELECT $1, id FROM u RETURNING user_id)
       SELECT 1`,
      [org.id, org.id.slice(0, 8)],
    );
    expect(await differences()).toEqual([]);
    await pool.query('DELETE FROM organizations WHERE id = $1', [org.id]);
    expect(await differences()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Racing changes: in each round, transaction A changes something and stays open; transaction B,
// on another connection, changes something about the same user (or a group the user is in) while
// A is open; A commits once B has finished or is waiting for a lock, then B commits. After every
// round the table must equal the function for every user.

const USERS = 6;
const GROUPS = 3;

interface World {
  org: string;
  org2: string;
  groups: string[]; // in org, each with a budget
  group2: string; // in org2
  users: string[];
}

async function makeWorld(): Promise<World> {
  const org = (await insertOrganization(pool)).id;
  const org2 = (await insertOrganization(pool)).id;
  await setBudget(org, 1_000);
  await setBudget(org2, 1_000);
  const groups: string[] = [];
  for (let i = 0; i < GROUPS; i++) {
    const g = (await insertGroup(pool, org)).id;
    // The last one starts without a budget: its memberships change nobody's until one is set.
    if (i < GROUPS - 1) await setBudget(g, 2_000 + i * 1_000);
    groups.push(g);
  }
  const group2 = (await insertGroup(pool, org2)).id;
  await setBudget(group2, 4_500);
  const users: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const u = (await insertUser(pool)).id;
    await addOrganizationMember(pool, org, u);
    users.push(u);
  }
  return { org, org2, groups, group2, users };
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];
const KINDS = [
  'group-member',
  'group-member',
  'budget',
  'everyone-budget',
  'override',
  'org2-member',
] as const;
type Kind = (typeof KINDS)[number];

/**
 * One random change about user `u`, valid for the state read just before the round (a concurrent
 * change may still make it fail: a conflict, a deadlock, a vanished membership; then it rolls back).
 */
async function randomChange(
  w: World,
  u: string,
  only?: { kind: Kind; group: string },
): Promise<[string, unknown[]]> {
  const member = new Set(
    (await rows<{ group_id: string }>('SELECT group_id FROM group_members WHERE user_id = $1', [u])).map(
      (r) => r.group_id,
    ),
  );
  const inOrg2 = (
    await rows('SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2', [w.org2, u])
  ).length;
  const kind = only?.kind ?? pick(KINDS);
  const g = only?.group ?? pick(w.groups);
  const limit = 500 + Math.floor(Math.random() * 8) * 500;
  switch (kind) {
    case 'group-member':
      return member.has(g)
        ? ['DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [g, u]]
        : ['INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [g, u]];
    case 'budget':
      if (Math.random() < 0.2) return ['DELETE FROM group_ai_budgets WHERE group_id = $1', [g]];
      // A group the user is in, half the time: its members are then affected.
      return [
        `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)
         ON CONFLICT (group_id) DO UPDATE SET spend_limit_micros = EXCLUDED.spend_limit_micros`,
        [only || Math.random() < 0.5 || member.size === 0 ? g : pick([...member]), limit],
      ];
    case 'everyone-budget':
      return Math.random() < 0.2
        ? ['DELETE FROM group_ai_budgets WHERE group_id = $1', [w.org]]
        : [
            `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)
             ON CONFLICT (group_id) DO UPDATE SET spend_limit_micros = EXCLUDED.spend_limit_micros`,
            [w.org, limit],
          ];
    case 'override':
      return Math.random() < 0.3
        ? ['DELETE FROM user_ai_budget_overrides WHERE user_id = $1', [u]]
        : [
            `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET group_id = EXCLUDED.group_id, spend_limit_micros = EXCLUDED.spend_limit_micros`,
            [u, pick([w.org, ...member]), limit],
          ];
    default:
      return inOrg2
        ? ['DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [w.org2, u]]
        : [
            // Joining org2 and its budgeted group in one statement.
            `WITH om AS (INSERT INTO organization_members (organization_id, user_id) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING RETURNING user_id)
             SELECT 1 FROM om`,
            [w.org2, u],
          ];
  }
}

/** Until B's statement has finished or B waits for a lock (so A's commit is what it waits for). */
async function untilDoneOrWaiting(done: () => boolean, pid: number): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) {
    const r = await pool.query<{ w: string | null }>(
      'SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1',
      [pid],
    );
    if (r.rows[0]?.w === 'Lock') return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface RaceResult {
  rounds: number;
  staleRounds: number;
  failed: number;
  waited: number;
}

async function race(w: World, rounds: number): Promise<RaceResult> {
  const a = testClient({ connectionString: db.url, application_name: 'aigov-effective-budgets-a' });
  const b = testClient({ connectionString: db.url, application_name: 'aigov-effective-budgets-b' });
  await a.connect();
  await b.connect();
  const pidB = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const result: RaceResult = { rounds, staleRounds: 0, failed: 0, waited: 0 };
  try {
    for (let round = 0; round < rounds; round++) {
      const u = pick(w.users);
      // One round in three: a membership of a group against a change of that group's budget.
      const g = pick(w.groups);
      const pair: [Kind, Kind] | null =
        round % 3 === 0
          ? Math.random() < 0.5
            ? ['group-member', 'budget']
            : ['budget', 'group-member']
          : null;
      const [sqlA, paramsA] = await randomChange(w, u, pair ? { kind: pair[0], group: g } : undefined);
      const [sqlB, paramsB] = await randomChange(w, u, pair ? { kind: pair[1], group: g } : undefined);
      await a.query('BEGIN');
      const aOk = await a.query(sqlA, paramsA).then(
        () => true,
        () => false,
      );
      await b.query('BEGIN');
      let bDone = false;
      const bRun = b.query(sqlB, paramsB).then(
        () => ((bDone = true), true),
        () => ((bDone = true), false),
      );
      await untilDoneOrWaiting(() => bDone, pidB);
      if (!bDone) result.waited++;
      await a.query(aOk ? 'COMMIT' : 'ROLLBACK');
      const bOk = await bRun;
      await b.query(bOk ? 'COMMIT' : 'ROLLBACK');
      if (!aOk) result.failed++;
      if (!bOk) result.failed++;
      if ((await differences()).length > 0) {
        result.staleRounds++;
        // Start the next round from exact rows.
        await pool.query('SELECT ai_effective_budgets_refresh(ARRAY(SELECT id FROM users))');
      }
    }
  } finally {
    await a.end();
    await b.end();
  }
  return result;
}

/** Replaces a trigger function's definition with `edit` applied; returns the original. */
async function rewrite(signature: string, edit: (def: string) => string): Promise<string> {
  const [{ def }] = await rows<{ def: string }>(`SELECT pg_get_functiondef($1::regprocedure) AS def`, [
    signature,
  ]);
  const changed = edit(def);
  expect(changed).not.toEqual(def);
  await pool.query(changed);
  return def;
}

describe('racing changes from two connections', () => {
  const ROUNDS = 300;
  const MUTANT_ROUNDS = 200;

  it('leave the table equal to the function after every round', async () => {
    const w = await makeWorld();
    const r = await race(w, ROUNDS);
    console.log(`effective budgets race: ${JSON.stringify(r)}`);
    expect(r.staleRounds).toBe(0);
    // The rounds really raced: many of B's statements waited for A's locks.
    expect(r.waited).toBeGreaterThan(ROUNDS / 10);
  });

  it('without the lock on the users rows, leave stale rows (the race above can fail)', async () => {
    const w = await makeWorld();
    const original = await rewrite('ai_effective_budgets_refresh(uuid[])', (def) =>
      def.replace(/PERFORM 1 FROM ai_effective_budgets WHERE[^;]*FOR UPDATE;/, ''),
    );
    try {
      const r = await race(w, MUTANT_ROUNDS);
      console.log(`effective budgets race without the user-row lock: ${JSON.stringify(r)}`);
      expect(r.staleRounds).toBeGreaterThan(0);
    } finally {
      await pool.query(original);
    }
  });

  it('without the lock on the group row in a budget change, leave stale rows', async () => {
    const w = await makeWorld();
    const original = await rewrite('ai_effective_budgets_group_budgets_changed()', (def) =>
      def.replace(/PERFORM 1 FROM groups WHERE[^;]*FOR UPDATE;/, ''),
    );
    try {
      const r = await race(w, MUTANT_ROUNDS);
      console.log(`effective budgets race without the group-row lock: ${JSON.stringify(r)}`);
      expect(r.staleRounds).toBeGreaterThan(0);
    } finally {
      await pool.query(original);
    }
  });
});
