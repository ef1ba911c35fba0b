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
import { DataSource } from 'typeorm';
import { createDataSource, initializeDataSource } from './data-source';
import { embeddedDatabaseUrl } from './embedded';
import { pendingMigrations, runMigrationsLocked } from './migrate';

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

/**
 * Opens the process's one DataSource before anything else starts. A database that cannot be
 * reached makes Nest's bootstrap reject with a clear error; nothing retries silently.
 */
async function openDatabase(opts: DatabaseModuleOptions): Promise<{ ds: DataSource }> {
  // An app on its own connects to the cluster `npm start` runs; it never starts one itself, so
  // the server's lifetime has one owner (docs/decisions/embedded-database.md).
  const url = opts.databaseUrl ?? (await embeddedDatabaseUrl(opts.dataDir));
  const ds = createDataSource({ url, poolSize: opts.poolSize, applicationName: opts.applicationName });
  try {
    await initializeDataSource(ds, opts.databaseUrl === null ? 'the embedded database' : 'DATABASE_URL');
    if (opts.migrate) {
      const applied = await runMigrationsLocked(ds);
      if (applied.length > 0) opts.log(`applied migrations: ${applied.join(', ')}`);
    }
  } catch (err) {
    if (ds.isInitialized) await ds.destroy();
    throw err;
  }
  return { ds };
}

@Injectable()
class DatabaseLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Optional() @Inject(Readiness) readiness: Readiness | null,
  ) {
    readiness?.register('database', () => databaseReadiness(ds));
  }

  async onApplicationShutdown(): Promise<void> {
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
        { provide: DataSource, useFactory: (h: { ds: DataSource }) => h.ds, inject: [HANDLE] },
        DatabaseLifecycle,
      ],
      exports: [DataSource],
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
