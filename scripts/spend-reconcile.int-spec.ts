import { randomUUID } from 'node:crypto';
import { SpendRepository, createDataSource } from '@aigov/db';
import {
  addOrganizationMember,
  createTestDatabase,
  insertOrganization,
  insertUser,
  sqlRows,
  waitForNoConnections,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import { reconcile } from './spend-reconcile';

// npm run spend:reconcile on a real database: silent agreement, each difference named, and a
// repair that leaves the counters equal to the ledger.

let db: TestDatabase;
let ds: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-reconcile-test' });
  await ds.initialize();
});
afterAll(async () => {
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await reconcile(
    args,
    { DATABASE_URL: db.url, NATS_ENABLED: 'false' },
    {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    },
  );
  return { code, out, err };
}

it('reports agreement, then a tampered counter, then repairs it from the ledger', async () => {
  const org = await insertOrganization(ds);
  const u = await insertUser(ds);
  await addOrganizationMember(ds, org.id, u.id);
  const spend = new SpendRepository(ds);
  const occurredAt = new Date(Date.now() - 60_000);
  const periodStart = `${occurredAt.toISOString().slice(0, 7)}-01`;
  await spend.recordUsage(
    [17n, 25n].map((cost) => ({
      requestId: randomUUID(),
      userId: u.id,
      provider: 'openai',
      model: 'gpt-test',
      inputTokens: 1n,
      outputTokens: 1n,
      cacheReadTokens: 0n,
      cacheWriteTokens: 0n,
      prices: { input: 1n, output: 1n, cacheRead: null, cacheWrite: null },
      priceSource: 'default' as const,
      costMicros: cost,
      occurredAt,
      periodStart,
      reservationId: null,
    })),
  );
  await spend.reserve({
    requestId: randomUUID(),
    userId: u.id,
    periodStart,
    amountMicros: 5n,
    expiresAt: new Date(Date.now() + 60_000),
  });
  expect(await run([])).toMatchObject({
    code: 0,
    out: [
      expect.stringContaining('counters match the ledger'),
      expect.stringContaining('effective budgets match the resolution'),
    ],
  });

  await sqlRows(
    ds,
    'UPDATE ai_spend_counters SET spent_micros = spent_micros + 1, held_micros = 0 WHERE user_id = $1',
    [u.id],
  );
  const found = await run([]);
  expect(found.code).toBe(1);
  expect(found.out[0]).toContain(`user ${u.id} period ${periodStart}: spent counter 43`);
  expect(found.out[0]).toContain('ledger 42');
  expect(found.out[0]).toContain('reservations 5');

  const repaired = await run(['--repair']);
  expect(repaired.code).toBe(0);
  expect(await run([])).toMatchObject({ code: 0 });
  expect(
    await sqlRows(ds, 'SELECT spent_micros, held_micros FROM ai_spend_counters WHERE user_id = $1', [u.id]),
  ).toEqual([{ spent_micros: '42', held_micros: '5' }]);
});

it('reports a materialized budget that differs from the resolution, or is missing, and repairs both', async () => {
  const org = await insertOrganization(ds);
  await sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 700)', [org.id]);
  const changed = await insertUser(ds);
  const missing = await insertUser(ds);
  for (const u of [changed, missing]) await addOrganizationMember(ds, org.id, u.id);
  expect((await run([])).code).toBe(0);

  // Behind the triggers' back, as a hand edit or a bug would.
  await sqlRows(ds, 'UPDATE ai_effective_budgets SET spend_limit_micros = 5 WHERE user_id = $1', [
    changed.id,
  ]);
  await sqlRows(ds, 'DELETE FROM ai_effective_budgets WHERE user_id = $1', [missing.id]);
  const found = await run([]);
  expect(found.code).toBe(1);
  expect(found.out).toEqual(
    expect.arrayContaining([
      `user ${changed.id}: effective budget stored group 5 group ${org.id}; resolved group 700 group ${org.id}`,
      `user ${missing.id}: effective budget stored no row; resolved group 700 group ${org.id}`,
      'spend:reconcile: 2 effective budget difference(s)',
    ]),
  );

  const repaired = await run(['--repair']);
  expect(repaired.code).toBe(0);
  expect(repaired.out).toContain('spend:reconcile: effective budgets recomputed (2 users)');
  expect(await run([])).toMatchObject({ code: 0 });
  expect(
    await sqlRows(
      ds,
      'SELECT spend_limit_micros FROM ai_effective_budgets WHERE user_id = ANY($1::uuid[]) ORDER BY user_id',
      [[changed.id, missing.id]],
    ),
  ).toEqual([{ spend_limit_micros: '700' }, { spend_limit_micros: '700' }]);
});

it('refuses unknown arguments', async () => {
  expect((await run(['--fix'])).code).toBe(2);
});
