import { countFor, type Counted } from './paging';
import { q, type Page } from './types';
import type { DataSource, EntityManager } from 'typeorm';

export interface SeedApplyCounts {
  total: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

/** Who applied a seed and why: the summary audit entry of a sync that changed rows. */
export interface SeedApplyAudit {
  /** The system actor's name (`system:pricing-worker`). */
  actor: string;
  /** `embedded` or `upstream`; also the entry's resource_id. */
  source: string;
  requestId: string | null;
}

/** How many changed models the summary audit entry lists in full; the rest are only counted. */
export const SYNC_AUDIT_MODEL_LIMIT = 100;

/** A price for people next to its micros, like the other audit diffs; null stays null. */
const money = (col: string): string =>
  `CASE WHEN ${col} IS NULL THEN NULL ELSE jsonb_build_object('usd', format_usd(${col}), 'micros', ${col}) END`;
const prices = (prefix: string): string =>
  `jsonb_build_object('input_price', ${money(`${prefix}input_price`)}, 'output_price', ${money(`${prefix}output_price`)},
     'cache_read_price', ${money(`${prefix}cache_read_price`)}, 'cache_write_price', ${money(`${prefix}cache_write_price`)},
     'tiers', ${prefix}tiers)`;

/**
 * Applies the price seed as `default` rows in ONE statement: the whole seed travels as a single
 * jsonb parameter and PostgreSQL expands it with jsonb_array_elements (see
 * docs/decisions/price-seed-single-statement.md).
 *
 * - `changed` compares the seed with the stored rows by a plain read (no lock) and keeps only the
 *   rows that are new or differ. Only those reach the INSERT: ON CONFLICT DO UPDATE locks every
 *   conflicting row it meets, even when its WHERE then skips the update, so feeding it the whole
 *   seed made an unchanged re-apply lock (and dirty) all 4,894 rows, wait behind any transaction
 *   holding one of them, and cost as much as the cold apply.
 * - ON CONFLICT on (provider, model, 'default'): `custom` rows are a different key, never touched.
 *   Its WHERE repeats the comparison against the row as locked, so a row another sync changed
 *   since our snapshot is still written only when it really differs.
 * - Every price and the tiers are overwritten, to null too; updated_at moves only on a change.
 * - Rows absent from the seed are not mentioned, hence left alone.
 * - `audit` writes the sync's one summary entry (CONTRACT 1.5) in the same statement, hence the
 *   same transaction, and only when a row was written. Its diff lists the first
 *   SYNC_AUDIT_MODEL_LIMIT changed models (by provider, model) with their prices before and after
 *   (`before` null for a new model; `before` is as of the statement's snapshot) and counts the
 *   rest in `models_not_listed`, so an upstream sync of thousands of rows stays a small entry;
 *   every single price change is kept by the price history.
 * - RETURNING yields only rows inserted (xmax = 0) or really changed, which gives the counts
 *   without a second query.
 * - `who` hands the actor and the request id to the price history trigger (migration
 *   1765000000000) through set_config, local to the transaction. `changed` filters on it, so it is
 *   evaluated (once, as an InitPlan) before the first row can reach the INSERT; the trigger is a
 *   statement-level AFTER trigger, which runs only when the statement is done. No request id keeps
 *   whatever the transaction set.
 *
 * $1 seed jsonb, $2 actor, $3 source, $4 request id.
 */
export const UPSERT_DEFAULT_PRICES_SQL = `
WITH who AS MATERIALIZED (
  SELECT set_config('aigov.actor', $2, true) IS NOT NULL
     AND set_config('aigov.request_id', coalesce($4, current_setting('aigov.request_id', true), ''), true) IS NOT NULL
         AS ok
), seed AS (
  SELECT e->>'provider'                    AS provider,
         e->>'model'                       AS model,
         (e->>'input_price')::bigint       AS input_price,
         (e->>'output_price')::bigint      AS output_price,
         (e->>'cache_read_price')::bigint  AS cache_read_price,
         (e->>'cache_write_price')::bigint AS cache_write_price,
         CASE WHEN jsonb_typeof(e->'tiers') = 'array' THEN e->'tiers' END AS tiers
    FROM jsonb_array_elements($1::jsonb) AS e
), changed AS (
  SELECT s.*, p.provider IS NOT NULL AS existed,
         p.input_price AS old_input_price, p.output_price AS old_output_price,
         p.cache_read_price AS old_cache_read_price, p.cache_write_price AS old_cache_write_price,
         p.tiers AS old_tiers
    FROM seed s
    LEFT JOIN ai_model_prices p ON p.provider = s.provider AND p.model = s.model AND p.source = 'default'
   WHERE (SELECT ok FROM who)
     AND (p.provider IS NULL
      OR (p.input_price, p.output_price, p.cache_read_price, p.cache_write_price, p.tiers)
         IS DISTINCT FROM
         (s.input_price, s.output_price, s.cache_read_price, s.cache_write_price, s.tiers))
), written AS (
  INSERT INTO ai_model_prices AS p
         (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
  SELECT provider, model, 'default', input_price, output_price, cache_read_price, cache_write_price, tiers
    FROM changed
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
  RETURNING p.provider, p.model, (xmax = 0) AS inserted
), counts AS (
  SELECT (SELECT count(*) FROM seed)::int                   AS total,
         (SELECT count(*) FROM written WHERE inserted)::int     AS inserted,
         (SELECT count(*) FROM written WHERE NOT inserted)::int AS updated
), listed AS (
  -- The first models written, with what was written (the seed's values, as in \`changed\`).
  SELECT c.provider, c.model,
         CASE WHEN c.existed THEN ${prices('c.old_')} END AS before,
         ${prices('c.')} AS after
    FROM (SELECT provider, model FROM written ORDER BY provider, model LIMIT ${SYNC_AUDIT_MODEL_LIMIT}) w
    JOIN changed c ON c.provider = w.provider AND c.model = w.model
), audit AS (
  INSERT INTO audit_logs (actor, action, resource_type, resource_id, diff, request_id)
  SELECT $2, 'write', 'ai_model_price_sync', $3,
         jsonb_build_object(
           'source', $3::text, 'inserted', counts.inserted, 'updated', counts.updated,
           'models', (SELECT jsonb_agg(jsonb_build_object('model', l.provider || '/' || l.model,
                                                          'before', l.before, 'after', l.after)
                                       ORDER BY l.provider, l.model)
                        FROM listed l),
           'models_not_listed', greatest(counts.inserted + counts.updated - ${SYNC_AUDIT_MODEL_LIMIT}, 0)),
         $4
    FROM counts
   WHERE EXISTS (SELECT 1 FROM written)
  RETURNING id
)
SELECT counts.*, (SELECT id FROM audit) AS audit_id FROM counts`;

export class PriceBookRepository {
  constructor(private readonly db: DataSource | EntityManager) {}

  /**
   * `seedJson` is the seed file's text: a JSON array of seed rows. Returns the counts and the id of
   * the summary audit entry (null when nothing changed, and then nothing was written or locked).
   */
  async upsertDefaultPrices(
    seedJson: string,
    audit: SeedApplyAudit,
  ): Promise<SeedApplyCounts & { auditId: string | null }> {
    // Through TypeORM on purpose (not the statement pool): its logger is how the test counts statements.
    const rows = await this.db.query<
      { total: number; inserted: number; updated: number; audit_id: string | null }[]
    >(UPSERT_DEFAULT_PRICES_SQL, [seedJson, audit.actor, audit.source, audit.requestId]);
    const { total, inserted, updated, audit_id: auditId } = rows[0];
    return { total, inserted, updated, unchanged: total - inserted - updated, auditId };
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

  /** `actor`: who the price history records the change as (see ACTOR_SQL). */
  async upsertCustom(
    provider: string,
    model: string,
    p: PriceInput,
    actor: string,
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
      `WITH ${ACTOR_SQL('$8')}
       INSERT INTO ai_model_prices AS p (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
       SELECT $1, $2, 'custom', $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::jsonb FROM who WHERE who.ok
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
        actor,
      ],
    );
    return { before, after: toPrice(rows[0]) };
  }

  async deleteCustom(provider: string, model: string, actor: string): Promise<PriceRow | null> {
    const rows = await q<RawPriceRow[]>(
      this.db,
      `WITH ${ACTOR_SQL('$3')}
       DELETE FROM ai_model_prices AS p USING who
        WHERE who.ok AND p.provider = $1 AND p.model = $2 AND p.source = 'custom'
       RETURNING ${PRICE_COLUMNS}`,
      [provider, model, actor],
    );
    return rows[0] ? toPrice(rows[0]) : null;
  }

  /** One model's price history (both sources), newest first. */
  async listChanges(
    provider: string,
    model: string,
    page: Page,
  ): Promise<{ changes: PriceChangeRow[] } & Counted> {
    const fromWhere = 'FROM ai_model_price_changes WHERE provider = $1 AND model = $2';
    const params = [provider, model];
    const rows = await q<PriceChangeRow[]>(
      this.db,
      `SELECT source, changed_at AS "changedAt", actor, request_id AS "requestId", before, after
         ${fromWhere} ORDER BY changed_at DESC, id DESC LIMIT $3 OFFSET $4`,
      [...params, page.limit, page.offset],
    );
    return { changes: rows, ...(await countFor(this.db, page, rows.length, fromWhere, params)) };
  }

  /** Whether the model has a price row of either source. */
  async exists(provider: string, model: string): Promise<boolean> {
    const rows = await q<{ found: boolean }[]>(
      this.db,
      'SELECT EXISTS (SELECT 1 FROM ai_model_prices WHERE provider = $1 AND model = $2) AS found',
      [provider, model],
    );
    return rows[0].found;
  }
}

/**
 * A CTE `who(ok)` that hands the actor to the price history trigger (set_config, local to the
 * transaction). The statement takes its row from `who` (or filters on it), so the setting is made
 * before any row is written; the trigger runs after the statement.
 */
const ACTOR_SQL = (param: string): string =>
  `who AS MATERIALIZED (SELECT set_config('aigov.actor', ${param}, true) IS NOT NULL AS ok)`;

/** The prices and tiers of a row in the price history; prices are integer micros per million tokens. */
export interface PriceState {
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
  tiers: PriceTierRow[] | null;
}

/** One change of a price row: `before` null for an insert, `after` null for a delete. */
export interface PriceChangeRow {
  source: 'default' | 'custom';
  changedAt: Date;
  actor: string;
  requestId: string | null;
  before: PriceState | null;
  after: PriceState | null;
}
