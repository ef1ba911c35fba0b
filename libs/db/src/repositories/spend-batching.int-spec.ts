import { randomUUID } from 'node:crypto';
import {
  addGroupMember,
  addOrganizationMember,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  insertOverride,
  insertUser,
  sqlRows,
  waitForNoConnections,
  type TestDatabase,
} from '@aigov/testing';
import type { Pool } from 'pg';
import type { DataSource } from 'typeorm';
import { createDataSource } from '../data-source';
import { closeStatementPool, createStatementPool, useStatementPool } from '../pool';
import { SpendRepository, type BudgetState, type ReserveOutcome } from './spend.repository';

// Budget state reads outside a transaction share statements under load (StatementBatcher). On real
// PostgreSQL: every read of a burst gets exactly what it would have read on its own, the burst
// takes fewer statements than reads, and a malformed id fails alone.

let db: TestDatabase;
let ds: DataSource;
let pool: Pool;
const PERIODS = ['2026-11-01', '2026-12-01'];
const users: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 4, applicationName: 'aigov-state-batching-test' });
  await ds.initialize();
  pool = createStatementPool({ url: db.url, max: 6, applicationName: 'aigov-state-batching-test' });
  useStatementPool(ds, pool);

  const org = await insertOrganization(ds);
  await sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 5000)', [
    org.id,
  ]);
  const big = await insertGroup(ds, org.id);
  await sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 90000)', [
    big.id,
  ]);
  const bare = await insertOrganization(ds);
  for (let i = 0; i < 40; i++) {
    const u = await insertUser(ds, i % 10 === 9 ? { status: 'suspended' } : {});
    users.push(u.id);
    // Kinds by i: no organization; an organization without budgets; Everyone's budget; a
    // budgeted group; an override.
    const kind = i % 5;
    if (kind === 1) await addOrganizationMember(ds, bare.id, u.id);
    if (kind >= 2) await addOrganizationMember(ds, org.id, u.id);
    if (kind >= 3) await addGroupMember(ds, big.id, u.id);
    if (kind === 4) await insertOverride(ds, u.id, big.id, 1234 + i);
    for (const [p, period] of PERIODS.entries())
      await sqlRows(
        ds,
        'INSERT INTO ai_spend_counters (user_id, period_start, spent_micros, held_micros) VALUES ($1, $2, $3, $4)',
        [u.id, period, 100 * i + p, i % 3],
      );
  }
  users.push(randomUUID(), randomUUID()); // unknown users
});

afterAll(async () => {
  if (pool) await closeStatementPool(pool);
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

/** The unbatched read: inside a transaction the repository sends the single-user statement. */
const alone = (userId: string, period: string): Promise<BudgetState> =>
  ds.transaction((em) => new SpendRepository(em).getBudgetState(userId, period));

describe('batched budget state reads (real PostgreSQL)', () => {
  it('answers each read of a burst exactly as it would be answered alone, in fewer statements', async () => {
    const expected = new Map<string, BudgetState>();
    for (const u of users) for (const p of PERIODS) expected.set(`${u}/${p}`, await alone(u, p));
    // The fixture covers every kind of answer.
    const states = [...expected.values()];
    expect(new Set(states.map((s) => s.userStatus))).toEqual(new Set(['active', 'suspended', null]));
    expect(new Set(states.map((s) => s.limitSource))).toEqual(new Set(['user_override', 'group', null]));

    const query = jest.spyOn(pool, 'query');
    try {
      const repo = new SpendRepository(ds);
      const keys = Array.from({ length: 600 }, (_, i) => [users[(i * 7) % users.length], PERIODS[i % 2]]);
      const got = await Promise.all(keys.map(([u, p]) => repo.getBudgetState(u, p)));
      got.forEach((state, i) => expect(state).toEqual(expected.get(`${keys[i][0]}/${keys[i][1]}`)));
      const statements = query.mock.calls.length;
      expect(statements).toBeGreaterThan(0);
      expect(statements).toBeLessThan(600 / 4);
    } finally {
      query.mockRestore();
    }
  });

  it('fails a malformed user id on its own, the reads around it still answered', async () => {
    const repo = new SpendRepository(ds);
    const reads = [users[3], 'not-a-uuid', users[4], users[5]].map((u) =>
      repo.getBudgetState(u, PERIODS[1]).then(
        (s) => s.userStatus,
        (err: Error) => `error: ${err.message}`,
      ),
    );
    const got = await Promise.all(reads);
    expect(got[1]).toMatch(/^error: invalid input syntax for type uuid/);
    expect([got[0], got[2], got[3]]).toEqual(['active', 'active', 'active']);
  });

  it('grants exactly what fits per user when hundreds of reservations race, once per request id', async () => {
    const org = await insertOrganization(ds);
    await sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 10000)', [
      org.id,
    ]);
    const limited: string[] = [];
    for (let i = 0; i < 30; i++) {
      const u = await insertUser(ds);
      await addOrganizationMember(ds, org.id, u.id);
      limited.push(u.id);
    }
    const suspended = users[9];
    const unknown = users[users.length - 1];
    const period = PERIODS[1];
    const expiresAt = new Date(Date.now() + 3_600_000);
    // 15 reservations of 1,000 per limited user (10 fit), each request id sent twice (a retrying
    // gateway), plus the suspended and the unknown user; all at once, in a shuffled order.
    const requests = limited.flatMap((userId, u) =>
      Array.from({ length: 15 }, (_, k) => ({ requestId: `race-${u}-${k}`, userId })),
    );
    const sent = [
      ...requests,
      ...requests,
      { requestId: 'race-suspended', userId: suspended },
      { requestId: 'race-unknown', userId: unknown },
    ]
      .map((r) => ({ ...r, key: Math.random() }))
      .sort((a, b) => a.key - b.key);
    const query = jest.spyOn(pool, 'query');
    let outcomes: ReserveOutcome[];
    try {
      const repo = new SpendRepository(ds);
      outcomes = await Promise.all(
        sent.map((r) =>
          repo.reserve({
            requestId: r.requestId,
            userId: r.userId,
            periodStart: period,
            amountMicros: 1000n,
            expiresAt,
          }),
        ),
      );
      expect(query.mock.calls.length).toBeLessThan(sent.length / 4);
    } finally {
      query.mockRestore();
    }

    const byRequest = new Map<string, ReserveOutcome[]>();
    sent.forEach((r, i) => byRequest.set(r.requestId, [...(byRequest.get(r.requestId) ?? []), outcomes[i]]));
    expect(byRequest.get('race-suspended')![0]).toMatchObject({
      kind: 'denied',
      state: { userStatus: 'suspended' },
    });
    expect(byRequest.get('race-unknown')![0]).toMatchObject({ kind: 'denied', state: { userStatus: null } });
    for (const [u, userId] of limited.entries()) {
      const mine = [...byRequest.entries()].filter(([id]) => id.startsWith(`race-${u}-`));
      // A request id is granted once at most; its other sending is a replay of the same hold,
      // or both are denied (a denial is not stored).
      let granted = 0;
      for (const [, pair] of mine) {
        const kinds = pair.map((o) => o.kind).sort();
        expect([
          ['denied', 'denied'],
          ['granted', 'replayed'],
        ]).toContainEqual(kinds);
        if (kinds[0] === 'granted') {
          granted++;
          const [a, b] = pair as Extract<ReserveOutcome, { reservation: unknown }>[];
          expect(a.reservation.id).toBe(b.reservation.id);
        }
      }
      expect(granted).toBe(10);
      const [row] = await sqlRows<{ held: string; holds: string }>(
        ds,
        `SELECT c.held_micros::text AS held,
                (SELECT count(*) FROM ai_reservations r WHERE r.user_id = c.user_id AND r.status = 'held')::text AS holds
           FROM ai_spend_counters c WHERE c.user_id = $1 AND c.period_start = $2`,
        [userId, period],
      );
      expect(row).toEqual({ held: '10000', holds: '10' });
    }
  });
});

describe('the statement pool plans its named statements generically (real PostgreSQL)', () => {
  it('never makes a custom plan for checks and reservations, alone or batched', async () => {
    // One connection, so that pg_prepared_statements (per session) shows every execution.
    const own = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-generic-plans-test' });
    await own.initialize();
    const single = createStatementPool({ url: db.url, max: 1, applicationName: 'aigov-generic-plans-test' });
    useStatementPool(own, single);
    try {
      const repo = new SpendRepository(own);
      const expiresAt = new Date(Date.now() + 60_000);
      for (let i = 0; i < 8; i++) {
        await repo.getBudgetState(users[i], PERIODS[1]);
        await repo.reserve({
          requestId: `plan-${i}`,
          userId: users[i],
          periodStart: PERIODS[1],
          amountMicros: 1n,
          expiresAt,
        });
      }
      // A burst: the batchers send the queued ones together (spend_states, and spend_reserve with
      // several rows).
      await Promise.all(users.slice(0, 30).map((u) => repo.getBudgetState(u, PERIODS[0])));
      await Promise.all(
        users.slice(10, 30).map((u, i) =>
          repo.reserve({
            requestId: `plan-burst-${i}`,
            userId: u,
            periodStart: PERIODS[0],
            amountMicros: 1n,
            expiresAt,
          }),
        ),
      );
      const { rows } = await single.query<{ name: string; generic: string; custom: string }>(
        `SELECT name, generic_plans::text AS generic, custom_plans::text AS custom
           FROM pg_prepared_statements WHERE name IN ('spend_state', 'spend_states', 'spend_reserve') ORDER BY name`,
      );
      expect(rows.map((r) => r.name)).toEqual(['spend_reserve', 'spend_state', 'spend_states']);
      for (const r of rows) {
        expect({ name: r.name, custom: r.custom }).toEqual({ name: r.name, custom: '0' });
        expect(Number(r.generic)).toBeGreaterThan(0);
      }
      expect(Number(rows.find((r) => r.name === 'spend_reserve')!.generic)).toBeGreaterThanOrEqual(9);
    } finally {
      await closeStatementPool(single);
      await own.destroy();
    }
  });
});

describe('the statement pool start-up options (real PostgreSQL)', () => {
  it('keeps the options a database URL carries and adds generic plans to them', async () => {
    const url = new URL(db.url);
    url.searchParams.set('options', '-c work_mem=5MB');
    const p = createStatementPool({ url: url.toString(), max: 1 });
    try {
      const { rows } = await p.query<{ plans: string; mem: string }>(
        "SELECT current_setting('plan_cache_mode') AS plans, current_setting('work_mem') AS mem",
      );
      expect(rows[0]).toEqual({ plans: 'force_generic_plan', mem: '5MB' });
    } finally {
      await closeStatementPool(p);
    }
  });
});
