import { Inject, Injectable, Optional } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import {
  DEFAULT_RESERVATION_TTL_SECONDS,
  type BudgetCheckReply,
  type BudgetCheckRequest,
  type BudgetReleaseReply,
  type BudgetReserveReply,
  type BudgetReserveRequest,
  type DenialReason,
  type UsageRecord,
  type UsageReply,
} from '@aigov/contracts';
import { priceKey, type BudgetState, type PriceForUsage, type UsageInput } from '@aigov/db';
import { validationFailed, type DomainError, type FieldValidation } from '@aigov/errors';
import { Metrics } from '@aigov/observability';
import type { Counter } from 'prom-client';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { costOf, reservationCost, type CostResult } from './cost';
import { occurredAtProblem, periodOf, type Clock, type Period } from './period';

/** The clock of spend accounting; tests replace it to cross period boundaries. */
export const SPEND_CLOCK = Symbol('SPEND_CLOCK');

/** Told when recording usage wrote threshold events, so the outbox publishes them promptly. */
export const THRESHOLD_WAKE = Symbol('THRESHOLD_WAKE');
export interface ThresholdWake {
  wake(): void;
}

/** The outcome of one usage record of a batch: its reply, or why it was refused (never retried). */
export type UsageOutcome = { ok: true; reply: UsageReply } | { ok: false; error: DomainError };

/**
 * Budget checks, reservations, releases and usage recording (CONTRACT 7, 4.3, 2.5), shared by
 * the HTTP routes and the NATS handlers. What must hold under concurrency is decided by single
 * statements of the ledger (SpendRepository); this service computes periods from its clock,
 * prices usage exactly (cost.ts) and shapes the replies.
 */
@Injectable()
export class EnforcementService {
  private readonly unpriced: Counter;

  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(SPEND_CLOCK) private readonly clock: Clock,
    @Inject(Metrics) metrics: Metrics,
    @Optional() @Inject(THRESHOLD_WAKE) private readonly thresholds: ThresholdWake | null,
  ) {
    this.unpriced = metrics.counter(
      'aigov_unpriced_usage_total',
      'Usage records without a price (recorded with cost null, counted as 0), by provider',
      ['provider'],
    );
  }

  period(at: Date = this.clock.now()): Period {
    return periodOf(this.options.budgetPeriod, at);
  }

  async check(actor: Actor, req: BudgetCheckRequest): Promise<BudgetCheckReply> {
    const amount = this.amount(req.amount_micros);
    const period = this.period();
    const state = await this.stores.spend.getBudgetState(actor, req.user_id.toLowerCase(), period.startDate);
    return checkReply(state, period, amount);
  }

  async reserve(actor: Actor, req: BudgetReserveRequest): Promise<BudgetReserveReply> {
    const now = this.clock.now();
    const period = this.period(now);
    const userId = req.user_id.toLowerCase();
    let amount: bigint;
    if (req.amount_micros !== undefined) {
      const tokenFields = (['provider', 'model', 'max_input_tokens', 'max_output_tokens'] as const).filter(
        (f) => req[f] !== undefined,
      );
      if (tokenFields.length > 0) {
        throw validationFailed(
          tokenFields.map((f) => ({ field: f, detail: 'must not be given together with amount_micros' })),
        );
      }
      amount = this.amount(req.amount_micros);
    } else {
      const missing: FieldValidation[] = (
        ['provider', 'model', 'max_input_tokens', 'max_output_tokens'] as const
      )
        .filter((f) => req[f] === undefined)
        .map((f) => ({ field: f, detail: 'is required when amount_micros is absent' }));
      if (missing.length === 4) {
        throw validationFailed([
          {
            field: 'amount_micros',
            detail: 'give amount_micros or provider, model, max_input_tokens and max_output_tokens',
          },
        ]);
      }
      if (missing.length > 0) throw validationFailed(missing);
      const prices = await this.stores.spend.getPricesForUsage(actor, [
        { provider: req.provider!, model: req.model! },
      ]);
      const cost = reservationCost(
        prices.get(priceKey(req.provider!, req.model!)) ?? null,
        BigInt(req.max_input_tokens!),
        BigInt(req.max_output_tokens!),
      );
      if (cost.costMicros === null) {
        if (this.options.unpricedUsage === 'block') {
          const state = await this.stores.spend.getBudgetState(actor, userId, period.startDate);
          const base = checkReply(state, period, 0n);
          // Who may not spend at all hears that first; otherwise the model is the reason.
          const reason = base.allowed ? 'unpriced_model' : base.reason;
          return { ...base, allowed: false, reason, amount_micros: 0 };
        }
        amount = 0n;
      } else {
        amount = cost.costMicros;
      }
    }
    const ttl = req.ttl_seconds ?? DEFAULT_RESERVATION_TTL_SECONDS;
    const outcome = await this.stores.spend.reserve(actor, {
      requestId: req.request_id,
      userId,
      periodStart: period.startDate,
      amountMicros: amount,
      expiresAt: new Date(now.getTime() + ttl * 1000),
    });
    if (outcome.kind === 'denied') return this.denied(outcome.state, period, amount);
    const r = outcome.reservation;
    return {
      ...checkReply(outcome.state, period, 0n),
      allowed: true,
      reservation_id: r.id,
      amount_micros: Number(r.amountMicros),
      expires_at: r.expiresAt.toISOString(),
      ...(outcome.kind === 'replayed' ? { duplicate: true } : {}),
    };
  }

  /**
   * The reply to a refused reservation, from the counters read after the refusal
   * (SpendRepository.reserve): the refusal was decided on the row as locked, which concurrent
   * grants may have filled since the statement began, and they are what the caller needs to see.
   * A refusal stays a refusal even when a release in between makes them look roomy.
   */
  private denied(state: BudgetState, period: Period, amount: bigint): BudgetReserveReply {
    const reply = checkReply(state, period, amount);
    return {
      ...reply,
      allowed: false,
      reason: reply.reason ?? 'insufficient_budget',
      amount_micros: Number(amount),
    };
  }

  async release(actor: Actor, reservationId: string): Promise<BudgetReleaseReply> {
    return this.stores.spend.release(actor, reservationId.toLowerCase());
  }

  /**
   * Records a batch of validated usage records. Each outcome is the record's reply (the first
   * recording's for a replayed request id, also within the batch) or the reason it was refused
   * (an occurred_at outside the window). Database failures throw: nothing of the batch was kept.
   */
  async recordUsage(actor: Actor, records: readonly UsageRecord[]): Promise<UsageOutcome[]> {
    const now = this.clock.now();
    const outcomes: (UsageOutcome | null)[] = records.map(() => null);
    const accepted: { index: number; record: UsageRecord; occurredAt: Date }[] = [];
    for (const [index, record] of records.entries()) {
      const occurredAt = record.occurred_at === undefined ? now : new Date(record.occurred_at);
      const problem = occurredAtProblem(now, occurredAt);
      if (problem) {
        outcomes[index] = { ok: false, error: validationFailed([{ field: 'occurred_at', detail: problem }]) };
      } else {
        accepted.push({ index, record, occurredAt });
      }
    }
    const pairs = uniqueBy(
      accepted.map((a) => ({ provider: a.record.provider, model: a.record.model })),
      (p) => priceKey(p.provider, p.model),
    );
    const prices =
      accepted.length > 0
        ? await this.stores.spend.getPricesForUsage(actor, pairs)
        : new Map<string, PriceForUsage>();
    // One ledger row per request id: a repeat within the batch gets the first one's result.
    const firstOf = new Map<string, number>();
    const inputs: UsageInput[] = [];
    // Most records of a batch fall in one period: the last one found is tried first.
    let period: Period | null = null;
    for (const a of accepted) {
      if (firstOf.has(a.record.request_id)) continue;
      firstOf.set(a.record.request_id, a.index);
      const t = a.occurredAt.getTime();
      if (!period || t < period.start.getTime() || t >= period.end.getTime())
        period = this.period(a.occurredAt);
      inputs.push(this.priced(a.record, a.occurredAt, period, prices));
    }
    const { results, thresholds } = await this.stores.spend.recordUsage(actor, inputs);
    if (thresholds > 0) this.thresholds?.wake();
    const byRequest = new Map(results.map((r) => [r.requestId, r]));
    for (const a of accepted) {
      const r = byRequest.get(a.record.request_id)!;
      const repeat = firstOf.get(a.record.request_id) !== a.index;
      if (!repeat && !r.duplicate && r.costMicros === null)
        this.unpriced.inc({ provider: a.record.provider });
      outcomes[a.index] = {
        ok: true,
        reply: {
          request_id: r.requestId,
          cost_micros: r.costMicros === null ? null : Number(r.costMicros),
          price_source: r.priceSource,
          effective_group_id: r.effectiveGroupId,
          duplicate: r.duplicate || repeat,
          reservation_settled: !repeat && r.reservationSettled,
        },
      };
    }
    return outcomes.map((o) => o!);
  }

  private priced(
    record: UsageRecord,
    occurredAt: Date,
    period: Period,
    prices: Map<string, PriceForUsage>,
  ): UsageInput {
    const tokens = {
      input: BigInt(record.input_tokens),
      output: BigInt(record.output_tokens),
      cacheRead: BigInt(record.cache_read_tokens ?? 0),
      cacheWrite: BigInt(record.cache_write_tokens ?? 0),
    };
    const cost: CostResult = costOf(prices.get(priceKey(record.provider, record.model)) ?? null, tokens);
    return {
      requestId: record.request_id,
      userId: record.user_id.toLowerCase(),
      provider: record.provider,
      model: record.model,
      inputTokens: tokens.input,
      outputTokens: tokens.output,
      cacheReadTokens: tokens.cacheRead,
      cacheWriteTokens: tokens.cacheWrite,
      prices: cost.prices,
      priceSource: cost.costMicros === null ? null : cost.priceSource,
      costMicros: cost.costMicros,
      occurredAt,
      periodStart: period.startDate,
      reservationId: record.reservation_id?.toLowerCase() ?? null,
    };
  }

  private amount(micros: number | undefined): bigint {
    const amount = BigInt(micros ?? 0);
    const max = this.options.maxSpendLimitMicros;
    if (amount > max) throw validationFailed([{ field: 'amount_micros', detail: `Must not exceed ${max}.` }]);
    return amount;
  }
}

/**
 * The check rule of CONTRACT 7 on a user's state: allowed with no limit, or with a = 0 when
 * spent + held < limit, or with a > 0 when spent + held + a <= limit. Denials say why, the
 * user's own state first (unknown, suspended), then the limit.
 */
export function checkReply(state: BudgetState, period: Period, amount: bigint): BudgetCheckReply {
  const used = state.spentMicros + state.heldMicros;
  const limit = state.spendLimitMicros;
  let reason: DenialReason | undefined;
  if (state.userStatus === null) reason = 'unknown_user';
  else if (state.userStatus === 'suspended') reason = 'user_suspended';
  else if (limit !== null) {
    if (used >= limit) reason = 'limit_reached';
    else if (amount > 0n && used + amount > limit) reason = 'insufficient_budget';
  }
  return {
    allowed: reason === undefined,
    ...(reason ? { reason } : {}),
    limit_source: state.limitSource,
    spend_limit_micros: limit === null ? null : Number(limit),
    spent_micros: Number(state.spentMicros),
    held_micros: Number(state.heldMicros),
    remaining_micros: limit === null ? null : Number(used >= limit ? 0n : limit - used),
    effective_group_id: state.effectiveGroupId,
    period_start: period.start.toISOString(),
    period_end: period.end.toISOString(),
  };
}

function uniqueBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const i of items) if (!seen.has(key(i))) seen.set(key(i), i);
  return [...seen.values()];
}
