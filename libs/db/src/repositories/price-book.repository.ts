import { countFor, type Counted } from './paging';
import { q } from './types';
import type { DataSource, EntityManager } from 'typeorm';

export interface SeedApplyCounts {
  total: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

/**
 * Applies the price seed as `default` rows in ONE statement: the whole seed travels as a single
 * jsonb parameter and PostgreSQL expands it with jsonb_array_elements (see
 * docs/decisions/price-seed-single-statement.md).
 *
 * - ON CONFLICT on (provider, model, 'default'): `custom` rows are a different key, never touched.
 * - Every price and the tiers are overwritten, to null too.
 * - The DO UPDATE has a WHERE that skips rows whose prices and tiers are unchanged, so their
 *   updated_at stays put and no dead tuple is written; RETURNING then only yields rows that were
 *   inserted (xmax = 0) or really changed, which gives the counts without a second query.
 * - Rows absent from the seed are not mentioned, hence left alone.
 */
export const UPSERT_DEFAULT_PRICES_SQL = `
WITH seed AS (
  SELECT e->>'provider'                    AS provider,
         e->>'model'                       AS model,
         (e->>'input_price')::bigint       AS input_price,
         (e->>'output_price')::bigint      AS output_price,
         (e->>'cache_read_price')::bigint  AS cache_read_price,
         (e->>'cache_write_price')::bigint AS cache_write_price,
         CASE WHEN jsonb_typeof(e->'tiers') = 'array' THEN e->'tiers' END AS tiers
    FROM jsonb_array_elements($1::jsonb) AS e
), written AS (
  INSERT INTO ai_model_prices AS p
         (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
  SELECT provider, model, 'default', input_price, output_price, cache_read_price, cache_write_price, tiers
    FROM seed
  ON CONFLICT (provider, model, source) DO UPDATE
     SET input_price       = EXCLUDED.input_price,
         output_price      = EXCLUDED.output_price,
         cache_read_price  = EXCLUDED.cache_read_price,
         cache_write_price = EXCLUDED.cache_write_price,
         tiers             = EXCLUDED.tiers,
         updated_at        = now()
   WHERE (p.input_price, p.output_price, p.cache_read_price, p.cache_write_price, p.tiers)
         IS DISTINCT FROM
         (EXCLUDED.input_price, EXCLUDED.output_price, EXCLUDED.cache_read_price,
          EXCLUDED.cache_write_price, EXCLUDED.tiers)
  RETURNING (xmax = 0) AS inserted
)
SELECT (SELECT count(*) FROM seed)::int                   AS total,
       (SELECT count(*) FROM written WHERE inserted)::int     AS inserted,
       (SELECT count(*) FROM written WHERE NOT inserted)::int AS updated`;

export class PriceBookRepository {
  constructor(private readonly db: DataSource | EntityManager) {}

  /** `seedJson` is the seed file's text: a JSON array of seed rows. */
  async upsertDefaultPrices(seedJson: string): Promise<SeedApplyCounts> {
    // Through TypeORM on purpose (not the raw pool): its logger is how the test counts statements.
    const rows = await this.db.query<{ total: number; inserted: number; updated: number }[]>(
      UPSERT_DEFAULT_PRICES_SQL,
      [seedJson],
    );
    const { total, inserted, updated } = rows[0];
    return { total, inserted, updated, unchanged: total - inserted - updated };
  }

  async countDefaultPrices(): Promise<number> {
    const rows = await q<{ n: number }[]>(
      this.db,
      `SELECT count(*)::int AS n FROM ai_model_prices WHERE source = 'default'`,
    );
    return rows[0].n;
  }
}

/** A price row as the API shows it; prices are integer micros per million tokens. */
export interface PriceRow {
  provider: string;
  model: string;
  source: 'default' | 'custom';
  inputPrice: bigint | null;
  outputPrice: bigint | null;
  cacheReadPrice: bigint | null;
  cacheWritePrice: bigint | null;
  tiers: PriceTierRow[] | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface PriceTierRow {
  min_context_tokens: number;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
}

export interface PriceInput {
  inputPrice: bigint | null;
  outputPrice: bigint | null;
  cacheReadPrice: bigint | null;
  cacheWritePrice: bigint | null;
  tiers: PriceTierRow[] | null;
}

interface RawPriceRow {
  provider: string;
  model: string;
  source: 'default' | 'custom';
  inputPrice: string | null;
  outputPrice: string | null;
  cacheReadPrice: string | null;
  cacheWritePrice: string | null;
  tiers: PriceTierRow[] | null;
  createdAt: Date;
  updatedAt: Date;
}

const big = (v: string | null): bigint | null => (v === null ? null : BigInt(v));
const toPrice = (r: RawPriceRow): PriceRow => ({
  ...r,
  inputPrice: big(r.inputPrice),
  outputPrice: big(r.outputPrice),
  cacheReadPrice: big(r.cacheReadPrice),
  cacheWritePrice: big(r.cacheWritePrice),
});
const PRICE_COLUMNS = `provider, model, source, input_price AS "inputPrice", output_price AS "outputPrice",
  cache_read_price AS "cacheReadPrice", cache_write_price AS "cacheWritePrice", tiers,
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const str = (v: bigint | null): string | null => (v === null ? null : v.toString());

export interface PriceFilter {
  provider?: string;
  model?: string;
  source?: 'default' | 'custom';
}

/** Reads and custom writes of the price book (the API's side). */
export class PriceQueryRepository {
  constructor(private readonly db: DataSource | EntityManager) {}

  async list(
    f: PriceFilter,
    page: { limit: number; offset: number },
  ): Promise<{ prices: PriceRow[] } & Counted> {
    const fromWhere = `FROM ai_model_prices WHERE ($1::text IS NULL OR provider = $1)
      AND ($2::text IS NULL OR model = $2) AND ($3::text IS NULL OR source = $3)`;
    const params = [f.provider ?? null, f.model ?? null, f.source ?? null];
    const rows = await q<RawPriceRow[]>(
      this.db,
      `SELECT ${PRICE_COLUMNS} ${fromWhere} ORDER BY provider, model, source LIMIT $4 OFFSET $5`,
      [...params, page.limit, page.offset],
    );
    return { prices: rows.map(toPrice), ...(await countFor(this.db, page, rows.length, fromWhere, params)) };
  }

  /** The effective price: the custom row when there is one, else the default row. */
  async getEffective(provider: string, model: string): Promise<PriceRow | null> {
    const rows = await q<RawPriceRow[]>(
      this.db,
      `SELECT ${PRICE_COLUMNS} FROM ai_model_prices WHERE provider = $1 AND model = $2
        ORDER BY (source = 'custom') DESC LIMIT 1`,
      [provider, model],
    );
    return rows[0] ? toPrice(rows[0]) : null;
  }

  async getCustom(provider: string, model: string): Promise<PriceRow | null> {
    const rows = await q<RawPriceRow[]>(
      this.db,
      `SELECT ${PRICE_COLUMNS} FROM ai_model_prices WHERE provider = $1 AND model = $2 AND source = 'custom' FOR UPDATE`,
      [provider, model],
    );
    return rows[0] ? toPrice(rows[0]) : null;
  }

  async upsertCustom(
    provider: string,
    model: string,
    p: PriceInput,
  ): Promise<{ before: PriceRow | null; after: PriceRow }> {
    // Serializes writers of this one custom price for the rest of the transaction, so the
    // before/after pair (and so create vs write in the audit log) is exact even when two PUTs race.
    await q(
      this.db,
      `SELECT pg_advisory_xact_lock(hashtextextended('ai_model_prices/custom/' || $1 || '/' || $2, 0))`,
      [provider, model],
    );
    const before = await this.getCustom(provider, model);
    const rows = await q<RawPriceRow[]>(
      this.db,
      `INSERT INTO ai_model_prices AS p (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
       VALUES ($1, $2, 'custom', $3, $4, $5, $6, $7::jsonb)
       ON CONFLICT (provider, model, source) DO UPDATE
         SET input_price = EXCLUDED.input_price, output_price = EXCLUDED.output_price,
             cache_read_price = EXCLUDED.cache_read_price, cache_write_price = EXCLUDED.cache_write_price,
             tiers = EXCLUDED.tiers,
             updated_at = CASE WHEN (p.input_price, p.output_price, p.cache_read_price, p.cache_write_price, p.tiers)
                                    IS DISTINCT FROM (EXCLUDED.input_price, EXCLUDED.output_price,
                                    EXCLUDED.cache_read_price, EXCLUDED.cache_write_price, EXCLUDED.tiers)
                               THEN now() ELSE p.updated_at END
       RETURNING ${PRICE_COLUMNS}`,
      [
        provider,
        model,
        str(p.inputPrice),
        str(p.outputPrice),
        str(p.cacheReadPrice),
        str(p.cacheWritePrice),
        p.tiers === null ? null : JSON.stringify(p.tiers),
      ],
    );
    return { before, after: toPrice(rows[0]) };
  }

  async deleteCustom(provider: string, model: string): Promise<PriceRow | null> {
    const rows = await q<RawPriceRow[]>(
      this.db,
      `DELETE FROM ai_model_prices WHERE provider = $1 AND model = $2 AND source = 'custom' RETURNING ${PRICE_COLUMNS}`,
      [provider, model],
    );
    return rows[0] ? toPrice(rows[0]) : null;
  }
}
