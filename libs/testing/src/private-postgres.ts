import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Client } from 'pg';
import { createDataSource } from '../../db/src/data-source';
import { runMigrationsLocked } from '../../db/src/migrate';
import { startNatsServer, type TestNatsServer } from './nats-server';
import { freePort } from './ports';

// Relative imports on purpose, as in database.ts.

/**
 * A PostgreSQL server of one test file's own, for fault tests that stop and restart the
 * database under running apps (the machine's shared server is never touched). Uses the
 * machine's PostgreSQL binaries; run as root, the cluster belongs to the `postgres` user.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  stop(): void;
  start(): void;
  /** Stops the server and removes its directory. */
  destroy(): void;
  /**
   * Creates the database `name` on this server and returns its URL; migrated (as the apps
   * migrate theirs) unless `migrated` is false.
   */
  createDatabase(name: string, opts?: { migrated?: boolean }): Promise<string>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
        .sort((x, y) => Number(y) - Number(x))
    : [];
  if (versions.length === 0)
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql');
  return path.join(root, versions[0], 'bin');
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root: the cluster then belongs to the postgres user.
  const run = (cmd: string, args: string[]) =>
    asRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { stdio: 'pipe' })
      : execFileSync(path.join(bin, cmd), args, { stdio: 'pipe' });
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const start = () =>
    void run('pg_ctl', [
      '-D',
      data,
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      '-l',
      path.join(dir, 'log'),
      '-w',
      'start',
    ]);
  const stop = () => void run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    start,
    stop,
    createDatabase: async (name, opts = {}) => {
      const admin = new Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      const dbUrl = url.replace(/\/postgres$/, `/${name}`);
      if (opts.migrated ?? true) {
        const ds = createDataSource({ url: dbUrl, poolSize: 1 });
        await ds.initialize();
        try {
          await runMigrationsLocked(ds);
        } finally {
          await ds.destroy();
        }
      }
      return dbUrl;
    },
    destroy: () => {
      try {
        stop();
      } catch {
        // already stopped
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * What the fault tests stop and start under running apps: a PostgreSQL server of the test file's
 * own holding one migrated database, `url`, and a nats-server of its own with a connection to it.
 */
export interface PrivateServers {
  pg: PrivatePostgres;
  nats: TestNatsServer;
  nc: NatsConnection;
  /** The database's URL. */
  url: string;
  /** Closes the connection and stops both servers (their directories removed). */
  stop(): Promise<void>;
}

export async function startPrivateServers(database: string): Promise<PrivateServers> {
  const [pg, nats] = await Promise.allSettled([startPrivatePostgres(), startNatsServer()]);
  let nc: NatsConnection | undefined;
  const stop = async () => {
    await nc?.close();
    if (pg.status === 'fulfilled') pg.value.destroy();
    if (nats.status === 'fulfilled') await nats.value.stop();
  };
  try {
    if (pg.status === 'rejected') throw pg.reason as Error;
    if (nats.status === 'rejected') throw nats.reason as Error;
    const url = await pg.value.createDatabase(database);
    nc = await connect({ servers: nats.value.url });
    return { pg: pg.value, nats: nats.value, nc, url, stop };
  } catch (err) {
    // Neither server outlives a failed start (PostgreSQL would outlive the test process).
    await stop();
    throw err;
  }
}
