import { ConfigError, loadConfig } from '@aigov/config';
import {
  createDataSource,
  initializeDataSource,
  openEmbeddedDatabase,
  revertLastMigrationLocked,
  runMigrationsLocked,
  type EmbeddedDatabase,
} from '@aigov/db';
import type { DataSource } from 'typeorm';

/**
 * npm run migration:run | migration:revert (new migrations are written by hand, in plain SQL)
 * Works on DATABASE_URL, or on the embedded database in DATA_DIR when it is unset.
 */
const USAGE = 'usage: migrate.js run | revert';

async function withDatabase<T>(fn: (ds: DataSource) => Promise<T>): Promise<T> {
  const config = loadConfig();
  let embedded: EmbeddedDatabase | null = null;
  let url = config.databaseUrl;
  if (url === null) {
    embedded = await openEmbeddedDatabase(config.dataDir);
    url = embedded.url;
  }
  const ds = createDataSource({ url, poolSize: 1, applicationName: 'aigov-migrate' });
  try {
    await initializeDataSource(ds, embedded ? 'the embedded database' : 'DATABASE_URL');
    return await fn(ds);
  } finally {
    if (ds.isInitialized) await ds.destroy();
    if (embedded) await embedded.stop();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'run': {
      const applied = await withDatabase(runMigrationsLocked);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'no pending migrations');
      return 0;
    }
    case 'revert': {
      const reverted = await withDatabase(revertLastMigrationLocked);
      console.log(reverted ? `reverted: ${reverted}` : 'nothing to revert');
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `migrate failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
