import * as fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import {
  createTestDatabase,
  startHttpFixture,
  startNatsServer,
  type FixtureServer,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import type { Client } from 'pg';
import { PricingWorkerModule } from '../pricing-worker.module';

const SMALL = path.join(__dirname, '..', 'generator', '__fixtures__', 'api.small.json');
// test/fixtures/models-dev/api.json: a real models.dev snapshot (see its README).
const FULL = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'models-dev', 'api.json');

interface Worker {
  app: INestApplication;
  metrics: Metrics;
  port: number;
}

/** What the upstream fixture serves next; each test sets it. */
let upstream: { status: number; body: string | Buffer } = { status: 200, body: '' };

describe('pricing worker over NATS (real nats-server, real PostgreSQL)', () => {
  let db: TestDatabase;
  let nats: TestNatsServer;
  let fixture: FixtureServer;
  let nc: NatsConnection;
  let pg: Client;
  const workers: Worker[] = [];

  async function startWorker(): Promise<Worker> {
    const config = loadConfig({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      MODELS_DEV_URL: fixture.url,
      DATABASE_POOL_SIZE: '3',
    });
    const logger = createLogger('pricing-worker', 'silent');
    const metrics = new Metrics('pricing-worker');
    const readiness = new Readiness();
    const app = await startApp({
      name: 'pricing-worker',
      module: PricingWorkerModule.forRoot({ config, logger, metrics, readiness }),
      port: 0,
      logger,
      metrics,
      nats: { connection: config.nats, queue: 'pricing-worker' },
    });
    const server = app.getHttpServer() as Server;
    const port = (server.address() as AddressInfo).port;
    const w = { app, metrics, port };
    workers.push(w);
    return w;
  }

  async function sync(payload: string | Uint8Array, timeout = 10_000): Promise<unknown> {
    const reply = await nc.request('pricing.sync', payload, { timeout });
    return JSON.parse(reply.string()) as unknown;
  }

  async function syncCount(metrics: Metrics): Promise<number> {
    const m = await metrics.registry.getSingleMetric('aigov_price_sync_total')?.get();
    return (m?.values ?? []).filter((v) => v.labels.outcome !== undefined).reduce((n, v) => n + v.value, 0);
  }

  beforeAll(async () => {
    [db, nats, fixture] = await Promise.all([
      createTestDatabase(),
      startNatsServer(),
      startHttpFixture((_req, res) => {
        res.writeHead(upstream.status, { 'content-type': 'application/json' });
        res.end(upstream.body);
      }),
    ]);
    nc = await connect({ servers: nats.url });
    pg = testClient({ connectionString: db.url });
    await pg.connect();
    await startWorker();
  });

  afterAll(async () => {
    for (const w of workers) await w.app.close();
    await nc.close();
    await pg.end();
    await Promise.all([db.drop(), nats.stop(), fixture.close()]);
  });

  it('seeded the price book at start and is ready', async () => {
    const { rows } = await pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ai_model_prices WHERE source = 'default'`,
    );
    expect(rows[0].n).toBe(71);
    const res = await fetch(`http://127.0.0.1:${workers[0].port}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ready',
      checks: { price_seed: { ok: true }, database: { ok: true }, nats: { ok: true } },
    });
  });

  it('embedded: re-applies the committed seed and answers the bare counts', async () => {
    await pg.query(
      `UPDATE ai_model_prices SET input_price = 1 WHERE provider = 'anthropic' AND model = 'claude-opus-4-6'`,
    );
    const reply = await sync(JSON.stringify({ source: 'embedded' }));
    expect(reply).toMatchObject({
      ok: true,
      data: { source: 'embedded', total: 71, inserted: 0, updated: 1, unchanged: 70 },
    });
    expect(typeof (reply as { data: { duration_ms: unknown } }).data.duration_ms).toBe('number');
    const { rows } = await pg.query(
      `SELECT input_price FROM ai_model_prices WHERE model = 'claude-opus-4-6' AND source = 'default'`,
    );
    expect(rows[0]).toEqual({ input_price: '5000000' });
  });

  it('upstream: fetches MODELS_DEV_URL, applies it the same way and publishes pricing.updated', async () => {
    upstream = { status: 200, body: fs.readFileSync(SMALL) };
    const events: unknown[] = [];
    const sub = nc.subscribe('pricing.updated', {
      callback: (_e, m) => {
        events.push(JSON.parse(m.string()));
      },
    });
    const reply = await sync(JSON.stringify({ source: 'upstream' }));
    // api.small.json has 6 priced models per provider: 4 real ones copied unchanged from the
    // catalogue the committed seed came from, plus fixture-free and fixture-cache-read-no-write.
    expect(reply).toMatchObject({
      ok: true,
      data: { source: 'upstream', total: 12, inserted: 4, updated: 0, unchanged: 8 },
    });
    // The event leaves on the worker's own connection, the reply on its handlers' one: no order
    // between them, so wait for the event (a generous bound for a loaded machine).
    for (const deadline = Date.now() + 10_000; events.length === 0 && Date.now() < deadline;)
      await new Promise((r) => setTimeout(r, 25));
    // A CloudEvents 1.0 structured event whose type is the subject.
    expect(events).toEqual([
      {
        specversion: '1.0',
        id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
        source: 'aigov/pricing-worker',
        type: 'pricing.updated',
        time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) as unknown,
        datacontenttype: 'application/json',
        data: { source: 'upstream', inserted: 4, updated: 0 },
      },
    ]);
    const { rows } = await pg.query(
      `SELECT input_price, output_price, cache_read_price, cache_write_price FROM ai_model_prices WHERE provider = 'openai' AND model = 'fixture-free'`,
    );
    expect(rows).toEqual([
      { input_price: '0', output_price: '0', cache_read_price: null, cache_write_price: null },
    ]);

    // Again: nothing changes, so no event.
    const again = await sync(JSON.stringify({ source: 'upstream' }));
    expect(again).toMatchObject({ ok: true, data: { total: 12, inserted: 0, updated: 0, unchanged: 12 } });
    await nc.flush();
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toHaveLength(1);
    sub.unsubscribe();
  });

  it('upstream from the full models.dev catalogue yields exactly the committed seed', async () => {
    await sync(JSON.stringify({ source: 'embedded' }));
    upstream = { status: 200, body: fs.readFileSync(FULL) };
    const reply = await sync(JSON.stringify({ source: 'upstream' }));
    expect(reply).toMatchObject({ ok: true, data: { total: 71, inserted: 0, updated: 0, unchanged: 71 } });
  });

  it.each([
    ['a 500 from upstream', { status: 500, body: 'oops' }, /500/],
    ['invalid JSON upstream', { status: 200, body: '{"anthropic": ' }, /JSON/i],
    [
      'a catalogue without a configured provider',
      { status: 200, body: JSON.stringify({ anthropic: { models: {} } }) },
      /openai/,
    ],
    [
      'a price over USD 10,000 per million',
      {
        status: 200,
        body: JSON.stringify({
          anthropic: { models: { m: { cost: { input: 10001 } } } },
          openai: { models: {} },
        }),
      },
      /10,?000|exceeds|too large/i,
    ],
  ])('upstream failure (%s) is an error envelope and changes nothing', async (_name, response, message) => {
    const before = await pg.query(
      `SELECT md5(string_agg(t::text, ',' ORDER BY provider, model, source)) AS h FROM ai_model_prices t`,
    );
    upstream = response;
    const reply = (await sync(JSON.stringify({ source: 'upstream' }))) as {
      ok: boolean;
      error: { code: string; message: string };
    };
    expect(reply.ok).toBe(false);
    expect(reply.error.code).toBe('upstream_error');
    expect(reply.error.message).toMatch(message);
    const after = await pg.query(
      `SELECT md5(string_agg(t::text, ',' ORDER BY provider, model, source)) AS h FROM ai_model_prices t`,
    );
    expect(after.rows).toEqual(before.rows);
    // The worker is still alive and answering.
    expect(await sync(JSON.stringify({ source: 'embedded' }))).toMatchObject({ ok: true });
  });

  it.each([
    ['not JSON', 'sync please', /JSON/],
    ['empty', '', /empty/],
    ['an array', '["embedded"]', /object/],
    ['an unknown source', '{"source":"ftp"}', /source/],
    ['a missing source', '{}', /source/],
    [
      'an extra field (the URL never comes from a message)',
      '{"source":"upstream","url":"http://evil"}',
      /unknown field "url"/,
    ],
    ['a number', '42', /object/],
  ])('a malformed request (%s) gets an invalid_argument envelope', async (_name, payload, message) => {
    const reply = (await sync(payload)) as { ok: boolean; error: { code: string; message: string } };
    expect(reply).toMatchObject({ ok: false, error: { code: 'invalid_argument' } });
    expect(reply.error.message).toMatch(message);
  });

  it('two workers in the queue group: every request is answered exactly once, and both serve', async () => {
    const second = await startWorker();
    const first = workers[0];
    const before = [await syncCount(first.metrics), await syncCount(second.metrics)];
    const served = async (): Promise<[number, number]> => [
      (await syncCount(first.metrics)) - before[0],
      (await syncCount(second.metrics)) - before[1],
    ];
    // No timing assumption: the queue group picks a member at random for each request, and the
    // second worker's subscription reaches the server a moment after startApp returns. So keep
    // sending small batches until both have served one (or a generous bound is hit), then check
    // that the served counts add up to exactly what was sent: no request lost, none served twice.
    let sent = 0;
    let answered = 0;
    const deadline = Date.now() + 45_000;
    for (;;) {
      const counts = await served();
      if ((counts[0] > 0 && counts[1] > 0) || sent >= 200 || Date.now() > deadline) break;
      const batch = Array.from({ length: 4 }, () => sync(JSON.stringify({ source: 'embedded' }), 30_000));
      sent += batch.length;
      for (const reply of await Promise.all(batch)) {
        expect(reply).toMatchObject({ ok: true, data: { source: 'embedded' } });
        answered++;
      }
    }
    const counts = await served();
    expect(answered).toBe(sent);
    expect(counts[0] + counts[1]).toBe(sent);
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBeGreaterThan(0);
  }, 90_000);
});
