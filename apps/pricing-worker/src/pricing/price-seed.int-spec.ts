import { PriceBookRepository, createDataSource } from '@aigov/db';
import { createTestDatabase, type TestDatabase } from '@aigov/testing';
import type { DataSource, Logger as TypeOrmLogger } from 'typeorm';
import { readEmbeddedSeed } from './embedded-seed';

type Row = {
  provider: string;
  model: string;
  source: string;
  input_price: string | null;
  output_price: string | null;
  cache_read_price: string | null;
  cache_write_price: string | null;
  tiers: unknown;
  updated_at: Date;
};

function seedRow(
  model: string,
  prices: Partial<
    Record<'input_price' | 'output_price' | 'cache_read_price' | 'cache_write_price', number | null>
  >,
  tiers: unknown = null,
) {
  return {
    provider: 'acme',
    model,
    input_price: null,
    output_price: null,
    cache_read_price: null,
    cache_write_price: null,
    ...prices,
    tiers,
  };
}

/** Counts every statement TypeORM sends, to prove the seed is applied in exactly one. */
class CountingLogger implements TypeOrmLogger {
  statements: string[] = [];
  logQuery(query: string): void {
    this.statements.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

describe('applying the price seed (real PostgreSQL)', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let counter: CountingLogger;
  let repo: PriceBookRepository;

  const rows = async (): Promise<Row[]> =>
    ds.query<Row[]>(
      `SELECT provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers, updated_at
         FROM ai_model_prices ORDER BY provider, model, source`,
    );

  beforeAll(async () => {
    db = await createTestDatabase();
    counter = new CountingLogger();
    ds = createDataSource({ url: db.url, poolSize: 2, logger: counter });
    await ds.initialize();
    repo = new PriceBookRepository(ds);
  });

  afterAll(async () => {
    await ds.destroy();
    await db.drop();
  });

  beforeEach(async () => {
    await ds.query('TRUNCATE ai_model_prices');
  });

  it('fills a fresh table from the committed seed in one statement', async () => {
    const seed = await readEmbeddedSeed();
    const expected = JSON.parse(seed) as { provider: string; model: string; input_price: number | null }[];
    counter.statements = [];
    const counts = await repo.upsertDefaultPrices(seed);
    expect(counter.statements).toHaveLength(1);
    expect(counter.statements[0]).toContain('jsonb_array_elements');
    expect(counts).toEqual({ total: expected.length, inserted: expected.length, updated: 0, unchanged: 0 });
    const stored = await rows();
    expect(stored).toHaveLength(expected.length);
    expect(stored.every((r) => r.source === 'default')).toBe(true);
    const sonnet = stored.find((r) => r.provider === 'anthropic' && r.model === 'claude-sonnet-4-5');
    expect(sonnet).toMatchObject({
      input_price: '3000000',
      output_price: '15000000',
      cache_read_price: '300000',
      cache_write_price: '3750000',
    });
    const gpt54 = stored.find((r) => r.provider === 'openai' && r.model === 'gpt-5.4');
    expect(gpt54?.tiers).toEqual([
      {
        min_context_tokens: 272000,
        input_price: 5000000,
        output_price: 22500000,
        cache_read_price: 500000,
        cache_write_price: null,
      },
    ]);
  });

  it('is idempotent: a second run changes nothing, not even updated_at', async () => {
    const seed = await readEmbeddedSeed();
    await repo.upsertDefaultPrices(seed);
    const before = await rows();
    await new Promise((r) => setTimeout(r, 20));
    const counts = await repo.upsertDefaultPrices(seed);
    expect(counts.inserted).toBe(0);
    expect(counts.updated).toBe(0);
    expect(counts.unchanged).toBe(before.length);
    expect(await rows()).toEqual(before);
  });

  it('overwrites changed prices, to null too, and moves updated_at only where something changed', async () => {
    await repo.upsertDefaultPrices(
      JSON.stringify([
        seedRow('a', { input_price: 1_000_000, output_price: 2_000_000, cache_read_price: 100_000 }),
        seedRow('b', { input_price: 5, output_price: 0 }),
        seedRow('c', { input_price: 7 }, [
          {
            min_context_tokens: 1000,
            input_price: 9,
            output_price: null,
            cache_read_price: null,
            cache_write_price: null,
          },
        ]),
      ]),
    );
    const before = await rows();
    await new Promise((r) => setTimeout(r, 20));
    const counts = await repo.upsertDefaultPrices(
      JSON.stringify([
        seedRow('a', { input_price: 1_100_000, output_price: 2_000_000, cache_read_price: null }),
        seedRow('b', { input_price: 5, output_price: 0 }),
        seedRow('c', { input_price: 7 }, [
          {
            min_context_tokens: 1000,
            input_price: 10,
            output_price: null,
            cache_read_price: null,
            cache_write_price: null,
          },
        ]),
      ]),
    );
    expect(counts).toEqual({ total: 3, inserted: 0, updated: 2, unchanged: 1 });
    const after = await rows();
    const [a0, b0, c0] = before;
    const [a1, b1, c1] = after;
    expect(a1).toMatchObject({ input_price: '1100000', output_price: '2000000', cache_read_price: null });
    expect(a1.updated_at.getTime()).toBeGreaterThan(a0.updated_at.getTime());
    expect(b1).toEqual(b0);
    expect(b1.output_price).toBe('0');
    expect(b1.cache_read_price).toBeNull();
    expect((c1.tiers as { input_price: number }[])[0].input_price).toBe(10);
    expect(c1.updated_at.getTime()).toBeGreaterThan(c0.updated_at.getTime());
  });

  it('leaves rows missing from the seed and custom rows alone', async () => {
    await ds.query(
      `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price, updated_at)
       VALUES ('acme', 'orphan', 'default', 11, 12, '2020-01-01T00:00:00Z'),
              ('acme', 'a', 'custom', 1, 2, '2020-01-01T00:00:00Z')`,
    );
    const counts = await repo.upsertDefaultPrices(
      JSON.stringify([seedRow('a', { input_price: 999, output_price: 888 })]),
    );
    expect(counts).toEqual({ total: 1, inserted: 1, updated: 0, unchanged: 0 });
    const all = await rows();
    expect(all.map((r) => `${r.model}/${r.source}`)).toEqual(['a/custom', 'a/default', 'orphan/default']);
    const custom = all.find((r) => r.model === 'a' && r.source === 'custom');
    expect(custom).toMatchObject({ input_price: '1', output_price: '2' });
    expect(custom?.updated_at.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    const orphan = all.find((r) => r.model === 'orphan');
    expect(orphan).toMatchObject({ input_price: '11', output_price: '12' });
    expect(orphan?.updated_at.toISOString()).toBe('2020-01-01T00:00:00.000Z');
  });

  it('rejects a negative price through the named check constraint and writes nothing', async () => {
    await expect(
      repo.upsertDefaultPrices(
        JSON.stringify([seedRow('ok', { input_price: 1 }), seedRow('bad', { input_price: -1 })]),
      ),
    ).rejects.toMatchObject({ driverError: { constraint: 'ai_model_prices_input_price_check' } });
    expect(await rows()).toEqual([]);
  });
});
