import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'pg';
import { DLQ_STREAM } from '@aigov/contracts';
import {
  createTestDatabase,
  startNatsServer,
  startPrivateServers,
  waitFor,
  type PrivateServers,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import {
  consumerSettled,
  counterTotal,
  createIdentityStream,
  expectDatabaseMatches,
  identityHistory,
  killListener,
  publishAll,
  readyStatus,
  startListener,
  type Listener,
} from './helpers/listener';

// The compiled membership-listener (npm run build) against its own nats-server and database,
// under the faults it is built for: killed mid-stream, two instances on one durable consumer,
// PostgreSQL stopped while events flow. Each time the database must end up holding exactly what
// the events say, every event applied once, nothing lost and nothing dead-lettered.

/** Deadlines for things that must happen, generous for a loaded 2-core machine. */
const SETTLE_MS = 90_000;
jest.setTimeout(180_000);

const APPLIED = 'aigov_identity_events_applied_total';

async function appliedCount(db: Client): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM identity_applied_events');
  return res.rows[0].n;
}

describe('membership-listener processes on a shared database', () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let testDb: TestDatabase;
  let db: Client;
  const running: Listener[] = [];

  beforeEach(async () => {
    [nats, testDb] = await Promise.all([startNatsServer(), createTestDatabase()]);
    nc = await connect({ servers: nats.url });
    db = testClient({ connectionString: testDb.url });
    await db.connect();
  });

  afterEach(async () => {
    for (const l of running.splice(0)) await killListener(l);
    await db?.end();
    await nc?.close();
    await Promise.all([nats?.stop(), testDb?.drop()]);
  });

  it('killed with SIGKILL mid-stream and started again: every event applied once, nothing lost', async () => {
    const h = identityHistory(2_000, 1, 'crash');
    await createIdentityStream(await jetstreamManager(nc));
    await publishAll(nc, h.messages);

    const env = {
      DATABASE_URL: testDb.url,
      NATS_URL: nats.url,
      IDENTITY_ACK_WAIT_MS: '2000',
      IDENTITY_BATCH_SIZE: '20',
    };
    const first = await startListener('listener-1', env);
    running.push(first);
    await waitFor(
      'the first listener to apply some events',
      async () => {
        if (first.proc.exited()) throw new Error(`listener-1 exited: ${first.proc.tail()}`);
        return (await appliedCount(db)) >= 100;
      },
      SETTLE_MS,
      10,
    );
    await killListener(first);
    expect(first.proc.exited()?.signal).toBe('SIGKILL');
    const atKill = await appliedCount(db);
    // Killed in the middle: the rest is the second process's work.
    expect(atKill).toBeLessThan(h.events.size / 2);

    // A larger batch for the rest: what matters now is only that it all gets applied.
    const second = await startListener('listener-2', { ...env, IDENTITY_BATCH_SIZE: '100' });
    running.push(second);
    await waitFor('every event handled', () => consumerSettled(nc), SETTLE_MS, 250);

    await expectDatabaseMatches(db, h);
    expect(await counterTotal(second.port, APPLIED)).toBeGreaterThan(0);
    expect((await (await jetstreamManager(nc)).streams.info(DLQ_STREAM)).state.messages).toBe(0);
  });

  it('two instances on the same durable consumer share the stream, each event applied once', async () => {
    const env = {
      DATABASE_URL: testDb.url,
      NATS_URL: nats.url,
      IDENTITY_BATCH_SIZE: '25',
      // Each instance may meet events whose references the other one is applying right now.
      IDENTITY_MAX_DELIVER: '50',
      IDENTITY_RETRY_BACKOFF_MS: '50,100,200,500',
    };
    const [a, b] = await Promise.all([startListener('listener-a', env), startListener('listener-b', env)]);
    running.push(a, b);
    const h = identityHistory(2_000, 2, 'pair');
    await publishAll(nc, h.messages, 100);
    await waitFor('every event handled', () => consumerSettled(nc), SETTLE_MS, 250);

    await expectDatabaseMatches(db, h);
    // Both did a share of the work.
    expect(await counterTotal(a.port, APPLIED)).toBeGreaterThan(0);
    expect(await counterTotal(b.port, APPLIED)).toBeGreaterThan(0);
    expect((await (await jetstreamManager(nc)).streams.info(DLQ_STREAM)).state.messages).toBe(0);
  });
});

describe('membership-listener while its PostgreSQL stops and starts again', () => {
  let servers: PrivateServers;
  let listener: Listener | null = null;

  beforeAll(async () => {
    servers = await startPrivateServers('aigov_listener_outage');
  });

  afterAll(async () => {
    if (listener) await killListener(listener);
    await servers?.stop();
  });

  it('holds events while the database is down, reports not ready, then applies all of them', async () => {
    const { pg, nats, nc, url } = servers;
    listener = await startListener('listener-outage', {
      DATABASE_URL: url,
      NATS_URL: nats.url,
      IDENTITY_BATCH_SIZE: '10',
      DATABASE_POOL_SIZE: '2',
    });
    const { port } = listener;
    const h = identityHistory(800, 3, 'outage');
    const half = h.messages.length / 2;
    await publishAll(nc, h.messages.slice(0, half), 20);

    const db = testClient({ connectionString: url });
    await db.connect();
    await waitFor('some events applied', async () => (await appliedCount(db)) > 0, SETTLE_MS, 10);
    await db.end();

    pg.stop();
    try {
      // Published while the database is down: JetStream keeps them, the listener holds them.
      await publishAll(nc, h.messages.slice(half), 20);
      await waitFor('readiness to go away', async () => (await readyStatus(port)) === 503, SETTLE_MS);
      await waitFor(
        'a batch the database could not take',
        async () => (await counterTotal(port, 'aigov_identity_batch_failures_total')) > 0,
        SETTLE_MS,
      );
      expect(listener.proc.exited()).toBeNull();
    } finally {
      pg.start();
    }

    await waitFor(
      'readiness after the database is back',
      async () => (await readyStatus(port)) === 200,
      SETTLE_MS,
    );
    await waitFor('every event handled', () => consumerSettled(nc), SETTLE_MS, 250);
    const check = testClient({ connectionString: url });
    await check.connect();
    try {
      await expectDatabaseMatches(check, h);
    } finally {
      await check.end();
    }
    expect((await (await jetstreamManager(nc)).streams.info(DLQ_STREAM)).state.messages).toBe(0);
  });
});
