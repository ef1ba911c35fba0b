import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Client, DatabaseError } from 'pg';
import type { DataSource } from 'typeorm';
import {
  createDataSource,
  pendingMigrations,
  revertLastMigrationLocked,
  runMigrationsLocked,
} from '@aigov/db';
import { createTestDatabase, type TestDatabase, testClient } from '@aigov/testing';

/** Migration class names as the files declare them (`name = '...'`), oldest first. */
function migrationNamesOnDisk(): string[] {
  const dir = path.join(__dirname, '..', 'migrations');
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d+-.*\.ts$/.test(f))
    .sort()
    .map((f) => {
      const m = /name = '([^']+)'/.exec(fs.readFileSync(path.join(dir, f), 'utf8'));
      if (!m) throw new Error(`migration ${f} declares no name`);
      return m[1];
    });
}

const ALL_MIGRATIONS = migrationNamesOnDisk();
const NEWEST = ALL_MIGRATIONS[ALL_MIGRATIONS.length - 1];

async function tableExists(ds: DataSource, table: string): Promise<boolean> {
  const rows = await ds.query<{ t: string | null }[]>('SELECT to_regclass($1)::text AS t', [table]);
  return rows[0].t !== null;
}

async function appliedMigrations(ds: DataSource): Promise<{ name: string; n: number }[]> {
  return ds.query<{ name: string; n: number }[]>(
    'SELECT name, count(*)::int AS n FROM typeorm_migrations GROUP BY name ORDER BY name',
  );
}

describe('migrations on an empty database', () => {
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
    ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-migrations-test' });
    await ds.initialize();
  });

  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  it('has migrations on disk to test', () => {
    expect(ALL_MIGRATIONS.length).toBeGreaterThan(0);
    expect(ALL_MIGRATIONS).toContain('PriceBook1764400000000');
  });

  it('sees pending migrations and no schema before migrating (the checks are not vacuous)', async () => {
    expect(await tableExists(ds, 'ai_model_prices')).toBe(false);
    expect(await schemaFingerprint(ds)).toEqual([]);
    expect(await pendingMigrations(ds)).toEqual(ALL_MIGRATIONS);
  });

  it('applies every migration; then nothing pending, and a second run changes nothing', async () => {
    const applied = await runMigrationsLocked(ds);
    expect(applied).toEqual(ALL_MIGRATIONS);
    expect(await tableExists(ds, 'ai_model_prices')).toBe(true);
    expect(await pendingMigrations(ds)).toEqual([]);
    const schema = await schemaFingerprint(ds);
    expect(await runMigrationsLocked(ds)).toEqual([]);
    expect(await schemaFingerprint(ds)).toEqual(schema);
  });

  it('reverts the newest migration and re-applies it cleanly', async () => {
    const before = await relations(ds);
    const schemaBefore = await schemaFingerprint(ds);
    const reverted = await revertLastMigrationLocked(ds);
    expect(reverted).toBe(NEWEST);
    const afterRevert = await relations(ds);
    // The revert changed the schema (a migration may replace functions as well as add them);
    // re-applying below must give back exactly what was there.
    expect(afterRevert).not.toEqual(before);
    const rows = await ds.query<{ n: number }[]>(
      'SELECT count(*)::int AS n FROM typeorm_migrations WHERE name = $1',
      [NEWEST],
    );
    expect(rows[0].n).toBe(0);
    expect(await pendingMigrations(ds)).toEqual([NEWEST]);

    expect(await runMigrationsLocked(ds)).toEqual([NEWEST]);
    expect(await relations(ds)).toEqual(before);
    // Every column, constraint, index, trigger and function exactly as before the revert.
    expect(await schemaFingerprint(ds)).toEqual(schemaBefore);
    expect(await pendingMigrations(ds)).toEqual([]);
    expect(await appliedMigrations(ds)).toEqual([...ALL_MIGRATIONS].sort().map((name) => ({ name, n: 1 })));
  });
});

/**
 * The public schema as sorted lines: columns with their types, nullability and defaults,
 * constraints and indexes with their definitions, triggers and function bodies. The schema is
 * written once, in the migrations; this is what "applied cleanly" is compared by.
 */
async function schemaFingerprint(ds: DataSource): Promise<string[]> {
  const rows = await ds.query<{ line: string }[]>(
    `SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                   coalesce(column_default, '')) AS line
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'typeorm_migrations'
     UNION ALL
     SELECT format('constraint %s.%s %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'public' AND c.conrelid::regclass::text <> 'typeorm_migrations'
     UNION ALL
     SELECT format('index %s', indexdef) FROM pg_indexes
      WHERE schemaname = 'public' AND tablename <> 'typeorm_migrations'
     UNION ALL
     SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM pg_trigger t
       JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      WHERE n.nspname = 'public' AND NOT t.tgisinternal
     UNION ALL
     SELECT format('function %s', pg_get_functiondef(p.oid)) FROM pg_proc p
       JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
     UNION ALL
     SELECT format('view %s %s', viewname, definition) FROM pg_views WHERE schemaname = 'public'
     ORDER BY 1`,
  );
  return rows.map((r) => r.line);
}

/** Tables, views and functions of the public schema, sorted. */
async function relations(ds: DataSource): Promise<string[]> {
  const rows = await ds.query<{ name: string }[]>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'
     UNION SELECT routine_name FROM information_schema.routines WHERE routine_schema = 'public'
     ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

describe('concurrent migration runs', () => {
  let db: TestDatabase;
  const sources: DataSource[] = [];

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
  });

  afterAll(async () => {
    await Promise.all(sources.filter((s) => s.isInitialized).map((s) => s.destroy()));
    await db?.drop();
  });

  it('4 DataSources migrating at once: one applies everything, the others find nothing to do', async () => {
    for (let i = 0; i < 4; i++) {
      sources.push(createDataSource({ url: db.url, poolSize: 1, applicationName: `aigov-race-${i}` }));
    }
    await Promise.all(sources.map((s) => s.initialize()));

    const results = await Promise.all(sources.map((s) => runMigrationsLocked(s)));

    const appliers = results.filter((r) => r.length > 0);
    expect(appliers).toEqual([ALL_MIGRATIONS]);
    expect(results.filter((r) => r.length === 0)).toHaveLength(3);
    expect(await appliedMigrations(sources[0])).toEqual(
      [...ALL_MIGRATIONS].sort().map((name) => ({ name, n: 1 })),
    );
    expect((await schemaFingerprint(sources[0])).length).toBeGreaterThan(0);
    for (const s of sources) expect(await pendingMigrations(s)).toEqual([]);
  });
});

describe('named constraints of ai_model_prices', () => {
  const PRICE_COLUMNS = ['input_price', 'output_price', 'cache_read_price', 'cache_write_price'] as const;
  let db: TestDatabase;
  let client: Client;

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: true });
    client = testClient({ connectionString: db.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  /** The name of the constraint a statement violates; fails when the statement succeeds. */
  async function violated(sql: string, params: unknown[]): Promise<string | undefined> {
    try {
      await client.query(sql, params);
    } catch (err) {
      expect(err).toBeInstanceOf(DatabaseError);
      return (err as DatabaseError).constraint;
    }
    throw new Error(
      `statement succeeded but should have violated a constraint: ${sql} ${JSON.stringify(params)}`,
    );
  }

  it('exist under their names in pg_constraint', async () => {
    const res = await client.query<{ conname: string; contype: string }>(
      `SELECT conname, contype FROM pg_constraint
        WHERE conrelid = 'ai_model_prices'::regclass ORDER BY conname`,
    );
    expect(res.rows).toEqual(
      expect.arrayContaining([
        { conname: 'ai_model_prices_pkey', contype: 'p' },
        { conname: 'ai_model_prices_source_check', contype: 'c' },
        ...PRICE_COLUMNS.map((c) => ({ conname: `ai_model_prices_${c}_check`, contype: 'c' })),
      ]),
    );
  });

  it.each(PRICE_COLUMNS)('a negative %s fails with its named check', async (column) => {
    const name = await violated(
      `INSERT INTO ai_model_prices (provider, model, source, ${column}) VALUES ($1, $2, 'custom', -1)`,
      ['neg', `neg-${column}`],
    );
    expect(name).toBe(`ai_model_prices_${column}_check`);
  });

  it("source 'x' fails with ai_model_prices_source_check", async () => {
    const name = await violated(
      `INSERT INTO ai_model_prices (provider, model, source, input_price) VALUES ($1, $2, $3, 1)`,
      ['p', 'm', 'x'],
    );
    expect(name).toBe('ai_model_prices_source_check');
  });

  it('a duplicate (provider, model, source) fails with ai_model_prices_pkey; zero prices are fine', async () => {
    const insert = `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price,
                      cache_read_price, cache_write_price) VALUES ($1, $2, $3, 0, 0, 0, 0)`;
    await client.query(insert, ['dup', 'dup-model', 'custom']);
    await client.query(insert, ['dup', 'dup-model', 'default']);
    expect(await violated(insert, ['dup', 'dup-model', 'custom'])).toBe('ai_model_prices_pkey');
  });
});
