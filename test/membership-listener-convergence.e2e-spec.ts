import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'pg';
import { DLQ_STREAM } from '@aigov/contracts';
import {
  createTestDatabase,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import {
  Random,
  databaseState,
  differences,
  flatten,
  generateHistory,
  model,
  reorderLocally,
  withDuplicates,
} from './helpers/identity-history';
import {
  consumerSettled,
  createIdentityStream,
  killListener,
  publishAll,
  startListener,
  type Listener,
} from './helpers/listener';

// Convergence through the whole pipeline: a random valid history of 5,000 identity events over
// 300 users, 4 organizations and 40 groups (with snapshots, some in parts), published to
// JetStream with duplicates and local reordering, applied by two listener processes (npm run
// build) sharing the durable consumer, with retries redelivered by JetStream. The database must
// end up equal to what a simple model of the history says, with nothing dead-lettered.

jest.setTimeout(300_000);
const SEED = 20261203;

describe('membership-listener convergence through NATS', () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let testDb: TestDatabase;
  let db: Client;
  const running: Listener[] = [];

  beforeAll(async () => {
    [nats, testDb] = await Promise.all([startNatsServer(), createTestDatabase()]);
    nc = await connect({ servers: nats.url });
    db = testClient({ connectionString: testDb.url });
    await db.connect();
  });

  afterAll(async () => {
    for (const l of running.splice(0)) await killListener(l);
    await db?.end();
    await nc?.close();
    await Promise.all([nats?.stop(), testDb?.drop()]);
  });

  it('a duplicated, locally reordered history of 5,000 events ends in the state the source intended', async () => {
    const history = generateHistory({ seed: SEED, events: 5_000 });
    const r = new Random(SEED + 1);
    const delivered = reorderLocally(withDuplicates(history, r, 0.1), r, 20);
    const usersBefore = new Set(
      (await db.query<{ id: string }>('SELECT id FROM users')).rows.map((u) => u.id),
    );

    await createIdentityStream(await jetstreamManager(nc));
    const env = {
      DATABASE_URL: testDb.url,
      NATS_URL: nats.url,
      // Events that wait for something still on its way come back quickly and often enough.
      IDENTITY_RETRY_BACKOFF_MS: '100,200,500',
      IDENTITY_MAX_DELIVER: '100',
    };
    running.push(await startListener('listener-a', env), await startListener('listener-b', env));
    await publishAll(
      nc,
      delivered.map((e) => ({
        id: e.id,
        subject: e.type,
        body: JSON.stringify(e),
        time: Date.parse(e.time),
      })),
    );
    await waitFor('every event handled', () => consumerSettled(nc), 240_000, 250);

    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(DLQ_STREAM)).state.messages).toBe(0);
    const applied = await db.query<{ n: number }>(
      'SELECT count(DISTINCT event_id)::int AS n FROM identity_applied_events',
    );
    expect(applied.rows[0].n).toBeGreaterThan(history.length * 0.9);
    const actual = await databaseState(
      async <T>(sql: string) => (await db.query(sql)).rows as T[],
      usersBefore,
    );
    expect(differences(flatten(model(history)), actual)).toEqual([]);
    console.log(`convergence through NATS: ${history.length} events, ${delivered.length} published`);
  });
});
