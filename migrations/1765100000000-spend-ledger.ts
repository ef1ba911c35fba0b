import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Spend accounting (CONTRACT 1.6 and 7; docs/decisions/spend-ledger.md):
 * - ai_usage: the ledger, one row per gateway request, keyed by its request id (recording is
 *   idempotent on it). It keeps the prices used, so a charge can be explained and re-rated later.
 *   No foreign key to users: spend history outlives the people who made it.
 * - ai_spend_counters: per (user, period) the sum of the ledger's costs (spent) and of the
 *   reservations still held (held). Derived data: the ledger is the truth and
 *   `npm run spend:reconcile` proves (or repairs) the counters. A reservation is granted by one
 *   conditional upsert of this row, so the row lock serializes a user's concurrent reservations.
 * - ai_reservations: holds taken before a request, settled by its usage, released by the gateway,
 *   or expired by the sweeper. Each moves out of `held` exactly once (a conditional UPDATE).
 * - ai_budget_threshold_events: the outbox of `aigov.budget.threshold` events, written in the
 *   transaction that crossed the threshold; its key makes it once per user, period and threshold.
 * - ai_budget_candidates / ai_effective_budget: the one implementation of budget resolution
 *   (CONTRACT 7), used by checks, reservations, usage attribution, reports and explain alike.
 *   Plain SQL functions (inlined by the planner) rather than application code, so that the
 *   statements that enforce a limit read it in the same snapshot as the counter.
 */
export class SpendLedger1765100000000 implements MigrationInterface {
  name = 'SpendLedger1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE ai_usage (
        request_id         text        NOT NULL,
        user_id            uuid        NOT NULL,
        effective_group_id uuid,
        provider           text        NOT NULL,
        model              text        NOT NULL,
        input_tokens       bigint      NOT NULL,
        output_tokens      bigint      NOT NULL,
        cache_read_tokens  bigint      NOT NULL DEFAULT 0,
        cache_write_tokens bigint      NOT NULL DEFAULT 0,
        input_price        bigint,
        output_price       bigint,
        cache_read_price   bigint,
        cache_write_price  bigint,
        price_source       text,
        cost_micros        bigint,
        reservation_id     uuid,
        occurred_at        timestamptz NOT NULL,
        recorded_at        timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ai_usage_pkey PRIMARY KEY (request_id),
        CONSTRAINT ai_usage_tokens_check CHECK (input_tokens >= 0 AND output_tokens >= 0
          AND cache_read_tokens >= 0 AND cache_write_tokens >= 0),
        CONSTRAINT ai_usage_prices_check CHECK (input_price >= 0 AND output_price >= 0
          AND cache_read_price >= 0 AND cache_write_price >= 0),
        CONSTRAINT ai_usage_price_source_check CHECK (price_source IN ('default', 'custom')),
        CONSTRAINT ai_usage_cost_micros_check CHECK (cost_micros >= 0)
      )`);
    // Per-user period sums (reconciliation, reports) and per-group attribution reports.
    await q.query('CREATE INDEX ai_usage_user_id_occurred_at_idx ON ai_usage (user_id, occurred_at)');
    await q.query(
      'CREATE INDEX ai_usage_effective_group_id_occurred_at_idx ON ai_usage (effective_group_id, occurred_at)',
    );

    await q.query(`
      CREATE TABLE ai_spend_counters (
        user_id      uuid        NOT NULL,
        period_start date        NOT NULL,
        spent_micros bigint      NOT NULL DEFAULT 0,
        held_micros  bigint      NOT NULL DEFAULT 0,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ai_spend_counters_pkey PRIMARY KEY (user_id, period_start),
        CONSTRAINT ai_spend_counters_spent_micros_check CHECK (spent_micros >= 0),
        CONSTRAINT ai_spend_counters_held_micros_check CHECK (held_micros >= 0)
      )`);

    await q.query(`
      CREATE TABLE ai_reservations (
        id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
        request_id         text        NOT NULL,
        user_id            uuid        NOT NULL,
        effective_group_id uuid,
        period_start       date        NOT NULL,
        amount_micros      bigint      NOT NULL,
        status             text        NOT NULL DEFAULT 'held',
        expires_at         timestamptz NOT NULL,
        created_at         timestamptz NOT NULL DEFAULT now(),
        finished_at        timestamptz,
        settled_by         text,
        CONSTRAINT ai_reservations_pkey PRIMARY KEY (id),
        CONSTRAINT ai_reservations_request_id_key UNIQUE (request_id),
        CONSTRAINT ai_reservations_amount_micros_check CHECK (amount_micros >= 0),
        CONSTRAINT ai_reservations_status_check CHECK (status IN ('held', 'settled', 'released', 'expired'))
      )`);
    // The sweeper's scan: only the holds still open, by expiry.
    await q.query(
      `CREATE INDEX ai_reservations_held_expires_at_idx ON ai_reservations (expires_at) WHERE status = 'held'`,
    );
    await q.query(
      `CREATE INDEX ai_reservations_held_user_idx ON ai_reservations (user_id, period_start) WHERE status = 'held'`,
    );

    await q.query(`
      CREATE TABLE ai_budget_threshold_events (
        user_id            uuid        NOT NULL,
        period_start       date        NOT NULL,
        threshold_percent  smallint    NOT NULL,
        effective_group_id uuid,
        spent_micros       bigint      NOT NULL,
        spend_limit_micros bigint      NOT NULL,
        created_at         timestamptz NOT NULL DEFAULT now(),
        published_at       timestamptz,
        CONSTRAINT ai_budget_threshold_events_pkey PRIMARY KEY (user_id, period_start, threshold_percent),
        CONSTRAINT ai_budget_threshold_events_threshold_percent_check CHECK (threshold_percent IN (85, 100))
      )`);
    await q.query(
      `CREATE INDEX ai_budget_threshold_events_unpublished_idx ON ai_budget_threshold_events (created_at)
         WHERE published_at IS NULL`,
    );

    // Every budget that could apply to the user, in the order of CONTRACT 7: the override first
    // (whatever its limit), then budgeted groups by highest limit, earliest organization
    // membership (its created_at, then organization id), smallest group id. Rank 1 wins.
    await q.query(`
      CREATE FUNCTION ai_budget_candidates(p_user uuid)
      RETURNS TABLE (rank bigint, kind text, group_id uuid, organization_id uuid,
                     spend_limit_micros bigint, member_since timestamptz)
      LANGUAGE sql STABLE AS $$
        SELECT row_number() OVER (ORDER BY c.kind_order, c.spend_limit_micros DESC, c.member_since,
                                           c.organization_id, c.group_id),
               c.kind, c.group_id, c.organization_id, c.spend_limit_micros, c.member_since
          FROM (
            SELECT 0 AS kind_order, 'user_override' AS kind, o.group_id, g.organization_id,
                   o.spend_limit_micros, om.created_at AS member_since
              FROM user_ai_budget_overrides o
              JOIN groups g ON g.id = o.group_id
              LEFT JOIN organization_members om ON om.organization_id = g.organization_id AND om.user_id = o.user_id
             WHERE o.user_id = p_user
            UNION ALL
            -- The Everyone group: its members are the organization's.
            SELECT 1, 'group', b.group_id, om.organization_id, b.spend_limit_micros, om.created_at
              FROM organization_members om
              JOIN group_ai_budgets b ON b.group_id = om.organization_id
             WHERE om.user_id = p_user
            UNION ALL
            SELECT 1, 'group', b.group_id, g.organization_id, b.spend_limit_micros, om.created_at
              FROM group_members gm
              JOIN group_ai_budgets b ON b.group_id = gm.group_id
              JOIN groups g ON g.id = gm.group_id
              JOIN organization_members om ON om.organization_id = g.organization_id AND om.user_id = gm.user_id
             WHERE gm.user_id = p_user
          ) c
      $$`);
    // Exactly one row for any user id: the winner, or no limit with the Everyone group of the
    // earliest organization membership (null for a user in no organization, or unknown).
    await q.query(`
      CREATE FUNCTION ai_effective_budget(p_user uuid)
      RETURNS TABLE (limit_source text, spend_limit_micros bigint, effective_group_id uuid)
      LANGUAGE sql STABLE AS $$
        SELECT w.kind, w.spend_limit_micros, coalesce(w.group_id, f.organization_id)
          FROM (SELECT 1) AS one
          LEFT JOIN LATERAL (
            SELECT c.kind, c.spend_limit_micros, c.group_id
              FROM ai_budget_candidates(p_user) c ORDER BY c.rank LIMIT 1
          ) w ON true
          LEFT JOIN LATERAL (
            SELECT om.organization_id FROM organization_members om
             WHERE om.user_id = p_user ORDER BY om.created_at, om.organization_id LIMIT 1
          ) f ON w.group_id IS NULL
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION ai_effective_budget(uuid)');
    await q.query('DROP FUNCTION ai_budget_candidates(uuid)');
    await q.query('DROP TABLE ai_budget_threshold_events');
    await q.query('DROP TABLE ai_reservations');
    await q.query('DROP TABLE ai_spend_counters');
    await q.query('DROP TABLE ai_usage');
  }
}
