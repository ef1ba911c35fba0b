import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '@aigov/config';
import {
  createDataSource,
  initializeDataSource,
  revertLastMigrationLocked,
  runMigrationsLocked,
  schemaDrift,
  startEmbeddedCluster,
  type EmbeddedCluster,
} from '@aigov/db';
import type { DataSource } from 'typeorm';

/**
 * npm run migration:run | migration:revert | migration:generate -- <Name>
 * Works on DATABASE_URL, or on the embedded PostgreSQL of DATA_DIR when it is unset (started for
 * the command and stopped after, unless it was running already).
 */
const USAGE = 'usage: migrate.js run | revert | generate <Name> | drift';

async function withDatabase<T>(fn: (ds: DataSource) => Promise<T>): Promise<T> {
  const config = loadConfig();
  let embedded: EmbeddedCluster | null = null;
  let url = config.databaseUrl;
  if (url === null) {
    embedded = await startEmbeddedCluster(config.dataDir);
    url = embedded.url;
  }
  const ds = createDataSource({ url, poolSize: 1, applicationName: 'aigov-migrate' });
  try {
    await initializeDataSource(ds, embedded ? 'the embedded database' : 'DATABASE_URL');
    return await fn(ds);
  } finally {
    if (ds.isInitialized) await ds.destroy();
    if (embedded && !embedded.adopted) await embedded.stop();
  }
}

function migrationSource(className: string, timestamp: number, up: string[], down: string[]): string {
  const body = (qs: string[]) =>
    qs.map((q) => `    await q.query(\`${q.replace(/`/g, '\\`')}\`);`).join('\n');
  return `import type { MigrationInterface, QueryRunner } from 'typeorm';

export class ${className}${timestamp} implements MigrationInterface {
  name = '${className}${timestamp}';

  async up(q: QueryRunner): Promise<void> {
${body(up)}
  }

  async down(q: QueryRunner): Promise<void> {
${body(down)}
  }
}
`;
}

async function main(argv: string[]): Promise<number> {
  const [command, name] = argv;
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
    case 'drift': {
      const drift = await withDatabase(async (ds) => {
        await runMigrationsLocked(ds);
        return schemaDrift(ds);
      });
      if (drift.length === 0) {
        console.log("no drift: migrations produce exactly the entities' schema");
        return 0;
      }
      console.error(`drift: the entities need\n${drift.join(';\n')}`);
      return 1;
    }
    case 'generate': {
      if (!name || !/^[A-Z][A-Za-z0-9]*$/.test(name)) {
        console.error('generate needs a PascalCase name: npm run migration:generate -- AddThing');
        return 2;
      }
      const sql = await withDatabase(async (ds) => {
        await runMigrationsLocked(ds);
        return ds.driver.createSchemaBuilder().log();
      });
      if (sql.upQueries.length === 0) {
        console.log('no changes: nothing to generate');
        return 0;
      }
      const ts = Date.now();
      const kebab = name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
      const file = path.resolve(__dirname, '..', '..', 'migrations', `${ts}-${kebab}.ts`);
      fs.writeFileSync(
        file,
        migrationSource(
          name,
          ts,
          sql.upQueries.map((q) => q.query),
          sql.downQueries.map((q) => q.query).reverse(),
        ),
      );
      console.log(`wrote ${file}`);
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
