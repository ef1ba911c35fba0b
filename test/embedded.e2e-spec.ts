import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { startNatsServer, type TestNatsServer } from '@aigov/testing';
import {
  LOCK_FILE,
  NodeProcess,
  START_SCRIPT,
  appEnv,
  appMain,
  embeddedUrl,
  freePort,
  freshDataDir,
  httpGet,
  isAlive,
  jsonLines,
  portAnswers,
  readLock,
  sleep,
  type EmbeddedLock,
  type ReadyzBody,
} from './helpers/processes';

jest.setTimeout(90_000);

const SEED_ROWS = (
  JSON.parse(
    fs.readFileSync(path.join(__dirname, '..', 'apps', 'pricing-worker', 'seed', 'prices.json'), 'utf8'),
  ) as unknown[]
).length;

interface PriceCounts {
  defaults: number;
  custom: number;
  migrations: { name: string; n: number }[];
}

async function counts(client: Client): Promise<PriceCounts> {
  const prices = await client.query<{ defaults: number; custom: number }>(
    `SELECT count(*) FILTER (WHERE source = 'default')::int AS defaults,
            count(*) FILTER (WHERE source = 'custom')::int  AS custom
       FROM ai_model_prices`,
  );
  const migrations = await client.query<{ name: string; n: number }>(
    'SELECT name, count(*)::int AS n FROM typeorm_migrations GROUP BY name ORDER BY name',
  );
  return { ...prices.rows[0], migrations: migrations.rows };
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A host going away must not crash the test run with an unhandled 'error' event.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The lock of a running host: names a live host process and a port that answers. */
function liveLock(dataDir: string): EmbeddedLock & { port: number; hostPid: number } {
  const lock = readLock(dataDir);
  if (!lock || lock.port === null || lock.hostPid === null) {
    throw new Error(`no complete embedded-database lock in ${dataDir}: ${JSON.stringify(lock)}`);
  }
  return { ...lock, port: lock.port, hostPid: lock.hostPid };
}

/** Polls GET `urlPath` until `accept` holds for an answer; rejects after `timeoutMs`. */
async function waitForAnswer(
  port: number,
  urlPath: string,
  accept: (status: number, body: string) => boolean,
  timeoutMs: number,
  proc?: NodeProcess,
): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing yet';
  while (Date.now() < deadline) {
    if (proc && proc.exited() !== null) {
      throw new Error(`${proc.label} exited (${JSON.stringify(proc.exited())}); output:\n${proc.tail()}`);
    }
    try {
      const res = await httpGet(port, urlPath);
      if (accept(res.status, res.body)) return res;
      last = `${res.status} ${res.body}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(
    `GET :${port}${urlPath} not as expected within ${timeoutMs} ms (last: ${last})` +
      (proc ? `; output of ${proc.label}:\n${proc.tail()}` : ''),
  );
}

/** True when no process is left in the group led by `pid` (detached children lead their own). */
function groupGone(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(100);
  }
}

describe('embedded PGlite default (no DATABASE_URL)', () => {
  let nats: TestNatsServer;
  const dataDirs: string[] = [];
  const procs: NodeProcess[] = [];
  const clients: Client[] = [];

  function newDataDir(): string {
    const dir = freshDataDir('aigov-embedded-');
    dataDirs.push(dir);
    return dir;
  }

  function spawnProc(label: string, script: string, env: Record<string, string | undefined>): NodeProcess {
    // appEnv removes DATABASE_URL (and every other inherited app setting) from the child's env.
    const p = new NodeProcess(label, script, appEnv({ NATS_URL: nats.url, ...env }));
    procs.push(p);
    return p;
  }

  async function closeClients(): Promise<void> {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  }

  beforeAll(async () => {
    nats = await startNatsServer();
  });

  afterAll(async () => {
    await closeClients();
    await Promise.all(procs.map((p) => p.kill()));
    // A pglite-server left behind by a crashed owner would keep the data directory open.
    for (const dir of dataDirs) {
      const lock = readLock(dir);
      if (lock?.hostPid && isAlive(lock.hostPid)) process.kill(lock.hostPid, 'SIGKILL');
    }
    await nats?.stop();
    for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('one host per DATA_DIR, shared by the apps, data kept across restarts', () => {
    let dataDir: string;
    let workerPort: number;
    let worker: NodeProcess;
    let listener: NodeProcess;
    let hostLock: EmbeddedLock & { port: number; hostPid: number };
    let client: Client;

    beforeAll(() => {
      dataDir = newDataDir();
    });

    it('the pricing worker hosts PGlite, migrates, seeds and becomes ready', async () => {
      workerPort = await freePort();
      worker = spawnProc('pricing-worker (host)', appMain('pricing-worker'), {
        DATA_DIR: dataDir,
        PRICING_WORKER_PORT: String(workerPort),
      });
      const ready = await worker.waitReady(workerPort, 60_000);
      expect(ready.checks).toEqual(
        expect.objectContaining({ database: { ok: true }, nats: { ok: true }, price_seed: { ok: true } }),
      );

      hostLock = liveLock(dataDir);
      expect(hostLock.ownerPid).toBe(worker.pid);
      expect(hostLock.hostPid).not.toBe(worker.pid);
      expect(isAlive(hostLock.hostPid)).toBe(true);
      expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);

      client = await connect(embeddedUrl(hostLock.port));
      clients.push(client);
      const c = await counts(client);
      expect(SEED_ROWS).toBe(71);
      expect(c.defaults).toBe(SEED_ROWS);
      expect(c.custom).toBe(0);
      expect(c.migrations.length).toBeGreaterThan(0);
      for (const m of c.migrations) expect(m.n).toBe(1);

      await client.query(
        `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
         VALUES ('acme', 'acme-custom-1', 'custom', 1234567, 7654321)`,
      );
      expect((await counts(client)).custom).toBe(1);
    });

    it('a second app on the same DATA_DIR connects to that host instead of opening the directory', async () => {
      const before = await counts(client);
      const listenerPort = await freePort();
      listener = spawnProc('membership-listener (guest)', appMain('membership-listener'), {
        DATA_DIR: dataDir,
        MEMBERSHIP_LISTENER_PORT: String(listenerPort),
      });
      const ready = await listener.waitReady(listenerPort, 60_000);
      expect(ready.checks).toEqual(expect.objectContaining({ database: { ok: true } }));

      const out = listener.stdout();
      expect(out).toContain(
        `using the embedded database hosted by pid ${hostLock.hostPid} on port ${hostLock.port}`,
      );
      expect(out).not.toContain('starting the embedded PostgreSQL');
      // Same host, same lock: the owner is still the worker.
      expect(readLock(dataDir)).toEqual(hostLock);

      const after = await counts(client);
      expect(after).toEqual(before);
      expect(after.custom).toBe(1);
      expect(after.defaults).toBe(SEED_ROWS);

      // The worker is unaffected and still ready.
      expect((await httpGet(workerPort, '/readyz')).status).toBe(200);
      for (const p of [worker, listener]) expect(() => jsonLines(p.stdout())).not.toThrow();
    });

    it('SIGTERM stops both; the host and its lock file are gone once the owner exited', async () => {
      await closeClients();
      listener.terminate();
      worker.terminate();
      const [listenerExit, workerExit] = await Promise.all([
        listener.waitForExit(15_000),
        worker.waitForExit(15_000),
      ]);
      await waitUntil('the pglite host exited', () => !isAlive(hostLock.hostPid), 5_000);
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
      expect(await portAnswers(hostLock.port)).toBe(false);
      expect(groupGone(worker.pid)).toBe(true);
      for (const p of [worker, listener]) expect(() => jsonLines(p.stdout())).not.toThrow();
      // A graceful stop on SIGTERM is a clean exit, not death by the signal.
      expect(workerExit).toEqual({ code: 0, signal: null });
      expect(listenerExit).toEqual({ code: 0, signal: null });
    });

    it('a restart on the same DATA_DIR is ready again with the data intact and no duplicate migrations', async () => {
      expect(worker.exited()).not.toBeNull();
      const port = await freePort();
      const again = spawnProc('pricing-worker (restart)', appMain('pricing-worker'), {
        DATA_DIR: dataDir,
        PRICING_WORKER_PORT: String(port),
      });
      await again.waitReady(port, 60_000);
      const lock = liveLock(dataDir);
      expect(lock.ownerPid).toBe(again.pid);

      const c2 = await connect(embeddedUrl(lock.port));
      clients.push(c2);
      const c = await counts(c2);
      expect(c.defaults).toBe(SEED_ROWS);
      expect(c.custom).toBe(1);
      for (const m of c.migrations) expect(m.n).toBe(1);
      const custom = await c2.query<{ input_price: string; output_price: string }>(
        `SELECT input_price, output_price FROM ai_model_prices
          WHERE provider = 'acme' AND model = 'acme-custom-1' AND source = 'custom'`,
      );
      expect(custom.rows).toEqual([{ input_price: '1234567', output_price: '7654321' }]);

      const lines = jsonLines(again.stdout());
      expect(lines.some((l) => String(l.msg).startsWith('applied migrations'))).toBe(false);
      const seeded = lines.find((l) => l.msg === 'embedded price seed applied');
      expect(seeded).toEqual(expect.objectContaining({ total: SEED_ROWS, inserted: 0, updated: 0 }));

      await closeClients();
      again.terminate();
      const exit = await again.waitForExit(15_000);
      await waitUntil('the pglite host exited', () => !isAlive(lock.hostPid), 5_000);
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
      expect(exit).toEqual({ code: 0, signal: null });
    });
  });

  describe('npm start (dist/scripts/start.js)', () => {
    let dataDir: string;

    beforeAll(() => {
      dataDir = newDataDir();
    });

    async function ports(): Promise<{ api: number; worker: number; listener: number }> {
      return { api: await freePort(), worker: await freePort(), listener: await freePort() };
    }

    function launch(
      label: string,
      p: { api: number; worker: number; listener: number },
      extra: Record<string, string> = {},
    ): NodeProcess {
      return spawnProc(label, START_SCRIPT, {
        DATA_DIR: dataDir,
        PORT: String(p.api),
        PRICING_WORKER_PORT: String(p.worker),
        MEMBERSHIP_LISTENER_PORT: String(p.listener),
        ...extra,
      });
    }

    async function stopLauncher(launcher: NodeProcess, p: { api: number; worker: number; listener: number }) {
      launcher.terminate();
      const exit = await launcher.waitForExit(30_000);
      expect(exit).toEqual({ code: 0, signal: null });
      for (const port of [p.api, p.worker, p.listener]) expect(await portAnswers(port)).toBe(false);
      await waitUntil('every child of the launcher exited', () => groupGone(launcher.pid), 5_000);
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
      // The launcher's stdout carries its own and its apps' logs: all JSON.
      expect(() => jsonLines(launcher.stdout())).not.toThrow();
    }

    it('starts the embedded database and all three apps; SIGTERM stops everything and exits 0', async () => {
      const p = await ports();
      const launcher = launch('npm start', p);
      const ready = await Promise.all(
        [p.worker, p.api, p.listener].map((port) => launcher.waitReady(port, 60_000)),
      );
      for (const r of ready) expect(r.status).toBe('ready');
      await waitForAnswer(p.api, '/healthz', (s) => s === 200, 5_000, launcher);

      // The API works on PGlite: bootstrap, then many concurrent authenticated requests, which
      // spread over several pool connections (PGlite serves them all from one session, where
      // prepared statements of the same name would collide).
      const api = `http://127.0.0.1:${p.api}/api/v2`;
      const first = await fetch(`${api}/users/first`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', email: 'alice@example.com' }),
      });
      expect(first.status).toBe(201);
      const { token } = (await first.json()) as { token: string };
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const statuses = await Promise.all(
        Array.from({ length: 20 }, () => fetch(`${api}/users/me`, { headers: auth }).then((r) => r.status)),
      );
      expect(statuses).toEqual(Array.from({ length: 20 }, () => 200));
      const group = await fetch(`${api}/organizations/default/groups`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ name: 'engineering' }),
      });
      expect(group.status).toBe(201);
      const { id } = (await group.json()) as { id: string };
      const budget = await fetch(`${api}/groups/${id}/ai/budget`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ spend_limit_micros: 500_000_000 }),
      });
      expect(await budget.json()).toMatchObject({ group_id: id, spend_limit_micros: 500_000_000 });
      const reads = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`${api}/groups/${id}/ai/budget`, { headers: auth }).then((r) => r.status),
        ),
      );
      expect(reads).toEqual(Array.from({ length: 20 }, () => 200));

      const lock = liveLock(dataDir);
      expect(lock.ownerPid).toBe(launcher.pid);
      await stopLauncher(launcher, p);
      expect(isAlive(lock.hostPid)).toBe(false);
    });

    it('with NATS_ENABLED=false the apps start without NATS and are ready (NATS is no dependency then)', async () => {
      const p = await ports();
      const launcher = launch('npm start (no NATS)', p, { NATS_ENABLED: 'false' });
      for (const port of [p.worker, p.api, p.listener]) {
        await waitForAnswer(port, '/healthz', (s) => s === 200, 60_000, launcher);
      }
      // budget-api: database and price book fine; NATS switched off is not a missing dependency.
      const res = await waitForAnswer(
        p.api,
        '/readyz',
        (_s, body) => {
          const r = JSON.parse(body) as ReadyzBody;
          return r.checks.database?.ok === true && r.checks.price_book?.ok === true;
        },
        60_000,
        launcher,
      );
      const body = JSON.parse(res.body) as ReadyzBody;
      expect(res.status).toBe(200);
      expect(body.checks.nats?.ok).toBe(true);
      for (const port of [p.worker, p.listener]) {
        await waitForAnswer(port, '/readyz', (st) => st === 200, 30_000, launcher);
      }
      await waitUntil(
        'the launcher reports aigov up without NATS',
        () =>
          jsonLines(launcher.stdout()).some(
            (l) => String(l.msg).startsWith('aigov is up') && l.nats === 'off',
          ),
        5_000,
      );
      const lines = jsonLines(launcher.stdout());
      expect(lines.some((l) => String(l.msg).includes('NATS_ENABLED=false'))).toBe(true);

      await stopLauncher(launcher, p);
    });
  });
});
