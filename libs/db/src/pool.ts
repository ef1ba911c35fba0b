import type { DataSource } from 'typeorm';
import { Pool } from 'pg';

/**
 * The statement pool: a plain `pg` Pool beside TypeORM's, for single statements outside a
 * transaction (the hot reads of every request). TypeORM's query runner (acquire, subscriber
 * broadcast, release) roughly doubles the cost of a short query (see docs/benchmarks/api.md), and
 * reaching into the driver's private pool is not an option, so libs/db opens its own.
 *
 * Connection budget: DATABASE_POOL_SIZE is the number of connections one app opens in all. The
 * statement pool gets half of it, rounded up, and TypeORM's pool (transactions, migrations) the
 * rest; each gets at least one, so a size of 1 opens 2 connections.
 */
export function splitPoolBudget(poolSize: number): { statements: number; transactions: number } {
  const statements = Math.max(1, Math.ceil(poolSize / 2));
  return { statements, transactions: Math.max(1, poolSize - statements) };
}

export interface StatementPoolOptions {
  url: string;
  max: number;
  /** Application name reported to PostgreSQL (pg_stat_activity). */
  applicationName?: string;
  connectTimeoutMs?: number;
  /** How long an unused connection stays open (default: pg's 10 s). */
  idleTimeoutMs?: number;
  /** Where an error of an idle connection goes (unhandled, it would end the process). */
  onError?: (err: Error) => void;
}

/**
 * Generic plans for the named statements of the statement pool (docs/decisions/generic-plans.md):
 * they are key lookups and batch statements over unnest()ed arrays, for which PostgreSQL's default
 * keeps making a custom plan on every execution (about 0.7 ms for a batch of reservations, more
 * than the execution of a small one). Set at connection start-up, added to any `options` the URL
 * carries (the URL's own would otherwise replace the pool's).
 */
export function withGenericPlans(url: string): { connectionString: string; options?: string } {
  const setting = '-c plan_cache_mode=force_generic_plan';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { connectionString: url, options: setting }; // not URL-shaped: pg takes it as is
  }
  const own = parsed.searchParams.get('options');
  if (own === null) return { connectionString: url, options: setting };
  parsed.searchParams.set('options', `${own} ${setting}`);
  return { connectionString: parsed.toString() };
}

export function createStatementPool(opts: StatementPoolOptions): Pool {
  const pool = new Pool({
    ...withGenericPlans(opts.url),
    max: opts.max,
    application_name: opts.applicationName ?? 'aigov',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMillis: opts.idleTimeoutMs } : {}),
  });
  // A connection that dies while idle (server restart) is dropped by the pool; the next query
  // opens a new one. Without a listener the 'error' event would crash the process.
  pool.on('error', opts.onError ?? (() => undefined));
  return pool;
}

/**
 * Ends the pool and waits until every connection is really closed: pg-pool's end() resolves
 * earlier, and a DROP DATABASE ... WITH (FORCE) or a server stop right after would otherwise
 * meet a connection still open.
 */
export async function closeStatementPool(pool: Pool): Promise<void> {
  if (pool.ended) return;
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

const statementPools = new WeakMap<DataSource, Pool>();

/**
 * Makes `q(ds, ...)` send single statements on `ds` through `pool`. Repositories keep taking a
 * DataSource or a transaction's EntityManager; only the DataSource case uses the pool, so a
 * statement inside a transaction always stays on the transaction's connection.
 */
export function useStatementPool(ds: DataSource, pool: Pool): void {
  statementPools.set(ds, pool);
}

export function statementPoolOf(ds: DataSource): Pool | undefined {
  return statementPools.get(ds);
}
