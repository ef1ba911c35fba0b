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
    const rows = await this.db.query<{ total: number; inserted: number; updated: number }[]>(
      UPSERT_DEFAULT_PRICES_SQL,
      [seedJson],
    );
    const { total, inserted, updated } = rows[0];
    return { total, inserted, updated, unchanged: total - inserted - updated };
  }

  async countDefaultPrices(): Promise<number> {
    const rows = await this.db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM ai_model_prices WHERE source = 'default'`,
    );
    return rows[0].n;
  }
}
