import {
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { Readiness } from '@aigov/observability';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { createDataSource, initializeDataSource } from './data-source';
import { embeddedDatabaseUrl } from './embedded';
import { pendingMigrations, runMigrationsLocked } from './migrate';
import { closeStatementPool, createStatementPool, splitPoolBudget, useStatementPool } from './pool';

export interface DatabaseModuleOptions {
  /** Null: the embedded PostgreSQL running in dataDir (started by `npm start`). */
  databaseUrl: string | null;
  dataDir: string;
  poolSize: number;
  applicationName: string;
  log: (msg: string) => void;
  /** Apply pending migrations before the app starts (under the advisory lock). */
  migrate: boolean;
}

/** The `pg` Pool for single statements outside transactions (see pool.ts), beside the DataSource. */
export const STATEMENT_POOL = Symbol('STATEMENT_POOL');

interface DatabaseHandle {
  ds: DataSource;
  pool: Pool;
}

/**
 * Opens the process's one DataSource before anything else starts. A database that cannot be
 * reached makes Nest's bootstrap reject with a clear error; nothing retries silently.
 */
async function openDatabase(opts: DatabaseModuleOptions): Promise<DatabaseHandle> {
  // An app on its own connects to the cluster `npm start` runs; it never starts one itself, so
  // the server's lifetime has one owner (docs/decisions/embedded-database.md).
  const url = opts.databaseUrl ?? (await embeddedDatabaseUrl(opts.dataDir));
  // DATABASE_POOL_SIZE is shared by the two pools (pool.ts says how).
  const budget = splitPoolBudget(opts.poolSize);
  // The embedded database is the single-machine default: there every idle backend costs memory
  // the user sees (about 15 MB each), so unused connections close after a second instead of
  // pg's 10 s; a busy app keeps its connections in use and is not affected.
  const idleTimeoutMs = opts.databaseUrl === null ? 1_000 : undefined;
  const ds = createDataSource({
    url,
    poolSize: budget.transactions,
    applicationName: opts.applicationName,
    idleTimeoutMs,
  });
  const pool = createStatementPool({
    url,
    max: budget.statements,
    applicationName: opts.applicationName,
    idleTimeoutMs,
    onError: (err) => opts.log(`idle database connection lost: ${err.message}`),
  });
  try {
    await initializeDataSource(ds, opts.databaseUrl === null ? 'the embedded database' : 'DATABASE_URL');
    if (opts.migrate) {
      const applied = await runMigrationsLocked(ds);
      if (applied.length > 0) opts.log(`applied migrations: ${applied.join(', ')}`);
    }
  } catch (err) {
    await closeStatementPool(pool);
    if (ds.isInitialized) await ds.destroy();
    throw err;
  }
  useStatementPool(ds, pool);
  return { ds, pool };
}

@Injectable()
class DatabaseLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(STATEMENT_POOL) private readonly pool: Pool,
    @Optional() @Inject(Readiness) readiness: Readiness | null,
  ) {
    readiness?.register('database', () => databaseReadiness(ds));
  }

  async onApplicationShutdown(): Promise<void> {
    await closeStatementPool(this.pool);
    if (this.ds.isInitialized) await this.ds.destroy();
  }
}

@Global()
@Module({})
export class DatabaseModule {
  static forRoot(opts: DatabaseModuleOptions): DynamicModule {
    const HANDLE = Symbol('DATABASE_HANDLE');
    return {
      module: DatabaseModule,
      providers: [
        { provide: HANDLE, useFactory: () => openDatabase(opts) },
        { provide: DataSource, useFactory: (h: DatabaseHandle) => h.ds, inject: [HANDLE] },
        { provide: STATEMENT_POOL, useFactory: (h: DatabaseHandle) => h.pool, inject: [HANDLE] },
        DatabaseLifecycle,
      ],
      exports: [DataSource, STATEMENT_POOL],
    };
  }
}

/** Readiness of the database: reachable and every known migration applied. */
export async function databaseReadiness(ds: DataSource): Promise<string | null> {
  if (!ds.isInitialized) return 'not connected';
  await ds.query('SELECT 1');
  const pending = await pendingMigrations(ds);
  return pending.length === 0 ? null : `pending migrations: ${pending.join(', ')}`;
}
