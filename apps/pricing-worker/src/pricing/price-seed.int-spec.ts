import { PRICING_WORKER_ACTOR } from '@aigov/contracts';
import {
  PriceBookRepository,
  SYNC_AUDIT_MODEL_LIMIT,
  createDataSource,
  type SeedApplyAudit,
} from '@aigov/db';
import { createTestDatabase, type TestDatabase, testClient } from '@aigov/testing';
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

const AUDIT: SeedApplyAudit = { actor: PRICING_WORKER_ACTOR.name, source: 'embedded', requestId: null };

interface SyncAuditRow {
  actor_id: string | null;
  actor: string;
  action: string;
  resource_id: string;
  request_id: string | null;
  diff: {
    source: string;
    inserted: number;
    updated: number;
    models: { model: string; before: Record<string, unknown> | null; after: Record<string, unknown> }[];
    models_not_listed: number;
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
    await ds.query('TRUNCATE ai_model_prices, audit_logs');
  });

  const syncAudits = async (): Promise<SyncAuditRow[]> =>
    ds.query<SyncAuditRow[]>(
      `SELECT actor_id, actor, action, resource_id, request_id, diff FROM audit_logs
        WHERE resource_type = 'ai_model_price_sync' ORDER BY time`,
    );
  /** Row versions: xmin moves when a row is rewritten, xmax when it is locked or deleted. */
  const versions = async (): Promise<{ key: string; xmin: string; xmax: string }[]> =>
    ds.query(
      `SELECT provider || '/' || model || '/' || source AS key, xmin::text AS xmin, xmax::text AS xmax
         FROM ai_model_prices ORDER BY provider, model, source`,
    );

  it('fills a fresh table from the committed seed in one statement', async () => {
    const seed = await readEmbeddedSeed();
    const expected = JSON.parse(seed) as { provider: string; model: string; input_price: number | null }[];
    counter.statements = [];
    const counts = await repo.upsertDefaultPrices(seed, AUDIT);
    expect(counter.statements).toHaveLength(1);
    expect(counter.statements[0]).toContain('jsonb_array_elements');
    expect(counts).toMatchObject({
      total: expected.length,
      inserted: expected.length,
      updated: 0,
      unchanged: 0,
    });
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
    await repo.upsertDefaultPrices(seed, AUDIT);
    const before = await rows();
    await new Promise((r) => setTimeout(r, 20));
    const counts = await repo.upsertDefaultPrices(seed, AUDIT);
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
      AUDIT,
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
      AUDIT,
    );
    expect(counts).toMatchObject({ total: 3, inserted: 0, updated: 2, unchanged: 1 });
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
      AUDIT,
    );
    expect(counts).toMatchObject({ total: 1, inserted: 1, updated: 0, unchanged: 0 });
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
        AUDIT,
      ),
    ).rejects.toMatchObject({ driverError: { constraint: 'ai_model_prices_input_price_check' } });
    expect(await rows()).toEqual([]);
  });

  it('re-applies an unchanged seed without writing or locking a single row', async () => {
    const seed = await readEmbeddedSeed();
    await repo.upsertDefaultPrices(seed, AUDIT);
    const before = await versions();
    const counts = await repo.upsertDefaultPrices(seed, AUDIT);
    expect(counts).toMatchObject({ inserted: 0, updated: 0, unchanged: before.length, auditId: null });
    // A lock taken by ON CONFLICT DO UPDATE would show as a new xmax even when nothing is updated.
    expect(await versions()).toEqual(before);
  });

  it('is not blocked by a transaction holding row locks when nothing changed, but waits when it must write', async () => {
    await repo.upsertDefaultPrices(
      JSON.stringify([seedRow('a', { input_price: 1 }), seedRow('b', { input_price: 2 })]),
      AUDIT,
    );
    const holder = testClient({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ai_model_prices WHERE source = 'default' FOR UPDATE`);
      // lock_timeout turns a wait for a row lock into an error instead of a hang: the warm
      // re-apply must not wait at all, the changing one must (the lock is really held).
      const applyWithin = (rowsJson: string) =>
        ds.transaction(async (em) => {
          await em.query(`SET LOCAL lock_timeout = '300ms'`);
          return new PriceBookRepository(em).upsertDefaultPrices(rowsJson, AUDIT);
        });
      const warm = await applyWithin(
        JSON.stringify([seedRow('a', { input_price: 1 }), seedRow('b', { input_price: 2 })]),
      );
      expect(warm).toMatchObject({ total: 2, inserted: 0, updated: 0, unchanged: 2 });
      await expect(
        applyWithin(JSON.stringify([seedRow('a', { input_price: 1 }), seedRow('b', { input_price: 3 })])),
      ).rejects.toMatchObject({ driverError: { code: '55P03' } });
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('writes one summary audit entry per sync that changed rows, in the same statement, and none otherwise', async () => {
    const seed = await readEmbeddedSeed();
    const all = JSON.parse(seed) as { provider: string; model: string }[];
    counter.statements = [];
    const cold = await repo.upsertDefaultPrices(seed, { ...AUDIT, requestId: 'req-cold' });
    expect(counter.statements).toHaveLength(1);
    let audits = await syncAudits();
    expect(audits).toHaveLength(1);
    expect(cold.auditId).toEqual(expect.any(String));
    expect(audits[0]).toMatchObject({
      actor_id: null,
      actor: 'system:pricing-worker',
      action: 'write',
      resource_id: 'embedded',
      request_id: 'req-cold',
    });
    expect(audits[0].diff).toMatchObject({ source: 'embedded', inserted: all.length, updated: 0 });
    const listed = Math.min(all.length, SYNC_AUDIT_MODEL_LIMIT);
    expect(audits[0].diff.models).toHaveLength(listed);
    expect(audits[0].diff.models_not_listed).toBe(all.length - listed);
    const sonnet = audits[0].diff.models.find((m) => m.model === 'anthropic/claude-sonnet-4-5');
    expect(sonnet?.before).toBeNull();
    expect(sonnet?.after).toMatchObject({
      input_price: { usd: '$3.00', micros: 3_000_000 },
      output_price: { usd: '$15.00', micros: 15_000_000 },
    });

    await repo.upsertDefaultPrices(seed, AUDIT);
    expect(await syncAudits()).toHaveLength(1);

    const changed = (JSON.parse(seed) as Record<string, unknown>[]).map((r) =>
      r['model'] === 'claude-sonnet-4-5' ? { ...r, input_price: 2_500_000, cache_write_price: null } : r,
    );
    const counts = await repo.upsertDefaultPrices(JSON.stringify(changed), {
      actor: AUDIT.actor,
      source: 'upstream',
      requestId: null,
    });
    expect(counts).toMatchObject({ inserted: 0, updated: 1 });
    audits = await syncAudits();
    expect(audits).toHaveLength(2);
    expect(audits[1]).toMatchObject({ resource_id: 'upstream', request_id: null });
    expect(audits[1].diff).toEqual({
      source: 'upstream',
      inserted: 0,
      updated: 1,
      models_not_listed: 0,
      models: [
        {
          model: 'anthropic/claude-sonnet-4-5',
          before: {
            input_price: { usd: '$3.00', micros: 3_000_000 },
            output_price: { usd: '$15.00', micros: 15_000_000 },
            cache_read_price: { usd: '$0.30', micros: 300_000 },
            cache_write_price: { usd: '$3.75', micros: 3_750_000 },
            tiers: null,
          },
          after: {
            input_price: { usd: '$2.50', micros: 2_500_000 },
            output_price: { usd: '$15.00', micros: 15_000_000 },
            cache_read_price: { usd: '$0.30', micros: 300_000 },
            cache_write_price: null,
            tiers: null,
          },
        },
      ],
    });
  });

  it('keeps the summary entry bounded for a sync that changes thousands of rows', async () => {
    const many = Array.from({ length: 5_000 }, (_, i) =>
      seedRow(`m${String(i).padStart(4, '0')}`, { input_price: i, output_price: 2 * i }),
    );
    const counts = await repo.upsertDefaultPrices(JSON.stringify(many), AUDIT);
    expect(counts).toMatchObject({ total: 5_000, inserted: 5_000 });
    const [audit] = await syncAudits();
    expect(audit.diff.models).toHaveLength(SYNC_AUDIT_MODEL_LIMIT);
    expect(audit.diff.models_not_listed).toBe(5_000 - SYNC_AUDIT_MODEL_LIMIT);
    expect(audit.diff.models[0].model).toBe('acme/m0000');
    const [{ bytes }] = await ds.query<{ bytes: number }[]>(
      `SELECT octet_length(diff::text) AS bytes FROM audit_logs WHERE resource_type = 'ai_model_price_sync'`,
    );
    expect(bytes).toBeLessThan(100_000);
  });

  it('writes no audit entry when the apply fails', async () => {
    await expect(
      repo.upsertDefaultPrices(
        JSON.stringify([seedRow('ok', { input_price: 1 }), seedRow('bad', { input_price: -1 })]),
        AUDIT,
      ),
    ).rejects.toMatchObject({ driverError: { constraint: 'ai_model_prices_input_price_check' } });
    expect(await syncAudits()).toEqual([]);
  });
});
