import type {
  BudgetCandidate,
  BudgetState,
  CounterDifference,
  EffectiveBudgetDifference,
  Group,
  PeriodKind,
  PriceForUsage,
  Reservation,
  ReserveInput,
  ReserveOutcome,
  SpendRepository,
  ThresholdEvent,
  UsageInput,
  UsageResult,
  User,
} from '@aigov/db';
import type { Actor } from './actor';
import { can } from './policy';
import { forbidden, notFound, requireAllowed } from './store-checks';
import type { UserStore } from './users.store';

/**
 * Spend accounting and enforcement (CONTRACT 2.5, 4.3, 7; docs/permissions.md):
 * - enforcing (check, reserve, release, record usage, the prices they need): `budget.enforce`,
 *   i.e. site roles ai-gateway and owner, and requests arriving over NATS (system:ai-gateway);
 * - reports and explain: whoever may read the user (its spend) or the group (the group's spend);
 * - upkeep (expiry sweeper, threshold outbox, reconciliation): system:budget-api only.
 * Spend is not audited entry by entry: the ledger is its own record.
 */
export class SpendStore {
  constructor(
    private readonly spend: SpendRepository,
    private readonly users: UserStore,
  ) {}

  /** The state a check or report reads: the user's effective budget and counters in the period. */
  async getBudgetState(actor: Actor, userId: string, periodStart: string): Promise<BudgetState> {
    enforcing(actor);
    return this.spend.getBudgetState(userId, periodStart);
  }

  async reserve(actor: Actor, input: ReserveInput): Promise<ReserveOutcome> {
    enforcing(actor);
    return this.spend.reserve(input);
  }

  /** Not found when there is no such reservation; `released: false` when it is no longer held. */
  async release(actor: Actor, reservationId: string): Promise<{ released: boolean }> {
    enforcing(actor);
    if (await this.spend.releaseReservation(reservationId)) return { released: true };
    if (!(await this.spend.getReservation(reservationId))) throw notFound('Reservation')();
    return { released: false };
  }

  async getReservation(actor: Actor, reservationId: string): Promise<Reservation> {
    enforcing(actor);
    const r = await this.spend.getReservation(reservationId);
    if (!r) throw notFound('Reservation')();
    return r;
  }

  async getPricesForUsage(
    actor: Actor,
    pairs: readonly { provider: string; model: string }[],
  ): Promise<Map<string, PriceForUsage>> {
    enforcing(actor);
    return this.spend.getPricesForUsage(pairs);
  }

  async recordUsage(
    actor: Actor,
    records: readonly UsageInput[],
  ): Promise<{ results: UsageResult[]; thresholds: number }> {
    enforcing(actor);
    return this.spend.recordUsage(records);
  }

  /** A user's spend in the period, for whoever may read the user (found with UserStore.getUser). */
  async getUserSpend(actor: Actor, user: User, periodStart: string): Promise<BudgetState> {
    await this.users.assertCanRead(actor, user);
    return this.spend.getBudgetState(user.id, periodStart);
  }

  /**
   * The candidates of the user's budget resolution and its state. A reader by organization role
   * alone sees the group and organization of a candidate only when it lies in such an
   * organization (like overrides, CONTRACT 3); the others keep their kind and limit, so the rule
   * still reads, with the ids withheld (null).
   */
  async explainBudget(
    actor: Actor,
    user: User,
    periodStart: string,
  ): Promise<{ candidates: BudgetCandidate[]; state: BudgetState }> {
    await this.users.assertCanRead(actor, user);
    const [candidates, state] = await Promise.all([
      this.spend.listBudgetCandidates(user.id),
      this.spend.getBudgetState(user.id, periodStart),
    ]);
    if (can(actor, 'user.read', { userId: user.id })) return { candidates, state };
    const visible = (organizationId: string | null) =>
      organizationId !== null &&
      can(actor, 'user.read', { userId: user.id, organizationIds: [organizationId] });
    const redacted = candidates.map((c) =>
      visible(c.organizationId) ? c : { ...c, groupId: null, organizationId: null },
    );
    const winner = candidates[0];
    const effectiveVisible = winner ? visible(winner.organizationId) : visible(state.effectiveGroupId);
    return {
      candidates: redacted,
      state: effectiveVisible ? state : { ...state, effectiveGroupId: null },
    };
  }

  /** Spend attributed to the group between `from` and `to`; the group was found with GroupStore.getGroup. */
  async getGroupSpend(actor: Actor, group: Group, from: Date, to: Date): Promise<bigint> {
    requireAllowed(
      actor,
      'group.read',
      { organizationIds: [group.organizationId], groupId: group.id },
      notFound('Group'),
    );
    return this.spend.getGroupSpend(group.id, from, to);
  }

  async expireReservations(actor: Actor, now: Date, limit: number): Promise<string[]> {
    maintaining(actor);
    return this.spend.expireReservations(now, limit);
  }

  /** Inside a transaction: lock unpublished threshold events (see SpendRepository). */
  async lockUnpublishedThresholds(actor: Actor, limit: number): Promise<ThresholdEvent[]> {
    maintaining(actor);
    return this.spend.lockUnpublishedThresholds(limit);
  }

  async markThresholdsPublished(actor: Actor, events: readonly ThresholdEvent[]): Promise<void> {
    maintaining(actor);
    await this.spend.markThresholdsPublished(events);
  }

  async listCounterDifferences(actor: Actor, kind: PeriodKind): Promise<CounterDifference[]> {
    maintaining(actor);
    return this.spend.listCounterDifferences(kind);
  }

  async rebuildCounters(actor: Actor, kind: PeriodKind): Promise<number> {
    maintaining(actor);
    return this.spend.rebuildCounters(kind);
  }

  async listEffectiveBudgetDifferences(actor: Actor): Promise<EffectiveBudgetDifference[]> {
    maintaining(actor);
    return this.spend.listEffectiveBudgetDifferences();
  }

  /** Recomputes the users whose materialized effective budget differs; returns how many. */
  async repairEffectiveBudgets(actor: Actor): Promise<number> {
    maintaining(actor);
    return this.spend.repairEffectiveBudgets();
  }
}

const enforcing = (actor: Actor): void =>
  requireAllowed(actor, 'budget.enforce', {}, forbidden('enforce budgets'));
const maintaining = (actor: Actor): void =>
  requireAllowed(actor, 'spend.maintain', {}, forbidden('maintain the spend ledger'));
