import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { AI_GATEWAY_ACTOR } from '@aigov/contracts';
import { SpendRepository, createDataSource } from '@aigov/db';
import type { Metrics } from '@aigov/observability';
import {
  addOrganizationMember,
  createTestDatabase,
  insertOrganization,
  insertUser,
  waitForNoConnections,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import { EnforcementService } from './enforcement.service';
import { periodOf } from './period';
import { ReservationSweeperService, SWEEP_CHUNK } from './sweeper.service';
import { metricTotal, startBudgetApi, type BudgetApiInstance } from './testing-module';

// The reservation sweeper on real PostgreSQL, two app instances on one database: every expired
// hold released exactly once, however the sweepers and settling usage race for it.

jest.setTimeout(120_000);

const PROVIDER = 'anthropic';
const MODEL = 'claude-sweep-test';

interface Instance extends BudgetApiInstance {
  sweeper: ReservationSweeperService;
  enforcement: EnforcementService;
}

let db: TestDatabase;
let ds: DataSource;
let spend: SpendRepository;
const running: Instance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 20 });
  await ds.initialize();
  spend = new SpendRepository(ds);
  await ds.query(
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
     VALUES ($1, $2, 'default', 1000000, 2000000)`,
    [PROVIDER, MODEL],
  );
});

afterEach(async () => {
  for (const i of running.splice(0)) await i.module.close();
});

afterAll(async () => {
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

/** An instance whose sweeper ticks only at start (the tests call sweep() themselves). */
async function start(): Promise<Instance> {
  const app = await startBudgetApi({
    DATABASE_URL: db.url,
    NATS_ENABLED: 'false',
    DATABASE_POOL_SIZE: '8',
    RESERVATION_SWEEP_INTERVAL_MS: '3600000',
  });
  const instance = {
    ...app,
    sweeper: app.module.get(ReservationSweeperService),
    enforcement: app.module.get(EnforcementService),
  };
  running.push(instance);
  return instance;
}

const expiredTotal = (m: Metrics): Promise<number> => metricTotal(m, 'aigov_reservations_expired_total');

async function members(n: number): Promise<string[]> {
  const org = await insertOrganization(ds);
  await ds.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
    org.id,
    1_000_000_000,
  ]);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = await insertUser(ds);
    await addOrganizationMember(ds, org.id, u.id);
    out.push(u.id);
  }
  return out;
}

async function inParallel<T, R>(items: readonly T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

async function hold(userId: string, amount: bigint, expiresAt: Date): Promise<string> {
  const outcome = await spend.reserve({
    requestId: randomUUID(),
    userId,
    periodStart: periodOf('month', new Date()).startDate,
    amountMicros: amount,
    expiresAt,
  });
  if (outcome.kind !== 'granted') throw new Error(`reservation ${outcome.kind}`);
  return outcome.reservation.id;
}

async function statuses(ids: string[]): Promise<Map<string, string>> {
  const rows = await ds.query<{ id: string; status: string }[]>(
    'SELECT id, status FROM ai_reservations WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

describe('reservation sweeper', () => {
  it('two sweepers racing release every expired hold exactly once, and leave the others held', async () => {
    const [a, b] = [await start(), await start()];
    const users = await members(20);
    const past = new Date(Date.now() - 1_000);
    const future = new Date(Date.now() + 600_000);
    const expired = await inParallel(
      Array.from({ length: 2 * SWEEP_CHUNK + 300 }, (_, i) => users[i % users.length]),
      10,
      (u) => hold(u, 7n, past),
    );
    const live = await inParallel(users, 10, (u) => hold(u, 11n, future));

    const swept = await Promise.all([
      a.sweeper.sweep(),
      b.sweeper.sweep(),
      a.sweeper.sweep(),
      b.sweeper.sweep(),
    ]);
    expect(swept.reduce((x, y) => x + y, 0)).toBe(expired.length);
    expect((await expiredTotal(a.metrics)) + (await expiredTotal(b.metrics))).toBe(expired.length);
    const st = await statuses([...expired, ...live]);
    expect(expired.filter((id) => st.get(id) !== 'expired')).toEqual([]);
    expect(live.filter((id) => st.get(id) !== 'held')).toEqual([]);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
    const held = await ds.query<{ held: string }[]>(
      'SELECT sum(held_micros)::text AS held FROM ai_spend_counters WHERE user_id = ANY($1::uuid[])',
      [users],
    );
    expect(held[0].held).toBe(String(11 * users.length));
    // Nothing left to do.
    expect(await a.sweeper.sweep()).toBe(0);
  });

  it('usage racing the sweepers settles or expires each hold exactly once; counters equal the ledger', async () => {
    const [a, b] = [await start(), await start()];
    const users = await members(8);
    const n = 400;
    // Holds expire one after another over about two seconds, while their usage arrives in a random
    // order over the same time: some settle first, some expire first, some meet head on. Their
    // expiry times are set once all exist, so that a slow machine cannot let them lapse unused.
    const ids = await inParallel(
      Array.from({ length: n }, (_, i) => i),
      10,
      (i) => hold(users[i % users.length], 500n, new Date(Date.now() + 3_600_000)),
    );
    const t0 = Date.now() + 300;
    await ds.query(
      `UPDATE ai_reservations r SET expires_at = $2::timestamptz + (x.i - 1) * interval '5 milliseconds'
         FROM unnest($1::uuid[]) WITH ORDINALITY AS x(id, i) WHERE r.id = x.id`,
      [ids, new Date(t0).toISOString()],
    );
    const order = ids.map((id, i) => ({ id, i, key: Math.random() })).sort((x, y) => x.key - y.key);
    const usage = order.map(({ id, i }) => ({
      request_id: randomUUID(),
      user_id: users[i % users.length],
      provider: PROVIDER,
      model: MODEL,
      input_tokens: 100 + i,
      output_tokens: 10,
      reservation_id: id,
    }));
    let sweeping = true;
    const sweepers = [a, b].map(async (inst) => {
      let total = 0;
      while (sweeping) {
        total += await inst.sweeper.sweep();
        await new Promise((r) => setTimeout(r, 3));
      }
      return total + (await inst.sweeper.sweep());
    });
    const settledBy = new Map<string, boolean>();
    const chunks: (typeof usage)[] = [];
    for (let i = 0; i < usage.length; i += 8) chunks.push(usage.slice(i, i + 8));
    while (Date.now() < t0) await new Promise((r) => setTimeout(r, 5));
    await inParallel(chunks, 4, async (chunk) => {
      const inst = Math.random() < 0.5 ? a : b;
      const outcomes = await inst.enforcement.recordUsage(AI_GATEWAY_ACTOR, chunk);
      for (const [k, o] of outcomes.entries()) {
        if (!o.ok) throw o.error;
        settledBy.set(chunk[k].reservation_id, o.reply.reservation_settled);
      }
      await new Promise((r) => setTimeout(r, 20));
    });
    sweeping = false;
    const expiredCount = (await Promise.all(sweepers)).reduce((x, y) => x + y, 0);

    const st = await statuses(ids);
    const settled = ids.filter((id) => st.get(id) === 'settled');
    const expired = ids.filter((id) => st.get(id) === 'expired');
    expect(settled.length + expired.length).toBe(n);
    // Both outcomes happened: the race was real.
    expect(settled.length).toBeGreaterThan(0);
    expect(expired.length).toBeGreaterThan(0);
    expect(expiredCount).toBe(expired.length);
    // Exactly the usage records told "settled" settled their hold.
    expect(ids.filter((id) => settledBy.get(id) !== (st.get(id) === 'settled'))).toEqual([]);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
    const held = await ds.query<{ held: string; spent: string }[]>(
      `SELECT sum(held_micros)::text AS held, sum(spent_micros)::text AS spent
         FROM ai_spend_counters WHERE user_id = ANY($1::uuid[])`,
      [users],
    );
    expect(held[0].held).toBe('0');
    // (100 + i) input micros + 20 output micros each.
    expect(BigInt(held[0].spent)).toBe(BigInt(n * 120 + (n * (n - 1)) / 2));
  });

  it('runs once at start: holds left behind by a stopped instance are released', async () => {
    const users = await members(3);
    const ids = await Promise.all(users.map((u) => hold(u, 9n, new Date(Date.now() - 10))));
    const a = await start();
    // The start tick runs in the background.
    for (let i = 0; i < 100 && (await expiredTotal(a.metrics)) < ids.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const st = await statuses(ids);
    expect(ids.map((id) => st.get(id))).toEqual(['expired', 'expired', 'expired']);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
  });
});
