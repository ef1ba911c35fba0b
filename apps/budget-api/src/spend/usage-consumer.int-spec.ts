import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  BUDGET_EVENTS_STREAM,
  BUDGET_SUBJECTS,
  DEAD_LETTER_HEADERS,
  DLQ_STREAM,
  USAGE_CONSUMER,
  USAGE_STREAM,
  type BudgetThresholdEvent,
  type DeadLetter,
} from '@aigov/contracts';
import { SpendRepository, createDataSource } from '@aigov/db';
import type { DataSource } from 'typeorm';
import { createLogger } from '@aigov/observability';
import {
  addOrganizationMember,
  createTestDatabase,
  insertOrganization,
  insertUser,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
  testPool,
} from '@aigov/testing';
import type { Pool } from 'pg';
import { periodOf } from './period';
import { metricTotal as counter, startBudgetApi, type BudgetApiInstance } from './testing-module';
import { ThresholdOutboxService, thresholdMsgId } from './threshold-outbox.service';
import { ensureBudgetEventsStream } from './usage-consumer.jetstream';

// budget-api's usage ingestion and threshold outbox against a real nats-server (JetStream) and a
// real PostgreSQL database of this file's own: the whole app module, as `npm start` builds it,
// without its HTTP server.

jest.setTimeout(120_000);
const SETTLE_MS = 60_000;

/** Prices in micro-USD per million tokens: 1 input token costs 1 micro, 1 output token 2 micros. */
const PROVIDER = 'anthropic';
const MODEL = 'claude-int-test';

let nats: TestNatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let db: TestDatabase;
let pg: Pool;
let spend: SpendRepository;
let ds: DataSource;
const running: BudgetApiInstance[] = [];

beforeAll(async () => {
  [nats, db] = await Promise.all([startNatsServer(), createTestDatabase()]);
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  pg = testPool({ connectionString: db.url, max: 4 });
  await pg.query(
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
     VALUES ($1, $2, 'default', 1000000, 2000000)`,
    [PROVIDER, MODEL],
  );
  ds = createDataSource({ url: db.url, poolSize: 2 });
  await ds.initialize();
  spend = new SpendRepository(ds);
});

afterEach(async () => {
  for (const i of running.splice(0)) await i.close();
  for (const stream of [USAGE_STREAM, DLQ_STREAM, BUDGET_EVENTS_STREAM])
    await jsm.streams.delete(stream).catch(() => undefined);
});

afterAll(async () => {
  if (ds?.isInitialized) await ds.destroy();
  await pg?.end();
  await nc?.close();
  await Promise.all([nats?.stop(), db?.drop()]);
});

async function start(env: Record<string, string> = {}): Promise<BudgetApiInstance> {
  const instance = await startBudgetApi({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    DATABASE_POOL_SIZE: '4',
    USAGE_ACK_WAIT_MS: '5000',
    USAGE_BATCH_SIZE: '100',
    THRESHOLD_POLL_MS: '200',
    ...env,
  });
  running.push(instance);
  return instance;
}

/** A member of a fresh organization whose Everyone group has a limit of `limit` micros (or none). */
async function member(limit: number | null): Promise<string> {
  const org = await insertOrganization(pg);
  if (limit !== null) {
    await pg.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
      org.id,
      limit,
    ]);
  }
  const u = await insertUser(pg);
  await addOrganizationMember(pg, org.id, u.id);
  return u.id;
}

const record = (userId: string, requestId: string, input = 10, output = 5) => ({
  request_id: requestId,
  user_id: userId,
  provider: PROVIDER,
  model: MODEL,
  input_tokens: input,
  output_tokens: output,
});

async function publishAll(bodies: string[], chunk = 200): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < bodies.length; i += chunk) {
    await Promise.all(bodies.slice(i, i + chunk).map((b) => js.publish(BUDGET_SUBJECTS.usageRecorded, b)));
  }
}

async function consumerSettled(): Promise<boolean> {
  const info = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
  return info.num_pending === 0 && info.num_ack_pending === 0;
}

async function streamMessages<T>(stream: string): Promise<{ body: T; msgId: string | undefined }[]> {
  const state = (await jsm.streams.info(stream)).state;
  const out: { body: T; msgId: string | undefined }[] = [];
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m) out.push({ body: m.json<T>(), msgId: m.header?.get('Nats-Msg-Id') });
  }
  return out;
}

async function ledgerCount(requestIds: string[]): Promise<number> {
  const res = await pg.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM ai_usage WHERE request_id = ANY($1::text[])',
    [requestIds],
  );
  return res.rows[0].n;
}

describe('usage ingestion from AI_USAGE', () => {
  it('creates the stream and the durable consumer with explicit ack, max_deliver, ack_wait and backoff', async () => {
    await start({ USAGE_MAX_DELIVER: '6', USAGE_ACK_WAIT_MS: '2000' });
    const stream = await jsm.streams.info(USAGE_STREAM);
    expect(stream.config.subjects).toEqual(['aigov.usage.recorded']);
    expect((await jsm.streams.info(DLQ_STREAM)).config.subjects).toEqual(['aigov.dlq.>']);
    const c = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
    expect(c.config).toMatchObject({ durable_name: 'budget-api', ack_policy: 'explicit', max_deliver: 6 });
    expect(c.config.backoff).toEqual([2, 4, 8, 16].map((s) => s * 1_000_000_000));
    // A second instance with the same settings finds them and changes nothing...
    await start({ USAGE_MAX_DELIVER: '6', USAGE_ACK_WAIT_MS: '2000' });
    expect((await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).config.max_deliver).toBe(6);
    // ...one with other settings updates the consumer (fewer deliveries, fewer backoff steps).
    await start({ USAGE_MAX_DELIVER: '3', USAGE_ACK_WAIT_MS: '1000' });
    const updated = (await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).config;
    expect(updated.max_deliver).toBe(3);
    expect(updated.backoff).toEqual([1, 2].map((s) => s * 1_000_000_000));
  });

  it('records each request id exactly once, whatever the duplicates, and counters equal the ledger', async () => {
    const users = await Promise.all(Array.from({ length: 10 }, () => member(null)));
    const records = Array.from({ length: 400 }, (_, i) =>
      record(users[i % users.length], randomUUID(), i + 1, 3),
    );
    // Every fourth record published three times over (a gateway retrying its publish), and one
    // record wrapped in a CloudEvent.
    const bodies = records.map((r) => JSON.stringify(r));
    for (const r of records.filter((_, i) => i % 4 === 0)) bodies.push(JSON.stringify(r), JSON.stringify(r));
    bodies[1] = JSON.stringify({
      specversion: '1.0',
      id: randomUUID(),
      source: 'test/gateway',
      type: 'aigov.usage.recorded',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: records[1],
    });
    const a = await start();
    await publishAll(bodies);
    await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);

    expect(await ledgerCount(records.map((r) => r.request_id))).toBe(400);
    const cost = await pg.query<{ total: string }>(
      'SELECT sum(cost_micros)::text AS total FROM ai_usage WHERE request_id = ANY($1::text[])',
      [records.map((r) => r.request_id)],
    );
    // input i+1 tokens at 1 micro, 3 output tokens at 2 micros: sum(i+1) + 400 * 6.
    expect(BigInt(cost.rows[0].total)).toBe(BigInt((400 * 401) / 2 + 400 * 6));
    expect(await spend.listCounterDifferences('month')).toEqual([]);
    expect(await counter(a.metrics, 'aigov_usage_records_ingested_total')).toBe(400);
    expect(await counter(a.metrics, 'aigov_usage_records_duplicate_total')).toBe(200);
    expect((await jsm.streams.info(DLQ_STREAM)).state.messages).toBe(0);
    expect((await a.readiness.report()).checks['usage-consumer']).toEqual({ ok: true });
  });

  it('two instances share the consumer: everything recorded once', async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => member(null)));
    const records = Array.from({ length: 600 }, (_, i) => record(users[i % 4], randomUUID()));
    const [a, b] = [await start({ USAGE_BATCH_SIZE: '20' }), await start({ USAGE_BATCH_SIZE: '20' })];
    const bodies = records.map((r) => JSON.stringify(r));
    await publishAll([...bodies, ...bodies.slice(0, 100)]);
    await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);
    expect(await ledgerCount(records.map((r) => r.request_id))).toBe(600);
    const ingested = [
      await counter(a.metrics, 'aigov_usage_records_ingested_total'),
      await counter(b.metrics, 'aigov_usage_records_ingested_total'),
    ];
    expect(ingested[0] + ingested[1]).toBe(600);
    expect(ingested.every((n) => n > 0)).toBe(true);
    expect(
      (await counter(a.metrics, 'aigov_usage_records_duplicate_total')) +
        (await counter(b.metrics, 'aigov_usage_records_duplicate_total')),
    ).toBe(100);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
  });

  it('stopping finishes the batch in hand: the next instance records the rest, none of it twice', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, () => member(null)));
    const records = Array.from({ length: 2_000 }, (_, i) => record(users[i % 5], randomUUID()));
    const a = await start({ USAGE_BATCH_SIZE: '50' });
    await publishAll(records.map((r) => JSON.stringify(r)));
    await waitFor(
      'the first instance to record some',
      async () => (await ledgerCount(records.map((r) => r.request_id))) >= 200,
      SETTLE_MS,
      5,
    );
    await a.close();
    const atStop = await ledgerCount(records.map((r) => r.request_id));
    expect(atStop).toBeLessThan(records.length);
    // Every record it recorded was acknowledged before it stopped.
    expect(await counter(a.metrics, 'aigov_usage_records_ingested_total')).toBe(atStop);
    const b = await start({ USAGE_BATCH_SIZE: '200' });
    await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);
    expect(await ledgerCount(records.map((r) => r.request_id))).toBe(records.length);
    expect(await counter(b.metrics, 'aigov_usage_records_duplicate_total')).toBe(0);
    expect(await counter(b.metrics, 'aigov_usage_records_ingested_total')).toBe(records.length - atStop);
    expect(await spend.listCounterDifferences('month')).toEqual([]);
  });

  it('acknowledges a batch only after its statement committed, with one batch prepared behind it and no more', async () => {
    const users = await Promise.all(Array.from({ length: 3 }, () => member(null)));
    const records = Array.from({ length: 500 }, (_, i) => record(users[i % 3], randomUUID(), i + 1, 1));
    // The stream and consumer, made by an instance that is gone before the records arrive.
    await start();
    await running.splice(0)[0].close();
    // Inserts into the ledger wait for this lock: the consumer's statement is held mid-way.
    const blocker = await pg.connect();
    const blocked = async (): Promise<number | null> => {
      const res = await pg.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%jsonb_to_recordset%'`,
      );
      return res.rows[0]?.pid ?? null;
    };
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE ai_usage IN EXCLUSIVE MODE');
      await publishAll(records.map((r) => JSON.stringify(r)));
      const a = await start({ USAGE_BATCH_SIZE: '100' });
      await waitFor(
        'a usage statement waiting for the lock',
        async () => (await blocked()) !== null,
        SETTLE_MS,
        20,
      );
      // The first pull takes one record (nothing was known to be waiting), the next a full batch,
      // prepared while the first is in the database; nothing more is pulled meanwhile.
      await waitFor(
        'the next batch fetched and prepared',
        async () => (await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER)).num_ack_pending === 101,
        SETTLE_MS,
        20,
      );
      const held = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
      expect(held.ack_floor.stream_seq).toBe(0);
      expect(held.num_pending).toBe(399);
      expect(await counter(a.metrics, 'aigov_usage_records_ingested_total')).toBe(0);

      // The connection dies mid-statement (an outage): nothing of the batch is kept or acknowledged,
      // and the batch is tried again (waiting for the lock once more).
      const pid = (await blocked())!;
      await pg.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor(
        'the batch tried again',
        async () => {
          const again = await blocked();
          return again !== null && again !== pid;
        },
        SETTLE_MS,
        20,
      );
      expect(await counter(a.metrics, 'aigov_usage_batch_failures_total')).toBeGreaterThanOrEqual(1);
      const still = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
      expect(still.ack_floor.stream_seq).toBe(0);
      expect(still.num_ack_pending).toBe(101);

      await blocker.query('ROLLBACK');
      await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);
      expect(await ledgerCount(records.map((r) => r.request_id))).toBe(500);
      expect(await counter(a.metrics, 'aigov_usage_records_ingested_total')).toBe(500);
      expect(await counter(a.metrics, 'aigov_usage_records_duplicate_total')).toBe(0);
      const cost = await pg.query<{ total: string }>(
        'SELECT sum(cost_micros)::text AS total FROM ai_usage WHERE request_id = ANY($1::text[])',
        [records.map((r) => r.request_id)],
      );
      // input i+1 tokens at 1 micro, 1 output token at 2 micros.
      expect(BigInt(cost.rows[0].total)).toBe(BigInt((500 * 501) / 2 + 500 * 2));
      expect(await spend.listCounterDifferences('month')).toEqual([]);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  it('makes the stream and consumer again when they are deleted under it (a fresh JetStream store)', async () => {
    const user = await member(null);
    const a = await start();
    await jsm.streams.delete(USAGE_STREAM);
    await waitFor(
      'the stream and consumer made again',
      async () => {
        try {
          await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
          return true;
        } catch {
          return false;
        }
      },
      SETTLE_MS,
      200,
    );
    const r = record(user, randomUUID());
    await publishAll([JSON.stringify(r)]);
    await waitFor(
      'the record recorded',
      async () => (await ledgerCount([r.request_id])) === 1,
      SETTLE_MS,
      100,
    );
    await waitFor(
      'readiness again',
      async () => (await a.readiness.report()).checks['usage-consumer'].ok,
      SETTLE_MS,
      200,
    );
  });

  it('a record without occurred_at counts from when the stream stored it, not from when it was consumed', async () => {
    const user = await member(null);
    await start();
    await running.splice(0)[0].close();
    const r = record(user, randomUUID());
    await publishAll([JSON.stringify(r)]);
    const published = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await start();
    await waitFor(
      'the record recorded',
      async () => (await ledgerCount([r.request_id])) === 1,
      SETTLE_MS,
      100,
    );
    const row = await pg.query<{ occurred_at: Date; recorded_at: Date }>(
      'SELECT occurred_at, recorded_at FROM ai_usage WHERE request_id = $1',
      [r.request_id],
    );
    expect(Math.abs(row.rows[0].occurred_at.getTime() - published)).toBeLessThan(1_000);
    expect(row.rows[0].recorded_at.getTime() - row.rows[0].occurred_at.getTime()).toBeGreaterThanOrEqual(
      1_000,
    );
  });

  it('a record that reached max_deliver unacknowledged (its holders died) is dead-lettered, not lost silently', async () => {
    const user = await member(null);
    const env = { USAGE_MAX_DELIVER: '2', USAGE_ACK_WAIT_MS: '3000' };
    await start(env);
    await running.splice(0)[0].close();
    const r = record(user, randomUUID());
    await publishAll([JSON.stringify(r)]);
    // Two deliveries that are never acknowledged: what instances dying with the record in hand leave.
    const consumer = await jetstream(nc).consumers.get(USAGE_STREAM, USAGE_CONSUMER);
    for (let delivery = 1; delivery <= 2; delivery++) {
      let got = 0;
      while (got === 0) {
        for await (const m of await consumer.fetch({ max_messages: 1, expires: 1_000 })) {
          expect(m.info.deliveryCount).toBe(delivery);
          got++;
        }
      }
    }
    const a = await start(env);
    await waitFor(
      'the dead letter',
      async () => (await jsm.streams.info(DLQ_STREAM)).state.messages === 1,
      SETTLE_MS,
      100,
    );
    const m = await jsm.streams.getMessage(DLQ_STREAM, { seq: 1 });
    expect(m?.header?.get(DEAD_LETTER_HEADERS.cause)).toBe('unacknowledged');
    expect(m?.json<DeadLetter>()).toMatchObject({
      reason: 'not acknowledged after max_deliver deliveries',
      subject: 'aigov.usage.recorded',
      deliveries: 2,
      event: { request_id: r.request_id },
    });
    expect(
      await counter(a.metrics, 'aigov_usage_records_dead_lettered_total', { reason: 'unacknowledged' }),
    ).toBe(1);
    expect(await ledgerCount([r.request_id])).toBe(0);
  });

  it('dead-letters invalid records at once with the reason, and records the valid ones around them', async () => {
    const user = await member(null);
    const good = [record(user, randomUUID()), record(user, randomUUID())];
    const tooOld = {
      ...record(user, randomUUID()),
      occurred_at: new Date(Date.now() - 40 * 86_400_000).toISOString(),
    };
    const a = await start();
    await publishAll([
      JSON.stringify(good[0]),
      'not json',
      JSON.stringify({ ...record(user, randomUUID()), input_tokens: -3, colour: 'red' }),
      JSON.stringify(tooOld),
      JSON.stringify(good[1]),
    ]);
    await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);
    expect(await ledgerCount(good.map((r) => r.request_id))).toBe(2);
    expect(await ledgerCount([tooOld.request_id])).toBe(0);

    const state = (await jsm.streams.info(DLQ_STREAM)).state;
    const letters: { letter: DeadLetter; cause: string | undefined }[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(DLQ_STREAM, { seq });
      if (m) letters.push({ letter: m.json<DeadLetter>(), cause: m.header?.get(DEAD_LETTER_HEADERS.cause) });
    }
    expect(letters.map((l) => l.cause)).toEqual(['invalid_json', 'invalid_data', 'rejected']);
    expect(letters[0].letter).toMatchObject({
      reason: 'invalid_json',
      subject: 'aigov.usage.recorded',
      stream_seq: 2,
      deliveries: 1,
      raw: Buffer.from('not json').toString('base64'),
    });
    expect(letters[1].letter.reason).toBe('invalid_data');
    expect(letters[1].letter.errors.join('\n')).toMatch(/colour/);
    expect(letters[1].letter.event).toMatchObject({ colour: 'red' });
    expect(letters[2].letter).toMatchObject({ stream_seq: 4, event: { request_id: tooOld.request_id } });
    expect(letters[2].letter.errors).toEqual([expect.stringMatching(/^occurred_at: /)]);
    expect(await counter(a.metrics, 'aigov_usage_records_dead_lettered_total')).toBe(3);
  });
});

describe('threshold outbox', () => {
  it('two instances publish exactly one event per user, period and threshold', async () => {
    const users = await Promise.all(Array.from({ length: 12 }, () => member(1_000)));
    const seen: BudgetThresholdEvent[] = [];
    const sub = nc.subscribe(BUDGET_SUBJECTS.threshold, {
      callback: (_e, m) => {
        seen.push(m.json());
      },
    });
    const [a, b] = [await start({ USAGE_BATCH_SIZE: '7' }), await start({ USAGE_BATCH_SIZE: '7' })];
    // Each user: 10 records of 100 micros (90 input tokens + 5 output): 85% at the 9th, 100% at the 10th;
    // two more records go past the limit and must not repeat an event.
    const bodies: string[] = [];
    for (let round = 0; round < 12; round++)
      for (const u of users) bodies.push(JSON.stringify(record(u, randomUUID(), 90, 5)));
    await publishAll(bodies, 24);
    await waitFor('every usage record handled', consumerSettled, SETTLE_MS, 100);
    await waitFor(
      'every threshold event published',
      async () => (await jsm.streams.info(BUDGET_EVENTS_STREAM)).state.messages >= 24,
      SETTLE_MS,
      100,
    );
    // Time for a stray second publish to show up, had there been one.
    await new Promise((r) => setTimeout(r, 1_500));
    const stored = await streamMessages<BudgetThresholdEvent>(BUDGET_EVENTS_STREAM);
    const keys = stored.map((s) => `${s.body.user_id}/${s.body.threshold_percent}`).sort();
    expect(keys).toEqual(users.flatMap((u) => [`${u}/100`, `${u}/85`]).sort());
    expect(seen).toHaveLength(24);
    const period = periodOf('month', new Date());
    for (const s of stored) {
      expect(s.body).toEqual({
        user_id: s.body.user_id,
        effective_group_id: expect.any(String) as string,
        threshold_percent: s.body.threshold_percent,
        spent_micros: s.body.threshold_percent === 85 ? 900 : 1_000,
        spend_limit_micros: 1_000,
        period_start: period.start.toISOString(),
      });
      expect(s.msgId).toBe(`threshold/${s.body.user_id}/${period.startDate}/${s.body.threshold_percent}`);
    }
    const unpublished = await pg.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ai_budget_threshold_events WHERE published_at IS NULL',
    );
    expect(unpublished.rows[0].n).toBe(0);
    const published =
      (await counter(a.metrics, 'aigov_budget_threshold_events_published_total')) +
      (await counter(b.metrics, 'aigov_budget_threshold_events_published_total'));
    expect(published).toBe(24);
    sub.unsubscribe();
  });

  it('an event published before a crash (not marked) is published again and dropped by its Nats-Msg-Id', async () => {
    const user = await member(1_000);
    const period = periodOf('month', new Date());
    // What a crash between publish and commit leaves: the event in the stream, the row unpublished.
    await ensureBudgetEventsStream(jsm, createLogger('test', 'silent'));
    await jetstream(nc).publish(BUDGET_SUBJECTS.threshold, JSON.stringify({ first: true }), {
      msgID: thresholdMsgId({
        userId: user,
        periodStart: period.startDate,
        thresholdPercent: 85,
        effectiveGroupId: null,
        spentMicros: 0n,
        spendLimitMicros: 0n,
      }),
    });
    const a = await start();
    await publishAll([JSON.stringify(record(user, randomUUID(), 890, 5))]);
    await waitFor(
      'the row marked published',
      async () =>
        (
          await pg.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM ai_budget_threshold_events WHERE user_id = $1 AND published_at IS NOT NULL',
            [user],
          )
        ).rows[0].n === 1,
      SETTLE_MS,
      100,
    );
    const stored = await streamMessages<Record<string, unknown>>(BUDGET_EVENTS_STREAM);
    expect(stored.map((s) => s.body)).toEqual([{ first: true }]);
    expect(await counter(a.metrics, 'aigov_budget_threshold_events_duplicate_total')).toBe(1);
    // Nothing left for a later round either.
    expect(await a.module.get(ThresholdOutboxService).publishChunk()).toBe(0);
  });
});
