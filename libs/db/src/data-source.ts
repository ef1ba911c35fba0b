import * as path from 'node:path';
import { redactCredentials } from '@aigov/config';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
/** migrations/ sits at the same relative place in the source tree and in dist/. */
export const MIGRATIONS_GLOB = path.join(__dirname, '..', '..', '..', 'migrations', '*-*.{ts,js}');

export interface DataSourceOptions {
  url: string;
  poolSize?: number;
  /** Application name reported to PostgreSQL (pg_stat_activity). */
  applicationName?: string;
  logger?: TypeOrmLogger;
  connectTimeoutMs?: number;
  /** How long an unused connection stays open (default: pg's 10 s). */
  idleTimeoutMs?: number;
}

export function createDataSource(opts: DataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: opts.url,
    // No entities: the schema is written once, in the migrations, and read through plain SQL.
    entities: [],
    migrations: [MIGRATIONS_GLOB],
    migrationsTableName: 'typeorm_migrations',
    synchronize: false,
    migrationsRun: false,
    // Schema changes happen only in migrations: no CREATE EXTENSION on connect (uuids come
    // from gen_random_uuid(), core since PostgreSQL 13).
    installExtensions: false,
    logger: opts.logger,
    logging: opts.logger ? ['query', 'error', 'schema', 'warn', 'migration'] : false,
    applicationName: opts.applicationName ?? 'aigov',
    extra: {
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMillis: opts.idleTimeoutMs } : {}),
    },
  });
}

/** Connects, turning the driver's error into one that says what was unreachable. */
export async function initializeDataSource(ds: DataSource, label = 'the database'): Promise<DataSource> {
  try {
    await ds.initialize();
  } catch (err) {
    throw new Error(
      `Cannot connect to ${label} (${redactUrl(String(ds.options.type === 'postgres' ? ds.options.url : ''))}): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return ds;
}

/** Hides a password in a connection string for logs and errors. */
export function redactUrl(url: string): string {
  return redactCredentials(url);
}
