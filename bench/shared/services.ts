import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, freePort, stop, waitFor } from './budget-api';

/** A private nats-server, the compiled migrations and the compiled membership-listener, for benches. */

function natsServerBinary(): string {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  for (const candidate of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error('nats-server not found (apt-get install nats-server, or set NATS_SERVER_BIN)');
}

const portAnswers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/** nats-server with JetStream on a free port and a store directory of its own, removed by `stop`. */
export async function startNatsServer(): Promise<{
  url: string;
  child: ChildProcess;
  stop: () => Promise<void>;
}> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-bench-nats-'));
  const child = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const deadline = Date.now() + 30_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('nats-server did not start within 30 s');
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    child,
    stop: async () => {
      await stop(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the compiled migrations (dist/scripts/migrate.js run) on the database. */
export function migrateDatabase(databaseUrl: string): void {
  const r = spawnSync(
    process.execPath,
    [
      '-r',
      path.join(ROOT, 'scripts', 'register-paths.js'),
      path.join(ROOT, 'dist', 'scripts', 'migrate.js'),
      'run',
    ],
    { env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`migrations failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/** The compiled membership-listener on a free port, once its /healthz answers; `nodeArgs` go to node. */
export async function startMembershipListener(
  databaseUrl: string,
  natsUrl: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      '-r',
      path.join(ROOT, 'scripts', 'register-paths.js'),
      path.join(ROOT, 'dist', 'apps', 'membership-listener', 'src', 'main.js'),
    ],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        NATS_URL: natsUrl,
        MEMBERSHIP_LISTENER_PORT: String(port),
        LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${base}/healthz`, child);
  } catch (err) {
    await stop(child);
    throw err;
  }
  return { child, base };
}

/** CPU seconds (user + system) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime: fields 14 and 15 of /proc/<pid>/stat (11 and 12 after the name), in clock
    // ticks of 1/100 s on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * The bench's NATS echo responder (bench/enforcement/echo-responder.ts, compiled) on `subject`,
 * once it has subscribed: the transport's floor, measured beside the service.
 */
export async function startEchoResponder(natsUrl: string, subject: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'dist', 'bench', 'enforcement', 'echo-responder.js'), natsUrl, subject],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`echo responder exited with ${code}`)));
  });
  return child;
}
