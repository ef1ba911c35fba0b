import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { INestApplication } from '@nestjs/common';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import { DLQ_STREAM, IDENTITY_CONSUMER, IDENTITY_STREAM } from '@aigov/contracts';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import {
  createTestDatabase,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import { MembershipListenerModule } from './membership-listener.module';
import { main as publishEvent } from '../../../scripts/events-publish';

const ROOT = path.resolve(__dirname, '..', '..', '..');

async function startListener(
  env: Record<string, string>,
  logs: string[],
): Promise<{ app: INestApplication; port: number }> {
  const config = loadConfig({ DATABASE_POOL_SIZE: '2', IDENTITY_BATCH_SIZE: '10', ...env });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger('membership-listener', 'info', sink);
  const metrics = new Metrics('membership-listener');
  const readiness = new Readiness();
  const app = await startApp({
    name: 'membership-listener',
    module: {
      module: class TestRootModule {},
      imports: [MembershipListenerModule.forRoot({ config, logger, metrics, readiness })],
    },
    port: 0,
    logger,
    metrics,
    nats: null,
    readiness,
  });
  return { app, port: ((app.getHttpServer() as Server).address() as AddressInfo).port };
}

async function waitReady(port: number): Promise<void> {
  await waitFor(
    'ready',
    async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
    20_000,
    100,
  );
}

describe('membership-listener app (real PostgreSQL, real nats-server)', () => {
  let db: TestDatabase;
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let app: INestApplication | null = null;
  let port: number;
  const logs: string[] = [];

  beforeAll(async () => {
    [db, nats] = await Promise.all([createTestDatabase(), startNatsServer()]);
    nc = await connect({ servers: nats.url });
    ({ app, port } = await startListener({ DATABASE_URL: db.url, NATS_URL: nats.url }, logs));
  });

  afterAll(async () => {
    await app?.close();
    await nc?.close();
    await Promise.all([db?.drop(), nats?.stop()]);
  });

  it('sets up JetStream, reports ready with the consumer, serves identity metrics, dead-letters bad input', async () => {
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER)).config.max_deliver).toBe(10);
    await waitReady(port);
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as {
      checks: Record<string, unknown>;
    };
    expect(Object.keys(ready.checks)).toEqual(expect.arrayContaining(['nats', 'identity-consumer']));

    await jetstream(nc).publish('identity.user.deleted', '{"specversion":"1.0"}' /* no type */);
    await waitFor(
      'the dead letter',
      async () => (await jsm.streams.info(DLQ_STREAM)).state.messages === 1,
      20_000,
      100,
    );
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const counted = /aigov_identity_events_dead_lettered_total\{reason="unknown_type"[^}]*\} 1/;
    await waitFor('the dead letter counted', async () => counted.test(await scrape()), 20_000, 100);
    const metrics = await scrape();
    expect(metrics).toContain('aigov_identity_consumer_pending');
  });

  it('stops cleanly on close, logging that the consumer stopped', async () => {
    await app!.close();
    app = null;
    expect(logs.some((l) => l.includes('"msg":"identity consumer stopped"'))).toBe(true);
  });
});

describe('membership-listener under the documented NATS permissions (docs/nats-security.md)', () => {
  const secret = (): string => `pw${randomBytes(16).toString('hex')}`;
  const passwords: Record<string, string> = {
    BUDGET_API_PASSWORD: secret(),
    PRICING_WORKER_PASSWORD: secret(),
    MEMBERSHIP_LISTENER_PASSWORD: secret(),
    IDENTITY_PUBLISHER_PASSWORD: secret(),
    AI_GATEWAY_PASSWORD: secret(),
    PRICE_OPERATOR_PASSWORD: secret(),
  };
  let db: TestDatabase;
  let nats: TestNatsServer;
  let listener: NatsConnection;
  let app: INestApplication | null = null;
  let port: number;
  const logs: string[] = [];
  const url = (user: string, password: string): string => `nats://${user}:${password}@127.0.0.1:${nats.port}`;

  beforeAll(async () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'nats-security.md'), 'utf8');
    const serverConfig = /```conf\n(authorization \{[\s\S]*?)```/.exec(doc)?.[1] ?? '';
    expect(serverConfig).toContain('MEMBERSHIP_LISTENER');
    [db, nats] = await Promise.all([
      createTestDatabase(),
      startNatsServer({ config: serverConfig, env: passwords }),
    ]);
    const listenerUrl = url('membership-listener', passwords.MEMBERSHIP_LISTENER_PASSWORD);
    listener = await connect({
      servers: `127.0.0.1:${nats.port}`,
      user: 'membership-listener',
      pass: passwords.MEMBERSHIP_LISTENER_PASSWORD,
    });
    ({ app, port } = await startListener({ DATABASE_URL: db.url, NATS_URL: listenerUrl }, logs));
  });

  afterAll(async () => {
    await app?.close();
    await listener?.close();
    await Promise.all([db?.drop(), nats?.stop()]);
  });

  it('sets up, consumes what the identity user publishes, and dead-letters with its own grants only', async () => {
    await waitReady(port);
    const identityEnv = { NATS_URL: url('identity', passwords.IDENTITY_PUBLISHER_PASSWORD) };
    const quiet = { out: () => undefined, err: () => undefined };
    const userId = randomUUID();
    const user = `{"user_id":"${userId}","username":"perm-user","email":"perm@example.com"}`;
    expect(await publishEvent(['identity.user.upserted', user], identityEnv, quiet)).toBe(0);
    expect(
      await publishEvent(['identity.user.deleted', '{"user_id":"not-a-uuid"}'], identityEnv, quiet),
    ).toBe(0);
    const jsm = await jetstreamManager(listener);
    await waitFor(
      'both events handled',
      async () => {
        const info = await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER);
        return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq === 2;
      },
      20_000,
      100,
    );
    expect((await jsm.streams.info(DLQ_STREAM)).state.messages).toBe(1);
    // The valid one is in the database, audited as the listener.
    const pg = testClient({ connectionString: db.url });
    await pg.connect();
    try {
      const users = await pg.query('SELECT username FROM users WHERE id = $1', [userId]);
      expect(users.rows).toEqual([{ username: 'perm-user' }]);
      const audit = await pg.query(
        `SELECT actor, action FROM audit_logs WHERE resource_type = 'user' AND resource_id = $1`,
        [userId],
      );
      expect(audit.rows).toEqual([{ actor: 'system:membership-listener', action: 'create' }]);
    } finally {
      await pg.end();
    }
    expect(logs.filter((l) => /permission/i.test(l))).toEqual([]);
    await waitReady(port);
  });
});
