// The three ways of applying a price seed as `default` rows that the design note compares
// (docs/decisions/price-seed-single-statement.md). Only the first is production code; the others exist
// here so the choice rests on measured numbers rather than on the note's reasoning alone.
import { PriceBookRepository, type SeedApplyCounts } from '@aigov/db';
import type { QueryRunner } from 'typeorm';

export type ApproachName = 'single statement' | 'per-row loop' | 'unnest arrays';

/**
 * `prepare` is the JS-side work (parsing, flattening) and returns the database part, so the
 * benchmark can time the whole apply and, separately, how much of it is JS.
 */
export interface Approach {
  readonly name: ApproachName;
  /** Statements sent to the server for one apply of `rows` rows. */
  statementCount(rows: number): number;
  prepare(seedJson: string): (qr: QueryRunner) => Promise<SeedApplyCounts>;
}

/** One seed row ready to be bound: prices as BigInt so no money value passes through a float. */
export interface BoundSeedRow {
  provider: string;
  model: string;
  inputPrice: bigint | null;
  outputPrice: bigint | null;
  cacheReadPrice: bigint | null;
  cacheWritePrice: bigint | null;
  /** JSON text of the tiers array, or null; mirrors the single statement's jsonb_typeof check. */
  tiersJson: string | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireText(row: Record<string, unknown>, key: string, at: number): string {
  const value = row[key];
  if (typeof value !== 'string') throw new Error(`seed row ${at}: ${key} must be a string`);
  return value;
}

/**
 * JSON.parse gives a double; the seed only holds integers far below 2^53, so checking
 * isSafeInteger proves the double is exact before it becomes a BigInt. Anything else would make
 * the `::bigint` cast of the single statement fail too, so it is an error here as well.
 */
function requirePrice(row: Record<string, unknown>, key: string, at: number): bigint | null {
  const value = row[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(
      `seed row ${at}: ${key} must be a non-negative integer or null, got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(value);
}

/** Parses the seed file's text into bindable rows (what approaches 2 and 3 must do in JS). */
export function parseSeedRows(seedJson: string): BoundSeedRow[] {
  const parsed: unknown = JSON.parse(seedJson);
  if (!Array.isArray(parsed)) throw new Error('the seed must be a JSON array');
  return parsed.map((entry: unknown, at) => {
    if (!isRecord(entry)) throw new Error(`seed row ${at} is not an object`);
    const tiers = entry['tiers'];
    return {
      provider: requireText(entry, 'provider', at),
      model: requireText(entry, 'model', at),
      inputPrice: requirePrice(entry, 'input_price', at),
      outputPrice: requirePrice(entry, 'output_price', at),
      cacheReadPrice: requirePrice(entry, 'cache_read_price', at),
      cacheWritePrice: requirePrice(entry, 'cache_write_price', at),
      tiersJson: Array.isArray(tiers) ? JSON.stringify(tiers) : null,
    };
  });
}

/**
 * The conflict handling of UPSERT_DEFAULT_PRICES_SQL, repeated verbatim so the other two
 * approaches do exactly the same work per row: overwrite everything, but skip rows that did not
 * change (no dead tuple, updated_at stays) and return only inserted or changed rows.
 */
const ON_CONFLICT_SQL = `
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
  RETURNING (xmax = 0) AS inserted`;

export const UPSERT_ONE_PRICE_SQL = `
INSERT INTO ai_model_prices AS p
       (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
VALUES ($1, $2, 'default', $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::jsonb)
${ON_CONFLICT_SQL}`;

/**
 * Multi-argument unnest in FROM zips the arrays into rows. node-postgres writes a JS null
 * element as NULL in the array literal, so no sentinel such as -1 is needed (the design note's
 * objection applied to lib/pq, not to this driver).
 */
export const UPSERT_PRICES_UNNEST_SQL = `
WITH seed AS (
  SELECT *
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::jsonb[])
      AS s(provider, model, input_price, output_price, cache_read_price, cache_write_price, tiers)
), written AS (
  INSERT INTO ai_model_prices AS p
         (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
  SELECT provider, model, 'default', input_price, output_price, cache_read_price, cache_write_price, tiers
    FROM seed
  ${ON_CONFLICT_SQL}
)
SELECT (SELECT count(*) FROM seed)::int                       AS total,
       (SELECT count(*) FROM written WHERE inserted)::int     AS inserted,
       (SELECT count(*) FROM written WHERE NOT inserted)::int AS updated`;

export const singleStatement: Approach = {
  name: 'single statement',
  statementCount: () => 1,
  // The production path unchanged: PriceBookRepository sends UPSERT_DEFAULT_PRICES_SQL with the
  // seed text as its one parameter, here bound to the benchmark's connection.
  prepare: (seedJson) => (qr) => new PriceBookRepository(qr.manager).upsertDefaultPrices(seedJson),
};

export const perRowLoop: Approach = {
  name: 'per-row loop',
  // BEGIN and COMMIT on top of one INSERT per row.
  statementCount: (rows) => rows + 2,
  prepare: (seedJson) => {
    const rows = parseSeedRows(seedJson);
    return async (qr) => {
      let inserted = 0;
      let updated = 0;
      // One transaction, as a real implementation would use, so a failure leaves no half seed.
      await qr.startTransaction();
      try {
        for (const r of rows) {
          const written = (await qr.query(UPSERT_ONE_PRICE_SQL, [
            r.provider,
            r.model,
            r.inputPrice,
            r.outputPrice,
            r.cacheReadPrice,
            r.cacheWritePrice,
            r.tiersJson,
          ])) as { inserted: boolean }[];
          for (const w of written) {
            if (w.inserted) inserted += 1;
            else updated += 1;
          }
        }
        await qr.commitTransaction();
      } catch (err) {
        if (qr.isTransactionActive) await qr.rollbackTransaction();
        throw err;
      }
      return { total: rows.length, inserted, updated, unchanged: rows.length - inserted - updated };
    };
  },
};

export const unnestArrays: Approach = {
  name: 'unnest arrays',
  statementCount: () => 1,
  prepare: (seedJson) => {
    const rows = parseSeedRows(seedJson);
    const params = [
      rows.map((r) => r.provider),
      rows.map((r) => r.model),
      rows.map((r) => r.inputPrice),
      rows.map((r) => r.outputPrice),
      rows.map((r) => r.cacheReadPrice),
      rows.map((r) => r.cacheWritePrice),
      rows.map((r) => r.tiersJson),
    ];
    return async (qr) => {
      const result = (await qr.query(UPSERT_PRICES_UNNEST_SQL, params)) as {
        total: number;
        inserted: number;
        updated: number;
      }[];
      const { total, inserted, updated } = result[0];
      return { total, inserted, updated, unchanged: total - inserted - updated };
    };
  },
};

export const APPROACHES: readonly Approach[] = [singleStatement, perRowLoop, unnestArrays];
