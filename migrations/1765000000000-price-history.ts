import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The price history (CONTRACT 2.4, docs/decisions/price-history.md): every insert, real change
 * (a price or the tiers differ) and delete of an `ai_model_prices` row, whoever makes it, so a past
 * charge can be explained with the price in force at the time.
 *
 * - Written by triggers, so no writer (the seed statement, a custom PUT, psql by hand) can forget
 *   it, and in the writer's transaction, so a rolled back change leaves no history.
 * - Statement-level AFTER triggers with transition tables: one INSERT ... SELECT per statement
 *   rather than one trigger call per row, which matters for an upstream sync of ~4,900 rows.
 * - `actor` comes from the transaction setting `aigov.actor` (the seed statement and the custom
 *   price statements set it themselves, in the same statement); unset, the change is still
 *   recorded, as `system:database`. `request_id` from `aigov.request_id`, like the cascade audit.
 * - `changed_at` is clock_timestamp() when the trigger runs (the statement's end), once per
 *   statement, not now() (the transaction's start): writers of one row are serialized by its row
 *   lock, so the time of the write is in the order of the changes, while a transaction that began
 *   earlier can write after one that began later. Every change of one sync shares one time; the
 *   changes of one transaction keep their order by id.
 * - `before`/`after`: the four prices (integer micros per million tokens) and the tiers; null when
 *   the row did not exist / no longer exists. Only prices and tiers count as a change: an update
 *   that rewrites the same values (a custom PUT repeated) records nothing.
 * - An UPDATE is paired old/new by the key, so one that moves a row to another key shows as the
 *   old key deleted and the new key inserted.
 * - TRUNCATE is not recorded (nothing in aigov truncates the price book; it is an operator's
 *   reset).
 */
export class PriceHistory1765000000000 implements MigrationInterface {
  name = 'PriceHistory1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE ai_model_price_changes (
        id         bigserial   NOT NULL,
        provider   text        NOT NULL,
        model      text        NOT NULL,
        source     text        NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        actor      text        NOT NULL,
        request_id text,
        before     jsonb,
        after      jsonb,
        CONSTRAINT ai_model_price_changes_pkey PRIMARY KEY (id),
        CONSTRAINT ai_model_price_changes_source_check CHECK (source IN ('default', 'custom')),
        CONSTRAINT ai_model_price_changes_change_check CHECK (before IS NOT NULL OR after IS NOT NULL)
      )`);
    // GET .../{provider}/{model}/history: one model's changes, newest first.
    await q.query(`
      CREATE INDEX ai_model_price_changes_model_idx
          ON ai_model_price_changes (provider, model, changed_at DESC, id DESC)`);
    await q.query(`
      CREATE FUNCTION ai_model_price_state(input_price bigint, output_price bigint,
                                           cache_read_price bigint, cache_write_price bigint,
                                           tiers jsonb)
      RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
        SELECT jsonb_build_object('input_price', input_price, 'output_price', output_price,
                                  'cache_read_price', cache_read_price,
                                  'cache_write_price', cache_write_price, 'tiers', tiers)
      $$`);
    await q.query(`
      CREATE FUNCTION ai_model_prices_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        who text := coalesce(nullif(current_setting('aigov.actor', true), ''), 'system:database');
        req text := nullif(current_setting('aigov.request_id', true), '');
        stamp timestamptz := clock_timestamp();
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO ai_model_price_changes (provider, model, source, changed_at, actor, request_id, before, after)
          SELECT n.provider, n.model, n.source, stamp, who, req, NULL,
                 ai_model_price_state(n.input_price, n.output_price, n.cache_read_price,
                                      n.cache_write_price, n.tiers)
            FROM new_prices n
           ORDER BY n.provider, n.model, n.source;
        ELSIF TG_OP = 'UPDATE' THEN
          INSERT INTO ai_model_price_changes (provider, model, source, changed_at, actor, request_id, before, after)
          SELECT coalesce(n.provider, o.provider), coalesce(n.model, o.model), coalesce(n.source, o.source),
                 stamp, who, req,
                 CASE WHEN o.provider IS NOT NULL THEN
                   ai_model_price_state(o.input_price, o.output_price, o.cache_read_price,
                                        o.cache_write_price, o.tiers) END,
                 CASE WHEN n.provider IS NOT NULL THEN
                   ai_model_price_state(n.input_price, n.output_price, n.cache_read_price,
                                        n.cache_write_price, n.tiers) END
            FROM old_prices o
            FULL JOIN new_prices n
              ON n.provider = o.provider AND n.model = o.model AND n.source = o.source
           WHERE o.provider IS NULL OR n.provider IS NULL
              OR (o.input_price, o.output_price, o.cache_read_price, o.cache_write_price, o.tiers)
                 IS DISTINCT FROM
                 (n.input_price, n.output_price, n.cache_read_price, n.cache_write_price, n.tiers)
           ORDER BY 1, 2, 3;
        ELSE
          INSERT INTO ai_model_price_changes (provider, model, source, changed_at, actor, request_id, before, after)
          SELECT o.provider, o.model, o.source, stamp, who, req,
                 ai_model_price_state(o.input_price, o.output_price, o.cache_read_price,
                                      o.cache_write_price, o.tiers), NULL
            FROM old_prices o
           ORDER BY o.provider, o.model, o.source;
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER ai_model_prices_history_insert AFTER INSERT ON ai_model_prices
        REFERENCING NEW TABLE AS new_prices
        FOR EACH STATEMENT EXECUTE FUNCTION ai_model_prices_record_changes()`);
    await q.query(`
      CREATE TRIGGER ai_model_prices_history_update AFTER UPDATE ON ai_model_prices
        REFERENCING OLD TABLE AS old_prices NEW TABLE AS new_prices
        FOR EACH STATEMENT EXECUTE FUNCTION ai_model_prices_record_changes()`);
    await q.query(`
      CREATE TRIGGER ai_model_prices_history_delete AFTER DELETE ON ai_model_prices
        REFERENCING OLD TABLE AS old_prices
        FOR EACH STATEMENT EXECUTE FUNCTION ai_model_prices_record_changes()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER ai_model_prices_history_delete ON ai_model_prices');
    await q.query('DROP TRIGGER ai_model_prices_history_update ON ai_model_prices');
    await q.query('DROP TRIGGER ai_model_prices_history_insert ON ai_model_prices');
    await q.query('DROP FUNCTION ai_model_prices_record_changes()');
    await q.query('DROP FUNCTION ai_model_price_state(bigint, bigint, bigint, bigint, jsonb)');
    await q.query('DROP TABLE ai_model_price_changes');
  }
}
