import type { INestApplication } from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import {
  startNatsServer,
  startPrivatePostgres,
  type PrivatePostgres,
  type TestNatsServer,
  waitFor,
} from '@aigov/testing';
import { ApiHarness, World, type Person } from './helpers/api';
import { PricingWorkerModule } from '../apps/pricing-worker/src/pricing-worker.module';

describe('pricing.sync while the price book database is down (private PostgreSQL and nats-server)', () => {
  let pg: PrivatePostgres;
  let nats: TestNatsServer;
  let worker: INestApplication;
  let api: ApiHarness;
  let owner: Person;
  let nc: NatsConnection;

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPrivatePostgres(), startNatsServer()]);
    const config = loadConfig({ DATABASE_URL: pg.url, NATS_URL: nats.url, DATABASE_POOL_SIZE: '2' });
    const logger = createLogger('pricing-worker', 'silent');
    const metrics = new Metrics('pricing-worker');
    worker = await startApp({
      name: 'pricing-worker',
      module: PricingWorkerModule.forRoot({ config, logger, metrics, readiness: new Readiness() }),
      port: 0,
      logger,
      metrics,
      nats: { connection: config.nats, queue: 'pricing-worker' },
    });
    // The API has a database of its own (the machine's): only the worker's goes away.
    api = await ApiHarness.start({ NATS_ENABLED: 'true', NATS_URL: nats.url });
    owner = (await new World(api).bootstrap()).owner;
    nc = await connect({ servers: nats.url });
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await api?.close();
    await worker?.close();
    await nats?.stop();
    pg?.destroy();
  });

  const sync = async (): Promise<unknown> =>
    JSON.parse(
      (
        await nc.request('pricing.sync', JSON.stringify({ source: 'embedded' }), { timeout: 30_000 })
      ).string(),
    ) as unknown;

  it('answers unavailable (not internal) while the database is down, the API a 503, and recovers', async () => {
    expect(await sync()).toMatchObject({ ok: true });

    pg.stop();
    expect(await sync()).toEqual({
      ok: false,
      error: { code: 'unavailable', message: expect.stringMatching(/database is unavailable/) as unknown },
    });
    const res = await api.request('POST', '/api/v2/ai/model-prices/sync', {
      token: owner.token,
      body: { source: 'embedded' },
    });
    expect(res.status).toBe(503);
    expect(res.body.message).toMatch(/^Price sync is unavailable: .*database is unavailable/);

    pg.start();
    // The pool opens new connections once the server is back; allow it time (a deadline for a
    // loaded machine, not a measurement).
    let reply: unknown;
    await waitFor(
      'a successful sync after the database is back',
      async () => {
        reply = await sync();
        return (reply as { ok?: boolean }).ok === true;
      },
      60_000,
      250,
    ).catch(() => undefined);
    expect(reply).toMatchObject({ ok: true, data: { source: 'embedded' } });
  }, 120_000);
});
