import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Pool, type ClientConfig, type PoolConfig } from 'pg';
import { testSettings } from '../../config/src/config';
import { createDataSource } from '../../db/src/data-source';
import { runMigrationsLocked } from '../../db/src/migrate';
import { waitFor } from './wait';

// Relative imports on purpose: Jest's globalSetup does not go through moduleNameMapper.

const MIGRATIONS_DIR = path.join(__dirname, '..', '..', '..', 'migrations');

export function adminUrl(): string {
  return testSettings().adminDatabaseUrl;
}

export function urlFor(database: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

/** The migrated template's name changes whenever a migration file changes. */
export function templateName(): string {
  const h = createHash('sha256');
  for (const f of fs.readdirSync(MIGRATIONS_DIR).sort()) {
    h.update(f);
    h.update(fs.readFileSync(path.join(MIGRATIONS_DIR, f)));
  }
  return `aigov_tpl_${h.digest('hex').slice(0, 16)}`;
}

async function withAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates the migrated template once per migrations version (Jest globalSetup). */
export async function ensureTemplate(): Promise<string> {
  const name = templateName();
  await withAdmin(async (c) => {
    await c.query('SELECT pg_advisory_lock(4702113902)');
    try {
      const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (exists.rowCount) return;
      const building = `${name}_build`;
      await c.query(`DROP DATABASE IF EXISTS ${building} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${building}`);
      const ds = createDataSource({ url: urlFor(building), poolSize: 1 });
      await ds.initialize();
      try {
        await runMigrationsLocked(ds);
      } finally {
        await ds.destroy();
      }
      await c.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
      await c.query(`UPDATE pg_database SET datistemplate = true WHERE datname = $1`, [name]);
      // Older templates belong to older migrations. Keep the few newest (another checkout of the
      // repository, on other migrations, may be cloning one right now) and drop the rest.
      const old = await c.query(
        `SELECT datname FROM pg_database WHERE datname LIKE 'aigov_tpl_%' AND datname <> $1
          ORDER BY oid DESC OFFSET 8`,
        [name],
      );
      for (const row of old.rows as { datname: string }[]) {
        await c.query(`UPDATE pg_database SET datistemplate = false WHERE datname = $1`, [row.datname]);
        await c.query(`DROP DATABASE IF EXISTS ${row.datname} WITH (FORCE)`).catch(() => undefined);
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock(4702113902)');
    }
  });
  return name;
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A database of this test file's own: migrated (cloned from the template) or empty. */
export async function createTestDatabase(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = opts.migrated ?? true;
  const name = `aigov_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(async (c) => {
    await c.query(
      migrated ? `CREATE DATABASE ${name} TEMPLATE ${templateName()}` : `CREATE DATABASE ${name}`,
    );
  });
  return {
    name,
    url: urlFor(name),
    drop: () => withAdmin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}

/**
 * A pg Pool for a test's own queries. The server may end one of its idle connections at any
 * moment (a database dropped WITH (FORCE), a backend terminated, the server restarted): the pool
 * then discards it and opens another when asked. Without an 'error' listener that event is an
 * uncaught exception, which Jest charges to whatever test runs at that moment, in this file or
 * (all files share one process on a 2-core machine) in a later one. A query on a dead
 * connection still fails where it is made.
 */
export function testPool(config: PoolConfig): Pool {
  const pool = new Pool(config);
  pool.on('error', () => undefined);
  return pool;
}

/** A pg Client for a test's own queries, with the same 'error' listener as testPool. */
export function testClient(config: ClientConfig): Client {
  const client = new Client(config);
  client.on('error', () => undefined);
  return client;
}

/**
 * Ends a pg Pool and waits until every connection is really closed: pg-pool's end() resolves
 * earlier, and a DROP DATABASE ... WITH (FORCE) right after would kill a connection still open,
 * which the pool then reports as an unhandled error in a later test.
 */
export async function closePool(pool: import('pg').Pool): Promise<void> {
  const open = pool.totalCount;
  let closed = 0;
  const allClosed = new Promise<void>((resolve) => {
    if (open === 0) resolve();
    pool.on('remove', () => {
      if (++closed >= open) resolve();
    });
  });
  await pool.end();
  await allClosed;
}

/**
 * Waits until no session is connected to `database` any more, asking the server itself
 * (`pg_stat_activity`, from an admin connection). For clients whose pool is not ours to watch
 * (a TypeORM DataSource ends its own): destroy them, then wait here before dropping the database,
 * so that DROP DATABASE ... WITH (FORCE) never kills a connection still closing (which its
 * client would report as an unhandled 57P01 error later). The bound is a deadline for a loaded
 * machine; a connection that stays open past it is a leak and fails the caller.
 */
export async function waitForNoConnections(database: string, timeoutMs = 30_000): Promise<void> {
  await withAdmin((c) =>
    waitFor(
      `the connections to ${database} to close`,
      async () => {
        const res = await c.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [database],
        );
        return res.rows[0].n === 0;
      },
      timeoutMs,
      50,
    ),
  );
}
