import { PRICING_WORKER_ACTOR } from '@aigov/contracts';
import {
  PriceBookRepository,
  PriceQueryRepository,
  createDataSource,
  type PriceInput,
  type SeedApplyAudit,
} from '@aigov/db';
import { createTestDatabase, uniqueName, type TestDatabase } from '@aigov/testing';
import type { DataSource } from 'typeorm';

// The price history triggers (migrations/1765000000000-price-history.ts) on real PostgreSQL.

interface ChangeRow {
  provider: string;
  model: string;
  source: string;
  actor: string;
  request_id: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

const WORKER = PRICING_WORKER_ACTOR.name;
const state = (p: Partial<Record<string, unknown>>) => ({
  input_price: null,
  output_price: null,
  cache_read_price: null,
  cache_write_price: null,
  tiers: null,
  ...p,
});
const input = (inputPrice: bigint, tiers: PriceInput['tiers'] = null): PriceInput => ({
  inputPrice,
  outputPrice: 7n,
  cacheReadPrice: null,
  cacheWritePrice: null,
  tiers,
});

describe('price history (real PostgreSQL)', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let book: PriceBookRepository;
  let prices: PriceQueryRepository;

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createDataSource({ url: db.url, poolSize: 3 });
    await ds.initialize();
    book = new PriceBookRepository(ds);
    prices = new PriceQueryRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  /** The changes of one provider, oldest first (by id: the order they were written). */
  const changes = (provider: string): Promise<ChangeRow[]> =>
    ds.query<ChangeRow[]>(
      `SELECT provider, model, source, actor, request_id, before, after FROM ai_model_price_changes
        WHERE provider = $1 ORDER BY id`,
      [provider],
    );

  /** As the API does it: one transaction that first hands over the request id. */
  const asRequest = <T>(requestId: string, fn: (r: PriceQueryRepository) => Promise<T>): Promise<T> =>
    ds.transaction(async (em) => {
      await em.query(`SELECT set_config('aigov.request_id', $1, true)`, [requestId]);
      return fn(new PriceQueryRepository(em));
    });

  it('records a custom price set, changed, set again unchanged and deleted, with the user as actor', async () => {
    const provider = uniqueName('p');
    await asRequest('req-1', (r) => r.upsertCustom(provider, 'm', input(5n), 'alice'));
    await asRequest('req-2', (r) =>
      r.upsertCustom(
        provider,
        'm',
        input(6n, [
          {
            min_context_tokens: 200_000,
            input_price: 9,
            output_price: null,
            cache_read_price: null,
            cache_write_price: null,
          },
        ]),
        'bob',
      ),
    );
    const afterChange = await changes(provider);
    // The same values again: the row is rewritten (ON CONFLICT DO UPDATE) but nothing is recorded.
    await asRequest('req-3', (r) =>
      r.upsertCustom(
        provider,
        'm',
        input(6n, [
          {
            min_context_tokens: 200_000,
            input_price: 9,
            output_price: null,
            cache_read_price: null,
            cache_write_price: null,
          },
        ]),
        'carol',
      ),
    );
    expect(await changes(provider)).toEqual(afterChange);
    expect(await asRequest('req-4', (r) => r.deleteCustom(provider, 'm', 'dave'))).not.toBeNull();

    const tier = {
      min_context_tokens: 200_000,
      input_price: 9,
      output_price: null,
      cache_read_price: null,
      cache_write_price: null,
    };
    expect(await changes(provider)).toEqual([
      {
        provider,
        model: 'm',
        source: 'custom',
        actor: 'alice',
        request_id: 'req-1',
        before: null,
        after: state({ input_price: 5, output_price: 7 }),
      },
      {
        provider,
        model: 'm',
        source: 'custom',
        actor: 'bob',
        request_id: 'req-2',
        before: state({ input_price: 5, output_price: 7 }),
        after: state({ input_price: 6, output_price: 7, tiers: [tier] }),
      },
      {
        provider,
        model: 'm',
        source: 'custom',
        actor: 'dave',
        request_id: 'req-4',
        before: state({ input_price: 6, output_price: 7, tiers: [tier] }),
        after: null,
      },
    ]);
  });

  it('a change whose transaction rolls back leaves no history', async () => {
    const provider = uniqueName('p');
    await expect(
      asRequest('req-rb', async (r) => {
        await r.upsertCustom(provider, 'm', input(5n), 'alice');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await changes(provider)).toEqual([]);
  });

  it('records changes made by hand in SQL, as system:database, and only real ones', async () => {
    const provider = uniqueName('p');
    await ds.query(
      `INSERT INTO ai_model_prices (provider, model, source, input_price) VALUES ($1, 'a', 'default', 1), ($1, 'b', 'default', 2)`,
      [provider],
    );
    // updated_at alone is no change; b's price is.
    await ds.query(`UPDATE ai_model_prices SET updated_at = now() WHERE provider = $1 AND model = 'a'`, [
      provider,
    ]);
    await ds.query(
      `UPDATE ai_model_prices SET input_price = CASE model WHEN 'b' THEN 3 ELSE input_price END WHERE provider = $1`,
      [provider],
    );
    // A row moved to another key: the old key's row is gone, the new key's appears.
    await ds.query(`UPDATE ai_model_prices SET model = 'c' WHERE provider = $1 AND model = 'a'`, [provider]);
    await ds.query(`DELETE FROM ai_model_prices WHERE provider = $1`, [provider]);

    const got = (await changes(provider)).map((c) => ({
      what: `${c.model} ${JSON.stringify(c.before?.input_price ?? null)} -> ${JSON.stringify(c.after?.input_price ?? null)}`,
      actor: c.actor,
      request_id: c.request_id,
    }));
    expect(got).toEqual(
      [
        'a null -> 1',
        'b null -> 2',
        'b 2 -> 3',
        'a 1 -> null',
        'c null -> 1',
        'b 3 -> null',
        'c 1 -> null',
      ].map((what) => ({ what, actor: 'system:database', request_id: null })),
    );
  });

  it('two syncs with a changed price: every row once, then only the change, as the pricing worker', async () => {
    const provider = uniqueName('p');
    const seed = (prices: Record<string, number>) =>
      JSON.stringify(
        Object.entries(prices).map(([model, p]) => ({
          provider,
          model,
          input_price: p,
          output_price: null,
          cache_read_price: null,
          cache_write_price: null,
          tiers: null,
        })),
      );
    const audit = (requestId: string | null): SeedApplyAudit => ({
      actor: WORKER,
      source: 'upstream',
      requestId,
    });

    expect(await book.upsertDefaultPrices(seed({ a: 1, b: 2, c: 3 }), audit('sync-1'))).toMatchObject({
      inserted: 3,
    });
    // A sync inside a transaction that already named someone else (and a request id): the
    // statement's own setting is the one the trigger reads.
    await ds.transaction(async (em) => {
      await em.query(
        `SELECT set_config('aigov.actor', 'mallory', true), set_config('aigov.request_id', 'outer', true)`,
      );
      const counts = await new PriceBookRepository(em).upsertDefaultPrices(
        seed({ a: 1, b: 20, c: 3, d: 4 }),
        audit(null),
      );
      expect(counts).toMatchObject({ inserted: 1, updated: 1, unchanged: 2 });
    });
    // The setting is local to the transaction: a later change by hand on the pool is not the worker's.
    await ds.query(`UPDATE ai_model_prices SET input_price = 5 WHERE provider = $1 AND model = 'a'`, [
      provider,
    ]);

    const got = (await changes(provider)).map(
      (c) =>
        `${c.actor} ${c.request_id} ${c.model} ${JSON.stringify(c.before?.input_price ?? null)} -> ${JSON.stringify(c.after?.input_price ?? null)}`,
    );
    expect(got).toEqual([
      `${WORKER} sync-1 a null -> 1`,
      `${WORKER} sync-1 b null -> 2`,
      `${WORKER} sync-1 c null -> 3`,
      // No request id given: the transaction's stays.
      `${WORKER} outer b 2 -> 20`,
      `${WORKER} outer d null -> 4`,
      'system:database null a 1 -> 5',
    ]);
  });

  it('gives every change of one sync one time', async () => {
    const provider = uniqueName('p');
    const rows = Array.from({ length: 50 }, (_, i) => ({
      provider,
      model: `m${i}`,
      input_price: i,
      output_price: null,
      cache_read_price: null,
      cache_write_price: null,
      tiers: null,
    }));
    await book.upsertDefaultPrices(JSON.stringify(rows), {
      actor: WORKER,
      source: 'upstream',
      requestId: null,
    });
    const times = await ds.query<{ n: number; distinct_times: number }[]>(
      `SELECT count(*)::int AS n, count(DISTINCT changed_at)::int AS distinct_times
         FROM ai_model_price_changes WHERE provider = $1`,
      [provider],
    );
    expect(times).toEqual([{ n: 50, distinct_times: 1 }]);
  });

  it('orders changes of one row as they were made, when a transaction that began earlier writes later', async () => {
    const provider = uniqueName('p');
    const early = ds.createQueryRunner();
    const late = ds.createQueryRunner();
    try {
      await early.startTransaction();
      await early.query('SELECT 1'); // its now() is fixed from here
      await new Promise((r) => setTimeout(r, 20));
      await late.startTransaction();
      await new PriceQueryRepository(late.manager).upsertCustom(provider, 'm', input(1n), 'late');
      await late.commitTransaction();
      // The row exists and is unlocked now; the earlier transaction changes it last.
      await new PriceQueryRepository(early.manager).upsertCustom(provider, 'm', input(2n), 'early');
      await early.commitTransaction();
    } finally {
      await early.release();
      await late.release();
    }
    const listed = await prices.listChanges(provider, 'm', { limit: 10, offset: 0 });
    // Newest first: the change in force now (input 2) is the first, though its transaction began first.
    expect(listed.changes.map((c) => [c.actor, c.after?.input_price])).toEqual([
      ['early', 2],
      ['late', 1],
    ]);
    const [current] = await ds.query<{ updated_at: Date }[]>(
      `SELECT updated_at FROM ai_model_prices WHERE provider = $1`,
      [provider],
    );
    // updated_at (now()) tells the other story, which is why the history does not use it.
    expect(current.updated_at.getTime()).toBeLessThan(listed.changes[1].changedAt.getTime());
  });

  it('lists one model newest first, with both sources, paged and counted', async () => {
    const provider = uniqueName('p');
    await book.upsertDefaultPrices(
      JSON.stringify([
        {
          provider,
          model: 'x/y:z',
          input_price: 1,
          output_price: null,
          cache_read_price: null,
          cache_write_price: null,
          tiers: null,
        },
      ]),
      { actor: WORKER, source: 'embedded', requestId: null },
    );
    // Two changes in one transaction: listed in the order they were made.
    await ds.transaction(async (em) => {
      const r = new PriceQueryRepository(em);
      await r.upsertCustom(provider, 'x/y:z', input(2n), 'alice');
      await r.upsertCustom(provider, 'x/y:z', input(3n), 'alice');
    });
    await prices.deleteCustom(provider, 'x/y:z', 'bob');

    const all = await prices.listChanges(provider, 'x/y:z', { limit: 10, offset: 0 });
    expect(all.count).toBe(4);
    expect(
      all.changes.map((c) => [
        c.source,
        c.actor,
        c.before?.input_price ?? null,
        c.after?.input_price ?? null,
      ]),
    ).toEqual([
      ['custom', 'bob', 3, null],
      ['custom', 'alice', 2, 3],
      ['custom', 'alice', null, 2],
      ['default', WORKER, null, 1],
    ]);
    const times = all.changes.map((c) => c.changedAt.getTime());
    expect([...times].sort((a, b) => b - a)).toEqual(times);

    const second = await prices.listChanges(provider, 'x/y:z', { limit: 2, offset: 2 });
    expect(second).toMatchObject({ count: 4, countCapped: false });
    expect(second.changes.map((c) => c.actor)).toEqual(['alice', WORKER]);
    expect(await prices.listChanges(provider, 'x/y', { limit: 10, offset: 0 })).toEqual({
      changes: [],
      count: 0,
      countCapped: false,
    });
    expect(await prices.exists(provider, 'x/y:z')).toBe(true);
    expect(await prices.exists(provider, 'x/y')).toBe(false);
  });

  it('the listing is served by its index, in its order', async () => {
    // On a small table the planner may prefer a scan; with scans off the index must do it all.
    const plan = await ds.transaction(async (em) => {
      await em.query('SET LOCAL enable_seqscan = off');
      return em.query<{ 'QUERY PLAN': string }[]>(
        `EXPLAIN SELECT * FROM ai_model_price_changes WHERE provider = 'p' AND model = 'm'
          ORDER BY changed_at DESC, id DESC LIMIT 10`,
      );
    });
    const text = plan.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toContain('ai_model_price_changes_model_idx');
    expect(text).not.toContain('Sort');
  });
});
