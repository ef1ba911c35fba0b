import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';

/** What the benchmarks share: a database of their own, the compiled budget-api, its first user. */

export const ROOT = path.resolve(__dirname, '..', '..', '..');

export const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
};

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: server exited with ${child.exitCode}`);
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

export function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * A fresh database on the server of `adminUrl`, empty or a copy of the database `template` (which
 * nobody may be connected to); `drop` removes it.
 */
export async function createBenchDatabase(
  adminUrl: string,
  prefix: string,
  template?: string,
): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/**
 * The compiled budget-api on a free port (it migrates the database as it starts), NATS off.
 * `nodeArgs` go to node (e.g. --cpu-prof); `env` adds to or overrides the environment.
 */
export async function startBudgetApi(
  databaseUrl: string,
  opts: { nodeArgs?: string[]; env?: Record<string, string> } = {},
): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      '-r',
      path.join(ROOT, 'scripts', 'register-paths.js'),
      path.join(ROOT, 'dist', 'apps', 'budget-api', 'src', 'main.js'),
    ],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PORT: String(port),
        NATS_ENABLED: 'false',
        LOG_LEVEL: 'warn',
        ...opts.env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
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

/** POST /users/first: the owner's token. */
export async function firstUser(base: string, username: string): Promise<string> {
  const res = await fetch(`${base}/api/v2/users/first`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, email: `${username}@example.com` }),
  });
  if (res.status !== 201) throw new Error(`POST /users/first: ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}
