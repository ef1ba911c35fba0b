import { constraintOf, isRetryableTransactionError } from '../database-errors';
import { DataSource } from 'typeorm';
import { statementPoolOf } from '../pool';
import { StatementBatcher } from '../statement-batcher';
import { q, type Db } from './types';

/**
 * The spend ledger (migrations/1765100000000-spend-ledger.ts, docs/decisions/spend-ledger.md).
 * Every statement that moves money is ONE statement: the ledger row, the reservation and the
 * counter change commit together or not at all, and the conditions that enforce a limit are
 * evaluated on the counter row as locked, so concurrent requests cannot overshoot it.
 * Budget resolution is the database's `ai_effective_budget` / `ai_budget_candidates`; the statements
 * that enforce or attribute read its materialization, `ai_effective_budgets`, by primary key.
 * Period starts are `YYYY-MM-DD` (UTC) strings; money is bigint micros.
 */

export type LimitSource = 'user_override' | 'group';
export type ReservationStatus = 'held' | 'settled' | 'released' | 'expired';
export type PeriodKind = 'month' | 'week' | 'day';

export interface EffectiveBudget {
  limitSource: LimitSource | null;
  spendLimitMicros: bigint | null;
  effectiveGroupId: string | null;
}

/** A user's budget and counters for one period; `userStatus` null: no such user. */
export interface BudgetState extends EffectiveBudget {
  userStatus: 'active' | 'suspended' | null;
  spentMicros: bigint;
  heldMicros: bigint;
}

export interface BudgetCandidate {
  rank: number;
  kind: LimitSource;
  /** Null only where a store withholds it from a reader who may not see that organization. */
  groupId: string | null;
  organizationId: string | null;
  spendLimitMicros: bigint;
  /** When the user joined the group's organization (the tie-break). */
  memberSince: Date | null;
}

export interface Reservation {
  id: string;
  requestId: string;
  userId: string;
  effectiveGroupId: string | null;
  periodStart: string;
  amountMicros: bigint;
  status: ReservationStatus;
  expiresAt: Date;
  createdAt: Date;
}

export interface ReserveInput {
  requestId: string;
  userId: string;
  periodStart: string;
  amountMicros: bigint;
  expiresAt: Date;
}

export type ReserveOutcome =
  | { kind: 'granted'; reservation: Reservation; state: BudgetState }
  /** The request id was granted before: the first reservation, whatever became of it. */
  | { kind: 'replayed'; reservation: Reservation; state: BudgetState }
  /**
   * Refused. For an active user the state is read after the refusal (the counters as they were
   * when the statement ended, with the concurrent grants that filled them); otherwise the
   * statement's own.
   */
  | { kind: 'denied'; state: BudgetState };

export interface PricesUsed {
  input: bigint | null;
  output: bigint | null;
  cacheRead: bigint | null;
  cacheWrite: bigint | null;
}

/** A usage record priced and validated by the caller, ready for the ledger. */
export interface UsageInput {
  requestId: string;
  userId: string;
  provider: string;
  model: string;
  inputTokens: bigint;
  outputTokens: bigint;
  cacheReadTokens: bigint;
  cacheWriteTokens: bigint;
  prices: PricesUsed;
  priceSource: 'default' | 'custom' | null;
  costMicros: bigint | null;
  occurredAt: Date;
  /** The period of `occurredAt`. */
  periodStart: string;
  reservationId: string | null;
}

/** What the ledger holds for a request id (the first recording's result on a replay). */
export interface UsageResult {
  requestId: string;
  userId: string;
  costMicros: bigint | null;
  priceSource: 'default' | 'custom' | null;
  effectiveGroupId: string | null;
  /** The request id was already in the ledger: nothing changed. */
  duplicate: boolean;
  /** This recording settled its reservation (false when none, unknown, another user's, or no longer held). */
  reservationSettled: boolean;
}

export interface PriceForUsage {
  provider: string;
  model: string;
  source: 'default' | 'custom';
  inputPrice: bigint | null;
  outputPrice: bigint | null;
  cacheReadPrice: bigint | null;
  cacheWritePrice: bigint | null;
  tiers: PriceTierJson[] | null;
}

export interface PriceTierJson {
  min_context_tokens: number;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
}

export interface ThresholdEvent {
  userId: string;
  periodStart: string;
  thresholdPercent: 85 | 100;
  effectiveGroupId: string | null;
  spentMicros: bigint;
  spendLimitMicros: bigint;
}

/** One (user, period) where the counters and the ledger disagree. */
export interface CounterDifference {
  userId: string;
  periodStart: string;
  counterSpentMicros: bigint | null;
  ledgerSpentMicros: bigint;
  counterHeldMicros: bigint | null;
  ledgerHeldMicros: bigint;
}

/** A user whose row of ai_effective_budgets differs from `ai_effective_budget()`. */
export interface EffectiveBudgetDifference {
  userId: string;
  /** The row as stored; null: the user has no row. */
  stored: EffectiveBudget | null;
  /** What the resolution says now. */
  resolved: EffectiveBudget;
}

const big = (v: string | number | null): bigint | null => (v === null ? null : BigInt(v));
const bigOr0 = (v: string | number | null): bigint => (v === null ? 0n : BigInt(v));
const str = (v: bigint | null): string | null => (v === null ? null : v.toString());

interface StateRow {
  status: 'active' | 'suspended' | null;
  limit_source: LimitSource | null;
  spend_limit_micros: string | null;
  effective_group_id: string | null;
  spent_micros: string | null;
  held_micros: string | null;
}
const toState = (r: StateRow | undefined): BudgetState =>
  r
    ? {
        userStatus: r.status,
        limitSource: r.limit_source,
        spendLimitMicros: big(r.spend_limit_micros),
        effectiveGroupId: r.effective_group_id,
        spentMicros: bigOr0(r.spent_micros),
        heldMicros: bigOr0(r.held_micros),
      }
    : {
        userStatus: null,
        limitSource: null,
        spendLimitMicros: null,
        effectiveGroupId: null,
        spentMicros: 0n,
        heldMicros: 0n,
      };

interface ReservationRow {
  id: string;
  request_id: string;
  user_id: string;
  effective_group_id: string | null;
  period_start: string;
  amount_micros: string;
  status: ReservationStatus;
  expires_at: Date;
  created_at: Date;
}
const RESERVATION_COLUMNS = `id, request_id, user_id, effective_group_id, to_char(period_start, 'YYYY-MM-DD') AS period_start,
  amount_micros::text AS amount_micros, status, expires_at, created_at`;
const toReservation = (r: ReservationRow): Reservation => ({
  id: r.id,
  requestId: r.request_id,
  userId: r.user_id,
  effectiveGroupId: r.effective_group_id,
  periodStart: r.period_start,
  amountMicros: BigInt(r.amount_micros),
  status: r.status,
  expiresAt: new Date(r.expires_at),
  createdAt: new Date(r.created_at),
});

/**
 * The user, its effective budget and its counters in the period, from the parameters named. The
 * budget is the user's row of ai_effective_budgets, read by primary key: `ai_effective_budget()`
 * kept current by the triggers of migrations/1765200000000-effective-budgets.ts, which give every
 * user a row in the transaction that creates it. An unknown user has no users row: status null.
 */
const stateSql = (user: string, period: string) => `
  SELECT u.status, e.limit_source, e.spend_limit_micros, e.effective_group_id,
         c.spent_micros, c.held_micros
    FROM users u
    LEFT JOIN ai_effective_budgets e ON e.user_id = u.id
    LEFT JOIN ai_spend_counters c ON c.user_id = u.id AND c.period_start = ${period}::date
   WHERE u.id = ${user}::uuid`;
const STATE_SQL = stateSql('$1', '$2');
/** The same for many (user, period) pairs ($1 users, $2 periods), one row per pair in their order. */
const STATES_SQL = `
  SELECT s.* FROM unnest($1::uuid[], $2::date[]) WITH ORDINALITY AS r(user_id, period_start, ord)
    LEFT JOIN LATERAL (${stateSql('r.user_id', 'r.period_start')}) s ON true
   ORDER BY r.ord`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
/** Keys whose malformed values would fail a whole batch go alone instead. */
const batchable = (userId: string, periodStart: string) => UUID.test(userId) && DATE.test(periodStart);
/** Most keys one batched state read carries. */
const STATE_BATCH_MAX = 256;
/**
 * Batched state reads per DataSource (checks are the hottest statement of the service). At most
 * half the statement pool runs them at once, so reservations and usage keep connections.
 */
const stateBatchers = new WeakMap<DataSource, StatementBatcher<[string, string], BudgetState>>();
function stateBatcherOf(ds: DataSource): StatementBatcher<[string, string], BudgetState> | null {
  const pool = statementPoolOf(ds);
  if (!pool) return null;
  let batcher = stateBatchers.get(ds);
  if (!batcher) {
    const read = async (keys: [string, string][]): Promise<BudgetState[]> => {
      if (keys.length === 1) {
        return [toState((await q<StateRow[]>(ds, STATE_SQL, keys[0], 'spend_state'))[0])];
      }
      const rows = await q<StateRow[]>(
        ds,
        STATES_SQL,
        [keys.map((k) => k[0]), keys.map((k) => k[1])],
        'spend_states',
      );
      return rows.map((r) => toState(r.status === null ? undefined : r));
    };
    batcher = new StatementBatcher(read, Math.max(1, Math.floor(pool.options.max / 2)), STATE_BATCH_MAX);
    stateBatchers.set(ds, batcher);
  }
  return batcher;
}

/**
 * The check rule of CONTRACT 7 as SQL, for a limit, the counter's spent and held, and an amount:
 * no limit; or a = 0 and spent + held < limit; or a > 0 and spent + held + a <= limit.
 */
const fits = (limit: string, spent: string, held: string, amount: string) =>
  `(${limit} IS NULL OR (${amount} = 0 AND ${spent} + ${held} < ${limit})
     OR (${amount} > 0 AND ${spent} + ${held} + ${amount} <= ${limit}))`;

/**
 * Grants reservations in one statement ($1 request ids, $2 users, $3 period starts, $4 amounts,
 * $5 expiry times; one reservation per position, no two sharing a (user, period) or a request
 * id: the batcher keeps those apart):
 * - `previous`: a reservation already granted for a request id is answered as it is.
 * - `granted`: each counter row is upserted with `held += amount` only if the amount fits, the
 *   condition evaluated on the row as locked (ON CONFLICT DO UPDATE ... WHERE), so of many
 *   concurrent reservations exactly those that fit are granted. A denial writes nothing. Rows
 *   are locked in (user, period) order, like the usage statement's.
 * - `reservation`: the holds themselves. A concurrent grant of the same request id makes this
 *   insert fail on ai_reservations_request_id_key, which undoes the whole statement; the caller
 *   runs it again and then finds `previous`.
 */
const RESERVE_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::uuid[], $3::date[], $4::bigint[], $5::timestamptz[])
    WITH ORDINALITY AS x(request_id, user_id, period_start, amount, expires_at, ord)
),
state AS (
  SELECT i.ord, s.* FROM input i LEFT JOIN LATERAL (${stateSql('i.user_id', 'i.period_start')}) s ON true
),
previous AS (
  SELECT i.ord, p.* FROM input i
   CROSS JOIN LATERAL (SELECT ${RESERVATION_COLUMNS} FROM ai_reservations WHERE request_id = i.request_id) p
),
granted AS (
  INSERT INTO ai_spend_counters AS c (user_id, period_start, spent_micros, held_micros)
  SELECT i.user_id, i.period_start, 0, i.amount FROM input i JOIN state s ON s.ord = i.ord
   WHERE NOT EXISTS (SELECT 1 FROM previous p WHERE p.ord = i.ord) AND s.status = 'active'
     AND ${fits('s.spend_limit_micros', '0', '0', 'i.amount')}
   ORDER BY i.user_id, i.period_start
  ON CONFLICT (user_id, period_start) DO UPDATE
     SET held_micros = c.held_micros + EXCLUDED.held_micros, updated_at = now()
   WHERE EXISTS (SELECT 1 FROM input i JOIN state s ON s.ord = i.ord
                  WHERE i.user_id = c.user_id AND i.period_start = c.period_start
                    AND ${fits('s.spend_limit_micros', 'c.spent_micros', 'c.held_micros', 'EXCLUDED.held_micros')})
  RETURNING c.user_id, c.period_start, c.spent_micros, c.held_micros
),
reservation AS (
  INSERT INTO ai_reservations (request_id, user_id, effective_group_id, period_start, amount_micros, expires_at)
  SELECT i.request_id, i.user_id, s.effective_group_id, i.period_start, i.amount, i.expires_at
    FROM input i JOIN state s ON s.ord = i.ord
    JOIN granted g ON g.user_id = i.user_id AND g.period_start = i.period_start
   ORDER BY i.request_id
  RETURNING ${RESERVATION_COLUMNS}
)
SELECT s.status, s.limit_source, s.spend_limit_micros, s.effective_group_id,
       coalesce(g.spent_micros, s.spent_micros) AS spent_micros,
       coalesce(g.held_micros, s.held_micros) AS held_micros,
       (SELECT row_to_json(r) FROM reservation r WHERE r.request_id = i.request_id) AS granted,
       (SELECT row_to_json(p) FROM previous p WHERE p.ord = i.ord) AS previous
  FROM input i
  LEFT JOIN state s ON s.ord = i.ord
  LEFT JOIN granted g ON g.user_id = i.user_id AND g.period_start = i.period_start
 ORDER BY i.ord`;

/** After refusals ($1 request ids, $2 users, $3 periods): the reservation of each id, and the state again. */
const AFTER_REFUSAL_SQL = `
SELECT s.*, (SELECT row_to_json(r) FROM (SELECT ${RESERVATION_COLUMNS} FROM ai_reservations
                                           WHERE request_id = x.request_id) r) AS reservation
  FROM unnest($1::text[], $2::uuid[], $3::date[]) WITH ORDINALITY AS x(request_id, user_id, period_start, ord)
  LEFT JOIN LATERAL (${stateSql('x.user_id', 'x.period_start')}) s ON true
 ORDER BY x.ord`;

/** Most reservations one statement carries. */
const RESERVE_BATCH_MAX = 128;
/**
 * Reservation statements at once: two, so that one executes while the other waits for its
 * commit's WAL flush. More slots made smaller batches and cost more per reservation in
 * bench:enforcement (2 slots: 0.40x the baseline; 3: 0.28x; 5: 0.37x; 1: 0.36x).
 */
const RESERVE_SLOTS = 2;
const reserveBatchers = new WeakMap<DataSource, StatementBatcher<ReserveInput, ReserveOutcome>>();
/**
 * Batched reservations per DataSource: under load, concurrent reservations of different users
 * share one statement and one commit. At most RESERVE_SLOTS (and half the statement pool) run
 * at once.
 */
function reserveBatcherOf(ds: DataSource): StatementBatcher<ReserveInput, ReserveOutcome> | null {
  const pool = statementPoolOf(ds);
  if (!pool) return null;
  let batcher = reserveBatchers.get(ds);
  if (!batcher) {
    const repository = new SpendRepository(ds);
    batcher = new StatementBatcher(
      (inputs: ReserveInput[]) => repository.reserveTogether(inputs),
      Math.max(1, Math.min(RESERVE_SLOTS, Math.floor(pool.options.max / 2))),
      RESERVE_BATCH_MAX,
      (i) => [`counter ${i.userId.toLowerCase()} ${i.periodStart}`, `request ${i.requestId}`],
    );
    reserveBatchers.set(ds, batcher);
  }
  return batcher;
}

/**
 * Records a batch of priced usage in one statement ($1: the records as a jsonb array):
 * - `inserted`: the ledger rows; a request id already there is skipped (idempotent), and so is
 *   its counter change.
 * - `settled`: the reservations named by the new rows move from held to settled, each once (the
 *   conditional UPDATE locks the row: a release or the sweeper racing it finds it no longer held).
 * - `counters`: per (user, period) spent += the costs, held -= the settled holds (which may lie in
 *   another period than the usage), in key order so that batches lock rows in one order.
 *   The proposed insert row carries held 0 because PostgreSQL checks it against
 *   ai_spend_counters_held_micros_check before it notices the conflict.
 * - `thresholds`: the outbox rows of the 85 and 100 percent thresholds reached, once per key.
 */
const RECORD_USAGE_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    request_id text, user_id uuid, provider text, model text,
    input_tokens bigint, output_tokens bigint, cache_read_tokens bigint, cache_write_tokens bigint,
    input_price bigint, output_price bigint, cache_read_price bigint, cache_write_price bigint,
    price_source text, cost_micros bigint, occurred_at timestamptz, period_start date, reservation_id uuid)
),
budget AS (
  SELECT u.user_id, e.spend_limit_micros, e.effective_group_id
    FROM (SELECT DISTINCT user_id FROM input) u
    LEFT JOIN ai_effective_budgets e ON e.user_id = u.user_id
),
inserted AS (
  INSERT INTO ai_usage (request_id, user_id, effective_group_id, provider, model,
                        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                        input_price, output_price, cache_read_price, cache_write_price,
                        price_source, cost_micros, reservation_id, occurred_at)
  SELECT i.request_id, i.user_id, b.effective_group_id, i.provider, i.model,
         i.input_tokens, i.output_tokens, i.cache_read_tokens, i.cache_write_tokens,
         i.input_price, i.output_price, i.cache_read_price, i.cache_write_price,
         i.price_source, i.cost_micros, i.reservation_id, i.occurred_at
    FROM input i JOIN budget b ON b.user_id = i.user_id
  ON CONFLICT (request_id) DO NOTHING
  RETURNING request_id, user_id, effective_group_id, cost_micros, price_source, reservation_id
),
settled AS (
  UPDATE ai_reservations r
     SET status = 'settled', finished_at = now(), settled_by = i.request_id
    FROM inserted i
   WHERE r.id = i.reservation_id AND r.user_id = i.user_id AND r.status = 'held'
  RETURNING r.settled_by, r.user_id, r.period_start, r.amount_micros
),
deltas AS (
  SELECT d.user_id, d.period_start, sum(d.spent)::bigint AS spent, sum(d.held)::bigint AS held
    FROM (SELECT i.user_id, x.period_start, coalesce(i.cost_micros, 0) AS spent, 0::bigint AS held
            FROM inserted i JOIN input x ON x.request_id = i.request_id
          UNION ALL
          SELECT s.user_id, s.period_start, 0, -s.amount_micros FROM settled s) d
   GROUP BY d.user_id, d.period_start
),
counters AS (
  INSERT INTO ai_spend_counters AS c (user_id, period_start, spent_micros, held_micros)
  SELECT d.user_id, d.period_start, d.spent, 0 FROM deltas d ORDER BY d.user_id, d.period_start
  ON CONFLICT (user_id, period_start) DO UPDATE
     SET spent_micros = c.spent_micros + EXCLUDED.spent_micros,
         held_micros = c.held_micros
                       + (SELECT d.held FROM deltas d WHERE d.user_id = c.user_id AND d.period_start = c.period_start),
         updated_at = now()
  RETURNING c.user_id, c.period_start, c.spent_micros
),
thresholds AS (
  INSERT INTO ai_budget_threshold_events
         (user_id, period_start, threshold_percent, effective_group_id, spent_micros, spend_limit_micros)
  SELECT c.user_id, c.period_start, t.pct, b.effective_group_id, c.spent_micros, b.spend_limit_micros
    FROM counters c
    JOIN budget b ON b.user_id = c.user_id
   CROSS JOIN (VALUES (85::smallint), (100::smallint)) AS t(pct)
   WHERE b.spend_limit_micros IS NOT NULL AND c.spent_micros > 0
     AND c.spent_micros::numeric * 100 >= b.spend_limit_micros::numeric * t.pct
  ON CONFLICT ON CONSTRAINT ai_budget_threshold_events_pkey DO NOTHING
  RETURNING 1
)
SELECT i.request_id, i.user_id, i.cost_micros, i.price_source, i.effective_group_id,
       (s.settled_by IS NOT NULL) AS settled,
       (SELECT count(*) FROM thresholds)::int AS thresholds
  FROM inserted i
  LEFT JOIN settled s ON s.settled_by = i.request_id`;

/** Users whose ai_effective_budgets row is missing or differs from `ai_effective_budget()`. */
const EFFECTIVE_BUDGET_DIFFERENCES_SQL = `
  SELECT u.id AS user_id, b.user_id IS NOT NULL AS stored,
         b.limit_source AS stored_source, b.spend_limit_micros AS stored_limit, b.effective_group_id AS stored_group,
         e.limit_source, e.spend_limit_micros, e.effective_group_id
    FROM users u
   CROSS JOIN LATERAL ai_effective_budget(u.id) e
    LEFT JOIN ai_effective_budgets b ON b.user_id = u.id
   WHERE b.user_id IS NULL
      OR (b.limit_source, b.spend_limit_micros, b.effective_group_id)
         IS DISTINCT FROM (e.limit_source, e.spend_limit_micros, e.effective_group_id)`;

/** Ends holds that are still held ($1: ids, or null for all expired by $2; $3 new status). */
const finishHolds = (selection: string) => `
WITH finished AS (
  UPDATE ai_reservations r SET status = $2, finished_at = now()
   WHERE r.id IN (${selection}) AND r.status = 'held'
  RETURNING r.id, r.user_id, r.period_start, r.amount_micros
),
amounts AS (
  SELECT user_id, period_start, sum(amount_micros)::bigint AS amount FROM finished GROUP BY user_id, period_start
),
counters AS (
  INSERT INTO ai_spend_counters AS c (user_id, period_start, spent_micros, held_micros)
  SELECT a.user_id, a.period_start, 0, 0 FROM amounts a ORDER BY a.user_id, a.period_start
  ON CONFLICT (user_id, period_start) DO UPDATE
     SET held_micros = c.held_micros
                       - (SELECT a.amount FROM amounts a WHERE a.user_id = c.user_id AND a.period_start = c.period_start),
         updated_at = now()
  RETURNING 1
)
SELECT f.id FROM finished f`;

const RELEASE_SQL = finishHolds('$1::uuid');
/** Expired holds, oldest first, skipping those another sweeper (or a settlement) has locked. */
const EXPIRE_SQL = finishHolds(`
  SELECT id FROM ai_reservations
   WHERE status = 'held' AND expires_at <= $1::timestamptz
   ORDER BY expires_at LIMIT $3::int FOR UPDATE SKIP LOCKED`);

/** Statements that lose a lock-order race, or a concurrent grant of the same request id, run again. */
const STATEMENT_ATTEMPTS = 5;

export class SpendRepository {
  constructor(private readonly db: Db) {}

  /** The user's state in the period; `userStatus` null when the user does not exist. */
  async getBudgetState(userId: string, periodStart: string): Promise<BudgetState> {
    // Outside a transaction, concurrent reads share statements (see stateBatcherOf).
    const batcher =
      this.db instanceof DataSource && batchable(userId, periodStart) ? stateBatcherOf(this.db) : null;
    if (batcher) return batcher.load([userId, periodStart]);
    const rows = await q<StateRow[]>(this.db, STATE_SQL, [userId, periodStart], 'spend_state');
    return toState(rows[0]);
  }

  /** Every budget that could apply, best first (rank 1 wins). */
  async listBudgetCandidates(userId: string): Promise<BudgetCandidate[]> {
    const rows = await q<
      {
        rank: string;
        kind: LimitSource;
        group_id: string;
        organization_id: string;
        spend_limit_micros: string;
        member_since: Date | null;
      }[]
    >(this.db, 'SELECT * FROM ai_budget_candidates($1::uuid) ORDER BY rank', [userId]);
    return rows.map((r) => ({
      rank: Number(r.rank),
      kind: r.kind,
      groupId: r.group_id,
      organizationId: r.organization_id,
      spendLimitMicros: BigInt(r.spend_limit_micros),
      memberSince: r.member_since,
    }));
  }

  async reserve(input: ReserveInput): Promise<ReserveOutcome> {
    // Outside a transaction, concurrent reservations share statements (see reserveBatcherOf).
    const batcher =
      this.db instanceof DataSource && batchable(input.userId, input.periodStart)
        ? reserveBatcherOf(this.db)
        : null;
    if (batcher) return batcher.load(input);
    return (await this.reserveTogether([input]))[0];
  }

  /**
   * Reservations in one statement, one outcome per input in order. No two inputs may share a
   * (user, period) or a request id (the statement decides each on its own counter row).
   */
  async reserveTogether(inputs: readonly ReserveInput[]): Promise<ReserveOutcome[]> {
    const params = [
      inputs.map((i) => i.requestId),
      inputs.map((i) => i.userId),
      inputs.map((i) => i.periodStart),
      inputs.map((i) => i.amountMicros.toString()),
      inputs.map((i) => i.expiresAt.toISOString()),
    ];
    const rows = await this.retrying(() =>
      q<(StateRow & { granted: ReservationJson | null; previous: ReservationJson | null })[]>(
        this.db,
        RESERVE_SQL,
        params,
        'spend_reserve',
      ),
    );
    const outcomes = rows.map((r): ReserveOutcome => {
      const state = toState(r.status === null ? undefined : r);
      if (r.previous) return { kind: 'replayed', reservation: fromJson(r.previous), state };
      if (r.granted) return { kind: 'granted', reservation: fromJson(r.granted), state };
      return { kind: 'denied', state };
    });
    return this.replayedAfterAll(inputs, outcomes);
  }

  /**
   * After refusals to active users, one statement (a new snapshot) reads for each of them:
   * - the reservation of its request id, if one exists now. A refusal can be the loser of a race
   *   with a concurrent grant of the same request id (a gateway retrying): the statement's
   *   snapshot did not see that grant, then found the counter filled by it. Such a request id is
   *   answered with its reservation, as any replay is;
   * - the budget state again: the statement's is its snapshot, taken before it waited for the
   *   counter row, and the refusal was decided on the row as locked, which concurrent grants may
   *   have filled since. The caller answers with these counters.
   */
  private async replayedAfterAll(
    inputs: readonly ReserveInput[],
    outcomes: ReserveOutcome[],
  ): Promise<ReserveOutcome[]> {
    const denied = inputs
      .map((input, k) => ({ input, k }))
      .filter(({ k }) => outcomes[k].kind === 'denied' && outcomes[k].state.userStatus === 'active');
    if (denied.length === 0) return outcomes;
    const rows = await q<(StateRow & { reservation: ReservationJson | null })[]>(
      this.db,
      AFTER_REFUSAL_SQL,
      [
        denied.map(({ input }) => input.requestId),
        denied.map(({ input }) => input.userId),
        denied.map(({ input }) => input.periodStart),
      ],
      'spend_after_refusal',
    );
    const after = [...outcomes];
    denied.forEach(({ k }, j) => {
      const r = rows[j];
      const state = toState(r.status === null ? undefined : r);
      after[k] = r.reservation
        ? { kind: 'replayed', reservation: fromJson(r.reservation), state }
        : { kind: 'denied', state };
    });
    return after;
  }

  async getReservation(id: string): Promise<Reservation | null> {
    const rows = await q<ReservationRow[]>(
      this.db,
      `SELECT ${RESERVATION_COLUMNS} FROM ai_reservations WHERE id = $1::uuid`,
      [id],
    );
    return rows[0] ? toReservation(rows[0]) : null;
  }

  /** Releases a held reservation; false when it is not held (any more). */
  async releaseReservation(id: string): Promise<boolean> {
    const rows = await this.retrying(() =>
      q<{ id: string }[]>(this.db, RELEASE_SQL, [id, 'released'], 'spend_release'),
    );
    return rows.length > 0;
  }

  /** Expires up to `limit` holds whose expiry is at or before `now`; returns their ids. */
  async expireReservations(now: Date, limit: number): Promise<string[]> {
    const rows = await this.retrying(() =>
      q<{ id: string }[]>(this.db, EXPIRE_SQL, [now.toISOString(), 'expired', limit], 'spend_expire'),
    );
    return rows.map((r) => r.id);
  }

  /**
   * Records priced usage (request ids unique within the batch). Returns one result per input, in
   * input order: the new row's, or for a request id already in the ledger the first recording's
   * (`duplicate: true`). `thresholds`: outbox rows this batch created.
   */
  async recordUsage(records: readonly UsageInput[]): Promise<{ results: UsageResult[]; thresholds: number }> {
    if (records.length === 0) return { results: [], thresholds: 0 };
    const json = JSON.stringify(
      records.map((r) => ({
        request_id: r.requestId,
        user_id: r.userId,
        provider: r.provider,
        model: r.model,
        input_tokens: r.inputTokens.toString(),
        output_tokens: r.outputTokens.toString(),
        cache_read_tokens: r.cacheReadTokens.toString(),
        cache_write_tokens: r.cacheWriteTokens.toString(),
        input_price: str(r.prices.input),
        output_price: str(r.prices.output),
        cache_read_price: str(r.prices.cacheRead),
        cache_write_price: str(r.prices.cacheWrite),
        price_source: r.priceSource,
        cost_micros: str(r.costMicros),
        occurred_at: r.occurredAt.toISOString(),
        period_start: r.periodStart,
        reservation_id: r.reservationId,
      })),
    );
    const rows = await this.retrying(() =>
      q<
        {
          request_id: string;
          user_id: string;
          cost_micros: string | null;
          price_source: 'default' | 'custom' | null;
          effective_group_id: string | null;
          settled: boolean;
          thresholds: number;
        }[]
      >(this.db, RECORD_USAGE_SQL, [json], 'spend_record_usage'),
    );
    const fresh = new Map<string, UsageResult>(
      rows.map((r) => [
        r.request_id,
        {
          requestId: r.request_id,
          userId: r.user_id,
          costMicros: big(r.cost_micros),
          priceSource: r.price_source,
          effectiveGroupId: r.effective_group_id,
          duplicate: false,
          reservationSettled: r.settled,
        },
      ]),
    );
    const missing = records.filter((r) => !fresh.has(r.requestId)).map((r) => r.requestId);
    const earlier = missing.length > 0 ? await this.getUsageResults(missing) : new Map<string, UsageResult>();
    const results = records.map((r) => {
      const found = fresh.get(r.requestId) ?? earlier.get(r.requestId);
      // The row that made the insert skip this request id committed before we looked again.
      if (!found) throw new Error(`usage ${r.requestId} neither recorded nor found`);
      return found;
    });
    return { results, thresholds: rows[0]?.thresholds ?? 0 };
  }

  /** The recorded results of these request ids, as replays. */
  async getUsageResults(requestIds: readonly string[]): Promise<Map<string, UsageResult>> {
    const rows = await q<
      {
        request_id: string;
        user_id: string;
        cost_micros: string | null;
        price_source: 'default' | 'custom' | null;
        effective_group_id: string | null;
      }[]
    >(
      this.db,
      `SELECT request_id, user_id, cost_micros, price_source, effective_group_id
         FROM ai_usage WHERE request_id = ANY($1::text[])`,
      [requestIds],
    );
    return new Map(
      rows.map((r) => [
        r.request_id,
        {
          requestId: r.request_id,
          userId: r.user_id,
          costMicros: big(r.cost_micros),
          priceSource: r.price_source,
          effectiveGroupId: r.effective_group_id,
          duplicate: true,
          reservationSettled: false,
        },
      ]),
    );
  }

  /** The effective price rows (custom over default) of these (provider, model) pairs. */
  async getPricesForUsage(
    pairs: readonly { provider: string; model: string }[],
  ): Promise<Map<string, PriceForUsage>> {
    if (pairs.length === 0) return new Map();
    const rows = await q<
      {
        provider: string;
        model: string;
        source: 'default' | 'custom';
        input_price: string | null;
        output_price: string | null;
        cache_read_price: string | null;
        cache_write_price: string | null;
        tiers: PriceTierJson[] | null;
      }[]
    >(
      this.db,
      `SELECT DISTINCT ON (p.provider, p.model) p.provider, p.model, p.source,
              p.input_price, p.output_price, p.cache_read_price, p.cache_write_price, p.tiers
         FROM ai_model_prices p
         JOIN unnest($1::text[], $2::text[]) AS k(provider, model)
           ON p.provider = k.provider AND p.model = k.model
        ORDER BY p.provider, p.model, (p.source = 'custom') DESC`,
      [pairs.map((p) => p.provider), pairs.map((p) => p.model)],
      'spend_prices',
    );
    return new Map(
      rows.map((r) => [
        priceKey(r.provider, r.model),
        {
          provider: r.provider,
          model: r.model,
          source: r.source,
          inputPrice: big(r.input_price),
          outputPrice: big(r.output_price),
          cacheReadPrice: big(r.cache_read_price),
          cacheWritePrice: big(r.cache_write_price),
          tiers: r.tiers,
        },
      ]),
    );
  }

  /** Spend attributed to a group between `from` (inclusive) and `to` (exclusive). */
  async getGroupSpend(groupId: string, from: Date, to: Date): Promise<bigint> {
    const rows = await q<{ spent: string | null }[]>(
      this.db,
      `SELECT sum(cost_micros)::bigint AS spent FROM ai_usage
        WHERE effective_group_id = $1::uuid AND occurred_at >= $2::timestamptz AND occurred_at < $3::timestamptz`,
      [groupId, from.toISOString(), to.toISOString()],
    );
    return bigOr0(rows[0]?.spent ?? null);
  }

  /**
   * Locks up to `limit` unpublished threshold events (skipping those another instance holds) for
   * the rest of the transaction; `markThresholdsPublished` in the same transaction ends them.
   */
  async lockUnpublishedThresholds(limit: number): Promise<ThresholdEvent[]> {
    const rows = await q<
      {
        user_id: string;
        period_start: string;
        threshold_percent: number;
        effective_group_id: string | null;
        spent_micros: string;
        spend_limit_micros: string;
      }[]
    >(
      this.db,
      `SELECT user_id, to_char(period_start, 'YYYY-MM-DD') AS period_start, threshold_percent,
              effective_group_id, spent_micros, spend_limit_micros
         FROM ai_budget_threshold_events WHERE published_at IS NULL
        ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    return rows.map((r) => ({
      userId: r.user_id,
      periodStart: r.period_start,
      thresholdPercent: r.threshold_percent as 85 | 100,
      effectiveGroupId: r.effective_group_id,
      spentMicros: BigInt(r.spent_micros),
      spendLimitMicros: BigInt(r.spend_limit_micros),
    }));
  }

  async markThresholdsPublished(events: readonly ThresholdEvent[]): Promise<void> {
    if (events.length === 0) return;
    await q(
      this.db,
      `UPDATE ai_budget_threshold_events e SET published_at = now()
         FROM unnest($1::uuid[], $2::date[], $3::smallint[]) AS k(user_id, period_start, pct)
        WHERE e.user_id = k.user_id AND e.period_start = k.period_start AND e.threshold_percent = k.pct`,
      [events.map((e) => e.userId), events.map((e) => e.periodStart), events.map((e) => e.thresholdPercent)],
    );
  }

  /**
   * Every (user, period) where the counters differ from the ledger (spent: the sum of the costs
   * of usage that occurred in the period, the period taken by `kind`; held: the sum of the held
   * reservations). Run in a REPEATABLE READ transaction for a consistent picture.
   */
  async listCounterDifferences(kind: PeriodKind): Promise<CounterDifference[]> {
    const rows = await q<
      {
        user_id: string;
        period_start: string;
        counter_spent: string | null;
        ledger_spent: string;
        counter_held: string | null;
        ledger_held: string;
      }[]
    >(
      this.db,
      `WITH ledger AS (
         SELECT user_id, date_trunc($1, occurred_at AT TIME ZONE 'UTC')::date AS period_start,
                coalesce(sum(cost_micros), 0)::bigint AS spent
           FROM ai_usage GROUP BY 1, 2
       ), holds AS (
         SELECT user_id, period_start, sum(amount_micros)::bigint AS held
           FROM ai_reservations WHERE status = 'held' GROUP BY 1, 2
       ), expected AS (
         SELECT coalesce(l.user_id, h.user_id) AS user_id, coalesce(l.period_start, h.period_start) AS period_start,
                coalesce(l.spent, 0) AS spent, coalesce(h.held, 0) AS held
           FROM ledger l FULL JOIN holds h ON h.user_id = l.user_id AND h.period_start = l.period_start
       )
       SELECT coalesce(e.user_id, c.user_id) AS user_id,
              to_char(coalesce(e.period_start, c.period_start), 'YYYY-MM-DD') AS period_start,
              c.spent_micros AS counter_spent, coalesce(e.spent, 0) AS ledger_spent,
              c.held_micros AS counter_held, coalesce(e.held, 0) AS ledger_held
         FROM expected e
         FULL JOIN ai_spend_counters c ON c.user_id = e.user_id AND c.period_start = e.period_start
        WHERE coalesce(c.spent_micros, 0) <> coalesce(e.spent, 0) OR coalesce(c.held_micros, 0) <> coalesce(e.held, 0)
        ORDER BY 2, 1`,
      [kind],
    );
    return rows.map((r) => ({
      userId: r.user_id,
      periodStart: r.period_start,
      counterSpentMicros: big(r.counter_spent),
      ledgerSpentMicros: BigInt(r.ledger_spent),
      counterHeldMicros: big(r.counter_held),
      ledgerHeldMicros: BigInt(r.ledger_held),
    }));
  }

  /**
   * Rewrites the counters from the ledger (spent) and the held reservations (held) for the
   * periods given by `kind`: the repair after a difference was found, or after BUDGET_PERIOD
   * changed. Run it in a transaction; it locks the counters table against concurrent writers.
   */
  async rebuildCounters(kind: PeriodKind): Promise<number> {
    await q(this.db, 'LOCK TABLE ai_spend_counters, ai_usage, ai_reservations IN SHARE ROW EXCLUSIVE MODE');
    await q(this.db, 'DELETE FROM ai_spend_counters');
    const rows = await q<{ n: number }[]>(
      this.db,
      `WITH ins AS (
         INSERT INTO ai_spend_counters (user_id, period_start, spent_micros, held_micros)
         SELECT user_id, period_start, sum(spent)::bigint, sum(held)::bigint FROM (
           SELECT user_id, date_trunc($1, occurred_at AT TIME ZONE 'UTC')::date AS period_start,
                  coalesce(cost_micros, 0) AS spent, 0::bigint AS held FROM ai_usage
           UNION ALL
           SELECT user_id, period_start, 0, amount_micros FROM ai_reservations WHERE status = 'held'
         ) x GROUP BY user_id, period_start
         RETURNING 1)
       SELECT count(*)::int AS n FROM ins`,
      [kind],
    );
    return rows[0].n;
  }

  /**
   * Every user whose materialized budget (ai_effective_budgets) differs from the resolution
   * (`ai_effective_budget()`), or who has no row. The triggers keep them equal at every commit, so
   * any snapshot should find none; run it in a REPEATABLE READ transaction with the other checks.
   */
  async listEffectiveBudgetDifferences(): Promise<EffectiveBudgetDifference[]> {
    const rows = await q<
      {
        user_id: string;
        stored: boolean;
        stored_source: LimitSource | null;
        stored_limit: string | null;
        stored_group: string | null;
        limit_source: LimitSource | null;
        spend_limit_micros: string | null;
        effective_group_id: string | null;
      }[]
    >(this.db, `${EFFECTIVE_BUDGET_DIFFERENCES_SQL} ORDER BY u.id`);
    return rows.map((r) => ({
      userId: r.user_id,
      stored: r.stored
        ? {
            limitSource: r.stored_source,
            spendLimitMicros: big(r.stored_limit),
            effectiveGroupId: r.stored_group,
          }
        : null,
      resolved: {
        limitSource: r.limit_source,
        spendLimitMicros: big(r.spend_limit_micros),
        effectiveGroupId: r.effective_group_id,
      },
    }));
  }

  /**
   * Recomputes the rows of the users found different (the repair of `spend:reconcile`) through
   * the triggers' own `ai_effective_budgets_refresh`, which locks before it computes, so it is
   * safe beside concurrent writers. Returns how many users it found different.
   */
  async repairEffectiveBudgets(): Promise<number> {
    const ids = (await q<{ user_id: string }[]>(this.db, EFFECTIVE_BUDGET_DIFFERENCES_SQL)).map(
      (r) => r.user_id,
    );
    if (ids.length > 0) await q(this.db, 'SELECT ai_effective_budgets_refresh($1::uuid[])', [ids]);
    return ids.length;
  }

  /** Runs a statement again when it lost a lock-order race or a same-request-id grant race. */
  private async retrying<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const again =
          isRetryableTransactionError(err) || constraintOf(err) === 'ai_reservations_request_id_key';
        // Inside a caller's transaction the failed statement aborted it: only the caller can retry.
        if (attempt >= STATEMENT_ATTEMPTS || !again || !this.autocommit()) throw err;
        await new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
      }
    }
  }

  private autocommit(): boolean {
    return this.db instanceof DataSource;
  }
}

export const priceKey = (provider: string, model: string): string => `${provider}\u0000${model}`;

interface ReservationJson {
  id: string;
  request_id: string;
  user_id: string;
  effective_group_id: string | null;
  period_start: string;
  amount_micros: string;
  status: ReservationStatus;
  expires_at: string;
  created_at: string;
}
const fromJson = (r: ReservationJson): Reservation =>
  toReservation({
    ...r,
    expires_at: new Date(r.expires_at),
    created_at: new Date(r.created_at),
  });
