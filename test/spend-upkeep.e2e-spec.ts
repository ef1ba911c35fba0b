import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'pg';
import { BUDGET_SUBJECTS, DLQ_STREAM, USAGE_CONSUMER, USAGE_STREAM } from '@aigov/contracts';
import { SpendRepository, createDataSource } from '@aigov/db';
import {
  addOrganizationMember,
  createTestDatabase,
  insertOrganization,
  insertUser,
  startNatsServer,
  startPrivateServers,
  waitFor,
  waitForNoConnections,
  type PrivateServers,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import {
  counterTotal,
  killAppProcess,
  readyStatus,
  startAppProcess,
  type AppProcess,
} from './helpers/processes';

// The compiled budget-api (npm run build) under the faults its spend upkeep is built for: killed
// with SIGKILL while it ingests usage and while reservations are held, and its PostgreSQL stopped
// while usage keeps arriving. Afterwards every usage record is in the ledger exactly once, every
// hold has ended exactly once, and the counters equal the ledger.

const SETTLE_MS = 90_000;
jest.setTimeout(240_000);

const PROVIDER = 'anthropic';
const MODEL = 'claude-e2e-upkeep';

type Api = AppProcess;

const startApi = (label: string, env: Record<string, string>): Promise<Api> =>
  startAppProcess('budget-api', label, env, 90_000);

/** Seeds a price and `n` members of an organization with a large budget. */
async function seed(db: Client, n: number): Promise<string[]> {
  await db.query(
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
     VALUES ($1, $2, 'default', 1000000, 2000000) ON CONFLICT DO NOTHING`,
    [PROVIDER, MODEL],
  );
  const org = await insertOrganization(db);
  await db.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
    org.id,
    1_000_000_000,
  ]);
  const users: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = await insertUser(db);
    await addOrganizationMember(db, org.id, u.id);
    users.push(u.id);
  }
  return users;
}

const usage = (userId: string, i: number, reservationId?: string) => ({
  request_id: randomUUID(),
  user_id: userId,
  provider: PROVIDER,
  model: MODEL,
  input_tokens: 100 + i,
  output_tokens: 10,
  ...(reservationId ? { reservation_id: reservationId } : {}),
});

async function publishAll(nc: NatsConnection, bodies: unknown[], chunk = 100): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < bodies.length; i += chunk) {
    await Promise.all(
      bodies.slice(i, i + chunk).map((b) => js.publish(BUDGET_SUBJECTS.usageRecorded, JSON.stringify(b))),
    );
  }
}

async function consumerSettled(nc: NatsConnection): Promise<boolean> {
  const info = await (await jetstreamManager(nc)).consumers.info(USAGE_STREAM, USAGE_CONSUMER);
  return info.num_pending === 0 && info.num_ack_pending === 0;
}

async function count(db: Client, sql: string, params: unknown[] = []): Promise<number> {
  return (await db.query<{ n: number }>(sql, params)).rows[0].n;
}

describe('budget-api killed with SIGKILL while ingesting usage and holding reservations', () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let testDb: TestDatabase;
  let db: Client;
  let ds: DataSource;
  const running: Api[] = [];

  beforeAll(async () => {
    [nats, testDb] = await Promise.all([startNatsServer(), createTestDatabase()]);
    nc = await connect({ servers: nats.url });
    db = testClient({ connectionString: testDb.url });
    await db.connect();
    ds = createDataSource({ url: testDb.url, poolSize: 4 });
    await ds.initialize();
  });

  afterAll(async () => {
    for (const a of running.splice(0)) await killAppProcess(a);
    await db?.end();
    if (ds?.isInitialized) await ds.destroy();
    await nc?.close();
    if (testDb) await waitForNoConnections(testDb.name);
    await Promise.all([nats?.stop(), testDb?.drop()]);
  });

  it('after the restart the sweeper releases the holds left behind, and every record is recorded once', async () => {
    const spend = new SpendRepository(ds);
    const users = await seed(db, 10);
    const period = new Date().toISOString().slice(0, 8) + '01';
    const env = {
      DATABASE_URL: testDb.url,
      NATS_URL: nats.url,
      USAGE_BATCH_SIZE: '20',
      USAGE_ACK_WAIT_MS: '2000',
      // The first instance sweeps only at its start, before the holds exist.
      RESERVATION_SWEEP_INTERVAL_MS: '3600000',
      DATABASE_POOL_SIZE: '4',
    };
    const first = await startApi('budget-api-1', env);
    running.push(first);
    const ttlMs = 4_000;
    // Held reservations with a short ttl (the gateway's reserve, straight through the ledger's
    // own statement): half will be settled by usage, half are left for the sweeper.
    const holds: string[] = [];
    for (let i = 0; i < 200; i++) {
      const r = await spend.reserve({
        requestId: randomUUID(),
        userId: users[i % users.length],
        periodStart: period,
        amountMicros: 300n,
        expiresAt: new Date(Date.now() + ttlMs),
      });
      if (r.kind !== 'granted') throw new Error(r.kind);
      holds.push(r.reservation.id);
    }
    const records = Array.from({ length: 3_000 }, (_, i) =>
      usage(users[i % users.length], i, i % 30 === 0 && i / 30 < 100 ? holds[i / 30] : undefined),
    );
    const settling = new Set(records.filter((r) => r.reservation_id).map((r) => r.reservation_id));
    expect(settling.size).toBe(100);

    await publishAll(nc, records);
    await waitFor(
      'the first instance to record some usage',
      async () => {
        if (first.proc.exited()) throw new Error(`budget-api-1 exited: ${first.proc.tail()}`);
        return (await count(db, 'SELECT count(*)::int AS n FROM ai_usage')) >= 200;
      },
      SETTLE_MS,
      10,
    );
    await killAppProcess(first);
    expect(first.proc.exited()?.signal).toBe('SIGKILL');
    const atKill = await count(db, 'SELECT count(*)::int AS n FROM ai_usage');
    expect(atKill).toBeLessThan(records.length);
    // The holds outlive the process that would have swept them.
    await new Promise((r) => setTimeout(r, ttlMs + 500));
    const stillHeld = await count(db, `SELECT count(*)::int AS n FROM ai_reservations WHERE status = 'held'`);
    expect(stillHeld).toBeGreaterThanOrEqual(100);

    const second = await startApi('budget-api-2', { ...env, RESERVATION_SWEEP_INTERVAL_MS: '500' });
    running.push(second);
    await waitFor('every usage record handled', () => consumerSettled(nc), SETTLE_MS, 250);
    await waitFor(
      'no hold left',
      async () =>
        (await count(db, `SELECT count(*)::int AS n FROM ai_reservations WHERE status = 'held'`)) === 0,
      SETTLE_MS,
      250,
    );

    expect(
      await count(db, 'SELECT count(*)::int AS n FROM ai_usage WHERE request_id = ANY($1::text[])', [
        records.map((r) => r.request_id),
      ]),
    ).toBe(records.length);
    const rows = await db.query<{ id: string; status: string }>(
      'SELECT id, status FROM ai_reservations WHERE id = ANY($1::uuid[])',
      [holds],
    );
    // Each hold ended once: settled by its usage if that came before the expiry, else expired.
    expect(rows.rows.every((r) => r.status === 'settled' || r.status === 'expired')).toBe(true);
    const settledIds = rows.rows.filter((r) => r.status === 'settled').map((r) => r.id);
    expect(settledIds.every((id) => settling.has(id))).toBe(true);
    expect(rows.rows.filter((r) => r.status === 'expired').length).toBeGreaterThanOrEqual(100);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
    const spent = await db.query<{ spent: string; held: string }>(
      'SELECT sum(spent_micros)::text AS spent, sum(held_micros)::text AS held FROM ai_spend_counters',
    );
    // (100 + i) input micros and 20 output micros each.
    const n = records.length;
    expect(BigInt(spent.rows[0].spent)).toBe(BigInt(n * 120 + (n * (n - 1)) / 2));
    expect(spent.rows[0].held).toBe('0');
    expect(await counterTotal(second.port, 'aigov_reservations_expired_total')).toBeGreaterThanOrEqual(100);
    expect((await (await jetstreamManager(nc)).streams.info(DLQ_STREAM)).state.messages).toBe(0);
  });
});

describe('budget-api while its PostgreSQL stops and starts again', () => {
  let servers: PrivateServers;
  let api: Api | null = null;

  beforeAll(async () => {
    servers = await startPrivateServers('aigov_usage_outage');
  });

  afterAll(async () => {
    if (api) await killAppProcess(api);
    await servers?.stop();
  });

  it('holds usage while the database is down, reports not ready, then records all of it once', async () => {
    const { pg, nats, nc, url } = servers;
    const seedDb = testClient({ connectionString: url });
    await seedDb.connect();
    const users = await seed(seedDb, 5);
    await seedDb.end();
    api = await startApi('budget-api-outage', {
      DATABASE_URL: url,
      NATS_URL: nats.url,
      USAGE_BATCH_SIZE: '25',
      USAGE_ACK_WAIT_MS: '3000',
      DATABASE_POOL_SIZE: '2',
    });
    const { port } = api;
    const records = Array.from({ length: 600 }, (_, i) => usage(users[i % users.length], i));
    await publishAll(nc, records.slice(0, 300));
    await waitFor('the first half handled', () => consumerSettled(nc), SETTLE_MS, 100);

    pg.stop();
    try {
      // Published while the database is down: JetStream keeps them, budget-api holds them.
      await publishAll(nc, records.slice(300));
      await waitFor('readiness to go away', async () => (await readyStatus(port)) === 503, SETTLE_MS);
      await waitFor(
        'a batch the database could not take',
        async () => (await counterTotal(port, 'aigov_usage_batch_failures_total')) > 0,
        SETTLE_MS,
      );
      // Held for longer than ack_wait: kept alive, not redelivered as a failure.
      await new Promise((r) => setTimeout(r, 4_000));
      expect(api.proc.exited()).toBeNull();
    } finally {
      pg.start();
    }

    await waitFor(
      'readiness after the database is back',
      async () => (await readyStatus(port)) === 200,
      SETTLE_MS,
    );
    await waitFor('every usage record handled', () => consumerSettled(nc), SETTLE_MS, 250);
    const check = testClient({ connectionString: url });
    await check.connect();
    try {
      expect(
        await count(check, 'SELECT count(*)::int AS n FROM ai_usage WHERE request_id = ANY($1::text[])', [
          records.map((r) => r.request_id),
        ]),
      ).toBe(600);
      const ds = createDataSource({ url, poolSize: 1 });
      await ds.initialize();
      try {
        expect(await new SpendRepository(ds).listCounterDifferences('month')).toEqual([]);
      } finally {
        await ds.destroy();
      }
    } finally {
      await check.end();
    }
    // A batch whose commit the outage hid from us is recorded again as duplicates, never twice.
    const ingested = await counterTotal(port, 'aigov_usage_records_ingested_total');
    const duplicates = await counterTotal(port, 'aigov_usage_records_duplicate_total');
    expect(ingested).toBeLessThanOrEqual(600);
    expect(ingested + duplicates).toBeGreaterThanOrEqual(600);
    expect((await (await jetstreamManager(nc)).streams.info(DLQ_STREAM)).state.messages).toBe(0);
  });
});
