import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from 'pg';
import {
  freePort,
  portAnswers,
  startNatsServer,
  waitFor,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import {
  NodeProcess,
  START_SCRIPT,
  appEnv,
  appMain,
  freshDataDir,
  httpGet,
  isAlive,
  listeningAddresses,
  sleep,
} from './helpers/processes';

jest.setTimeout(240_000);

/**
 * `npm start` without DATABASE_URL, as a user runs it (the compiled launcher): the embedded
 * PostgreSQL cluster of DATA_DIR is created, started, adopted after a SIGKILL of its launcher,
 * and stopped by Ctrl-C, with no process left behind.
 */
describe('npm start with the embedded PostgreSQL (no DATABASE_URL)', () => {
  let nats: TestNatsServer;
  const dataDir = freshDataDir('aigov-embedded-start-');
  const clusterDir = path.join(dataDir, 'postgres');
  const procs: NodeProcess[] = [];
  let ports: { api: number; worker: number; listener: number };
  let launcher: NodeProcess;
  let postmasterPid: number;

  function launch(label: string, portsOf = ports): NodeProcess {
    const p = new NodeProcess(
      label,
      START_SCRIPT,
      appEnv({
        NATS_URL: nats.url,
        DATA_DIR: dataDir,
        PORT: String(portsOf.api),
        PRICING_WORKER_PORT: String(portsOf.worker),
        MEMBERSHIP_LISTENER_PORT: String(portsOf.listener),
      }),
    );
    procs.push(p);
    return p;
  }

  async function otherPorts(): Promise<typeof ports> {
    return { api: await freePort(), worker: await freePort(), listener: await freePort() };
  }

  /** Waits for the launcher's "aigov is up" line; fails at once when it exits instead. */
  async function waitUp(p: NodeProcess, timeoutMs = 150_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!p.stdout().includes('aigov is up')) {
      if (p.exited() !== null) throw new Error(`${p.label} exited before up; output:\n${p.tail()}`);
      if (Date.now() > deadline) throw new Error(`${p.label} not up within ${timeoutMs} ms:\n${p.tail()}`);
      await sleep(100);
    }
  }

  function postmaster(): { pid: number; port: number } | null {
    try {
      const lines = fs.readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n');
      return { pid: Number(lines[0]), port: Number(lines[3]) };
    } catch {
      return null;
    }
  }

  async function withDatabase<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const pm = postmaster();
    if (!pm) throw new Error('no postmaster.pid');
    const password = fs.readFileSync(path.join(dataDir, 'postgres.password'), 'utf8').trim();
    const client = testClient({
      host: '127.0.0.1',
      port: pm.port,
      user: 'postgres',
      password,
      database: 'aigov',
      connectionTimeoutMillis: 10_000,
    });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  async function anyPortAnswers(): Promise<boolean> {
    const answers = await Promise.all([ports.api, ports.worker, ports.listener].map((p) => portAnswers(p)));
    return answers.some(Boolean);
  }

  beforeAll(async () => {
    nats = await startNatsServer();
    ports = await otherPorts();
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    // PostgreSQL runs in a session of its own: a failed test must not leave it running.
    const pm = postmaster();
    if (pm && isAlive(pm.pid)) process.kill(pm.pid, 'SIGQUIT');
    await nats?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates and starts the cluster, then says "aigov is up" once every app answers /readyz 200', async () => {
    launcher = launch('npm start #1');
    await waitUp(launcher);
    const statuses = await Promise.all(
      [ports.worker, ports.api, ports.listener].map(async (p) => (await httpGet(p, '/readyz')).status),
    );
    expect(statuses).toEqual([200, 200, 200]);

    const pm = postmaster();
    expect(pm).not.toBeNull();
    postmasterPid = (pm as { pid: number }).pid;
    expect(isAlive(postmasterPid)).toBe(true);
    // Only on loopback, and the generated password is its owner's alone.
    expect(listeningAddresses(postmasterPid)).toEqual([`127.0.0.1:${pm?.port}`]);
    expect(fs.statSync(path.join(dataDir, 'postgres.password')).mode & 0o777).toBe(0o600);

    const seeded = await withDatabase(async (c) => {
      await c.query(`CREATE TABLE e2e_marker (v text); INSERT INTO e2e_marker VALUES ('written by run 1')`);
      const r = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM ai_model_prices');
      return r.rows[0].n;
    });
    expect(seeded).toBeGreaterThan(0);
  });

  it('a second npm start fails at once, naming the port and the pid of the running one', async () => {
    const second = launch('npm start #2 (same ports)');
    const exit = await second.waitForExit(30_000);
    expect(exit.code).toBe(1);
    const m =
      /port (\d+) \(pricing-worker\) is already in use by pid (\d+) started by `npm start` pid (\d+)/.exec(
        second.stdout(),
      );
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBe(ports.worker);
    expect(Number(m?.[3])).toBe(launcher.pid);
    expect(isAlive(Number(m?.[2]))).toBe(true);
    // It touched nothing: the first one runs on, on the same server.
    expect(postmaster()?.pid).toBe(postmasterPid);
    expect((await httpGet(ports.api, '/readyz')).status).toBe(200);
  });

  it('another npm start on the same DATA_DIR but other ports is refused: the running launcher owns the cluster', async () => {
    const third = launch('npm start #3 (other ports)', await otherPorts());
    const exit = await third.waitForExit(60_000);
    expect(exit.code).toBe(1);
    expect(third.stdout()).toContain(`is already used by aigov-start pid ${launcher.pid}`);
    expect(third.stdout()).not.toContain('aigov is up');
    expect(postmaster()?.pid).toBe(postmasterPid);
    expect(isAlive(postmasterPid)).toBe(true);
    expect((await httpGet(ports.api, '/readyz')).status).toBe(200);
  });

  it('SIGKILL of the launcher: its apps exit, PostgreSQL runs on, and the next start adopts it with the data', async () => {
    process.kill(launcher.pid, 'SIGKILL');
    await launcher.waitForExit(30_000);
    await waitFor(
      'the killed launcher’s apps have released their ports',
      async () => !(await anyPortAnswers()),
      30_000,
    );
    expect(isAlive(postmasterPid)).toBe(true);

    launcher = launch('npm start #4 (after SIGKILL)');
    await waitUp(launcher);
    expect(launcher.stdout()).toContain('adopted the embedded PostgreSQL left running');
    expect(postmaster()?.pid).toBe(postmasterPid);
    const rows = await withDatabase(
      async (c) => (await c.query<{ v: string }>('SELECT v FROM e2e_marker')).rows,
    );
    expect(rows).toEqual([{ v: 'written by run 1' }]);
  });

  it('Ctrl-C (SIGINT to the process group) stops the apps, then PostgreSQL, and leaves no process', async () => {
    process.kill(-launcher.pid, 'SIGINT');
    const exit = await launcher.waitForExit(90_000);
    expect(exit).toEqual({ code: 0, signal: null });
    let groupAlive = true;
    try {
      process.kill(-launcher.pid, 0);
    } catch {
      groupAlive = false;
    }
    expect(groupAlive).toBe(false);
    expect(isAlive(postmasterPid)).toBe(false);
    expect(postmaster()).toBeNull();
    expect(await anyPortAnswers()).toBe(false);
  });

  it('an app started on its own without DATABASE_URL is refused clearly while no cluster runs', async () => {
    const alone = new NodeProcess(
      'budget-api alone',
      appMain('budget-api'),
      appEnv({ NATS_URL: nats.url, DATA_DIR: dataDir, PORT: String(await freePort()) }),
    );
    procs.push(alone);
    const exit = await alone.waitForExit(30_000);
    expect(exit.code).toBe(1);
    expect(alone.output()).toContain('no embedded PostgreSQL is running');
    expect(alone.output()).toContain('npm start');
  });

  it('the next start starts the stopped cluster again with the data, and a lone app connects to it', async () => {
    launcher = launch('npm start #5 (restart)');
    await waitUp(launcher);
    expect(launcher.stdout()).not.toContain('adopted');
    const pm = postmaster();
    expect(pm?.pid).not.toBe(postmasterPid);
    const rows = await withDatabase(
      async (c) => (await c.query<{ v: string }>('SELECT v FROM e2e_marker')).rows,
    );
    expect(rows).toEqual([{ v: 'written by run 1' }]);

    const port = await freePort();
    const alone = new NodeProcess(
      'budget-api alone',
      appMain('budget-api'),
      appEnv({ NATS_URL: nats.url, DATA_DIR: dataDir, PORT: String(port) }),
    );
    procs.push(alone);
    await alone.waitReady(port, 90_000);
    alone.terminate();
    expect((await alone.waitForExit(30_000)).code).toBe(0);

    process.kill(-launcher.pid, 'SIGINT');
    expect(await launcher.waitForExit(90_000)).toEqual({ code: 0, signal: null });
    expect(postmaster()).toBeNull();
  });
});
