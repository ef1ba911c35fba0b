import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Global, Module, type INestApplication } from '@nestjs/common';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import { DLQ_STREAM, IDENTITY_CONSUMER, IDENTITY_STREAM, type IdentityEvent } from '@aigov/contracts';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import {
  createTestDatabase,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aigov/testing';
import { IDENTITY_EVENT_APPLIER, type ApplyOutcome, type IdentityEventApplier } from './apply/applier';
import { MembershipListenerModule } from './membership-listener.module';

/**
 * Placeholder applier for this test only, offered globally: the module's own provider (once it
 * has one) takes precedence, and nothing below depends on which one applies.
 */
class TestPlaceholderApplier implements IdentityEventApplier {
  applyBatch(events: readonly IdentityEvent[]): Promise<ApplyOutcome[]> {
    return Promise.resolve(events.map(() => ({ kind: 'applied' as const })));
  }
}

@Global()
@Module({
  providers: [{ provide: IDENTITY_EVENT_APPLIER, useClass: TestPlaceholderApplier }],
  exports: [IDENTITY_EVENT_APPLIER],
})
class TestPlaceholderApplierModule {}

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
    const config = loadConfig({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      DATABASE_POOL_SIZE: '2',
      IDENTITY_BATCH_SIZE: '10',
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger('membership-listener', 'info', sink);
    const metrics = new Metrics('membership-listener');
    const readiness = new Readiness();
    app = await startApp({
      name: 'membership-listener',
      module: {
        module: class TestRootModule {},
        imports: [
          MembershipListenerModule.forRoot({ config, logger, metrics, readiness }),
          TestPlaceholderApplierModule,
        ],
      },
      port: 0,
      logger,
      metrics,
      nats: null,
      readiness,
    });
    port = ((app.getHttpServer() as Server).address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
    await nc?.close();
    await Promise.all([db?.drop(), nats?.stop()]);
  });

  it('sets up JetStream, reports ready with the consumer, serves identity metrics, dead-letters bad input', async () => {
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER)).config.max_deliver).toBe(10);
    await waitFor(
      'ready',
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
      20_000,
      100,
    );
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
