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
import { SpendRepository, type BudgetState } from './spend.repository';

// Budget state reads outside a transaction share statements under load (ReadBatcher). On real
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
});
