import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { BUDGET_SUBJECTS, DLQ_STREAM, USAGE_CONSUMER, USAGE_STREAM } from '@aigov/contracts';
import { SpendRepository, createDataSource } from '@aigov/db';
import {
  addOrganizationMember,
  insertOrganization,
  insertUser,
  startPrivateServers,
  waitFor,
  type PrivateServers,
  testPool,
} from '@aigov/testing';
import { metricTotal, startBudgetApi } from './testing-module';

// Stopping budget-api while its database is away, with a batch held in the database stage and the
// next one prepared behind it: neither is acknowledged, and the next instance records every record
// once. A PostgreSQL server of this file's own is stopped; the machine's is never touched.

jest.setTimeout(180_000);
const SETTLE_MS = 60_000;

let servers: PrivateServers;
let jsm: JetStreamManager;

beforeAll(async () => {
  servers = await startPrivateServers('aigov_usage_stop');
  jsm = await jetstreamManager(servers.nc);
});

afterAll(() => servers?.stop());

async function start() {
  const app = await startBudgetApi({
    DATABASE_URL: servers.url,
    NATS_URL: servers.nats.url,
    DATABASE_POOL_SIZE: '2',
    USAGE_ACK_WAIT_MS: '3000',
    USAGE_BATCH_SIZE: '50',
  });
  return { module: app.module, counter: (name: string) => metricTotal(app.metrics, name) };
}

it('stopping while the database is away leaves both batches in hand unacknowledged; the next instance records them once', async () => {
  const { pg, nc, url } = servers;
  const db = testPool({ connectionString: url, max: 2 });
  const users: string[] = [];
  try {
    await db.query(
      `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
       VALUES ('anthropic', 'claude-stop', 'default', 1000000, 2000000)`,
    );
    const org = await insertOrganization(db);
    for (let i = 0; i < 3; i++) {
      const u = await insertUser(db);
      await addOrganizationMember(db, org.id, u.id);
      users.push(u.id);
    }
  } finally {
    await db.end();
  }
  const records = Array.from({ length: 300 }, (_, i) => ({
    request_id: randomUUID(),
    user_id: users[i % 3],
    provider: 'anthropic',
    model: 'claude-stop',
    input_tokens: i + 1,
    output_tokens: 1,
  }));
  const js = jetstream(nc);
  const a = await start();
  // One record recorded while the database is there, so that the next pull asks for a batch.
  await js.publish(BUDGET_SUBJECTS.usageRecorded, JSON.stringify(records[0]));
  await waitFor(
    'the first record',
    async () => (await a.counter('aigov_usage_records_ingested_total')) === 1,
    SETTLE_MS,
    20,
  );

  pg.stop();
  let stopped = false;
  try {
    await Promise.all(
      records.slice(1).map((r) => js.publish(BUDGET_SUBJECTS.usageRecorded, JSON.stringify(r))),
    );
    await waitFor(
      'a batch held for want of a database, the next one prepared',
      async () =>
        (await a.counter('aigov_usage_batch_failures_total')) > 0 &&
        (await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).num_ack_pending >= 2,
      SETTLE_MS,
      50,
    );
    const inHand = (await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).num_ack_pending;
    // One batch in the database stage and one prepared behind it, no more.
    expect(inHand).toBeLessThanOrEqual(2 * 50);
    await a.module.close();
    stopped = true;
    const after = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
    expect(after.ack_floor.stream_seq).toBe(1);
    expect(await a.counter('aigov_usage_records_ingested_total')).toBe(1);
  } finally {
    if (!stopped) await a.module.close().catch(() => undefined);
    pg.start();
  }

  const b = await start();
  try {
    await waitFor(
      'every usage record handled',
      async () => {
        const info = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      SETTLE_MS,
      100,
    );
    expect(await b.counter('aigov_usage_records_ingested_total')).toBe(299);
    expect(await b.counter('aigov_usage_records_duplicate_total')).toBe(0);
    expect((await jsm.streams.info(DLQ_STREAM)).state.messages).toBe(0);
    const ds = createDataSource({ url, poolSize: 1 });
    await ds.initialize();
    try {
      const n = await ds.query<{ n: number }[]>('SELECT count(*)::int AS n FROM ai_usage');
      expect(n[0].n).toBe(300);
      expect(await new SpendRepository(ds).listCounterDifferences('month')).toEqual([]);
    } finally {
      await ds.destroy();
    }
  } finally {
    await b.module.close();
  }
});
