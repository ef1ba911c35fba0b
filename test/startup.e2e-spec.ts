import * as fs from 'node:fs';
import {
  createTestDatabase,
  freePort,
  portAnswers,
  startNatsServer,
  type TestDatabase,
  type TestNatsServer,
} from '@aigov/testing';
import { NodeProcess, appEnv, appMain, freshDataDir, httpGet, jsonLines } from './helpers/processes';

// Bounds here are deadlines for a loaded 2-core machine, where starting a compiled app (loading
// its modules) alone has taken 8-9 s: a hang or a retry loop still fails them, a slow start not.
jest.setTimeout(150_000);

/** Enough for a slow process start; an app that hangs or retries its dependencies exceeds it. */
const QUICK_EXIT_MS = 30_000;

describe('app startup and shutdown (compiled apps as child processes)', () => {
  let db: TestDatabase;
  let nats: TestNatsServer;
  let dataDir: string;
  const procs: NodeProcess[] = [];

  function run(label: string, app: Parameters<typeof appMain>[0], env: Record<string, string | undefined>) {
    const p = new NodeProcess(label, appMain(app), appEnv({ DATA_DIR: dataDir, ...env }));
    procs.push(p);
    return p;
  }

  beforeAll(async () => {
    dataDir = freshDataDir();
    [db, nats] = await Promise.all([createTestDatabase({ migrated: true }), startNatsServer()]);
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await nats?.stop();
    await db?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('bad configuration: exits 1 at once, one JSON line naming every bad variable', async () => {
    const p = run('budget-api (bad config)', 'budget-api', {
      PORT: 'abc',
      BUDGET_PERIOD: 'year',
      DATABASE_URL: 'mysql://x',
    });
    const exit = await p.waitForExit(QUICK_EXIT_MS);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - p.started).toBeLessThan(QUICK_EXIT_MS);
    // "At once" is shown by what it did, not by the clock: the fatal line is the only line, so
    // nothing ran before the configuration was checked. An app that tried the database first
    // would have written its connect error too (see the next test), after up to the 5 s connect
    // timeout per attempt.
    const lines = jsonLines(p.stdout());
    expect(lines.map((l) => l.level)).toEqual(['fatal']);
    const fatal = lines.find((l) => l.level === 'fatal');
    expect(fatal).toBeDefined();
    expect(String(fatal?.msg)).not.toMatch(/cannot connect/i);
    const msg = String(fatal?.msg);
    for (const variable of ['PORT', 'BUDGET_PERIOD', 'DATABASE_URL']) expect(msg).toContain(variable);
  });

  it('unreachable database: exits 1 quickly saying it cannot connect to the database', async () => {
    const closed = await freePort();
    const port = await freePort();
    const p = run('budget-api (no database)', 'budget-api', {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/x`,
      NATS_URL: nats.url,
      PORT: String(port),
    });
    const exit = await p.waitForExit(QUICK_EXIT_MS);
    expect(exit).toEqual({ code: 1, signal: null });
    const fatal = jsonLines(p.stdout()).find((l) => l.level === 'fatal');
    expect(String(fatal?.msg)).toMatch(/cannot connect/i);
    expect(String(fatal?.msg)).toMatch(/DATABASE_URL|database/i);
    expect(String(fatal?.msg)).toContain(String(closed));
    expect(await portAnswers(port)).toBe(false);
  });

  it('unreachable NATS: exits 1 quickly with a message about NATS', async () => {
    const closed = await freePort();
    const port = await freePort();
    const p = run('budget-api (no nats)', 'budget-api', {
      DATABASE_URL: db.url,
      NATS_URL: `nats://127.0.0.1:${closed}`,
      PORT: String(port),
    });
    const exit = await p.waitForExit(QUICK_EXIT_MS);
    expect(exit).toEqual({ code: 1, signal: null });
    const fatal = jsonLines(p.stdout()).find((l) => l.level === 'fatal');
    expect(String(fatal?.msg)).toMatch(/NATS/);
    expect(String(fatal?.msg)).toContain(String(closed));
    expect(await portAnswers(port)).toBe(false);
  });

  it('pricing worker: not ready, then ready with its checks; health and metrics; SIGTERM exits 0', async () => {
    const port = await freePort();
    const p = run('pricing-worker', 'pricing-worker', {
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      PRICING_WORKER_PORT: String(port),
    });
    const observations: string[] = [];
    const ready = await p.waitReady(port, 60_000, observations);

    // Before the first 200: only 503s or nothing listening.
    const before = observations.slice(0, -1);
    for (const o of before) expect(['503', 'ECONNREFUSED', 'ECONNRESET']).toContain(o);
    expect(ready.status).toBe('ready');
    expect(ready.checks).toEqual(
      expect.objectContaining({
        database: { ok: true },
        nats: { ok: true },
        price_seed: { ok: true },
      }),
    );

    const health = await httpGet(port, '/healthz');
    expect(health.status).toBe(200);
    const metrics = await httpGet(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('aigov_price_sync_total');
    expect(metrics.body).toMatch(/aigov_price_sync_total\{[^}]*source="embedded"[^}]*outcome="ok"[^}]*\} 1/);

    p.terminate();
    const exit = await p.waitForExit(QUICK_EXIT_MS);
    expect(await portAnswers(port)).toBe(false);

    // Every line the started app wrote on stdout is one JSON object.
    const lines = jsonLines(p.stdout());
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) {
      expect(typeof l.level).toBe('string');
      expect(l.app).toBe('pricing-worker');
    }
    // A graceful stop on SIGTERM is a clean exit, not death by the signal.
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
