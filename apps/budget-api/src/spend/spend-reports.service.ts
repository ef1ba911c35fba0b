import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { BudgetCandidate, BudgetState } from '@aigov/db';
import { isDomainError } from '@aigov/errors';
import { EnforcementService } from './enforcement.service';
import type { Period } from './period';

/** The resolution rule of CONTRACT 7, as explain states it. */
export const RESOLUTION_RULE =
  "The user's override applies when there is one. Otherwise the highest spend_limit_micros among " +
  'the budgeted groups the user is a member of applies (the Everyone group of each organization ' +
  'included; ties: earliest organization membership, then smallest group id). Otherwise there is ' +
  "no limit, and spend is attributed to the Everyone group of the user's earliest organization.";

const remaining = (s: BudgetState): number | null => {
  if (s.spendLimitMicros === null) return null;
  const left = s.spendLimitMicros - s.spentMicros - s.heldMicros;
  return Number(left > 0n ? left : 0n);
};

const periodBody = (p: Period) => ({ period_start: p.start.toISOString(), period_end: p.end.toISOString() });

const candidateBody = (c: BudgetCandidate) => ({
  rank: c.rank,
  kind: c.kind,
  group_id: c.groupId,
  organization_id: c.organizationId,
  spend_limit_micros: Number(c.spendLimitMicros),
  member_since: c.memberSince === null ? null : new Date(c.memberSince).toISOString(),
});

/** Why the winner won, in words, from the candidates the resolution ranked. */
function decision(candidates: readonly BudgetCandidate[]): string {
  const [winner, runnerUp] = candidates;
  if (!winner) return 'No override and no budgeted group: no limit applies.';
  if (winner.kind === 'user_override')
    return "The user's override applies; group budgets are not considered.";
  if (!runnerUp) return 'The only budgeted group of the user applies.';
  if (runnerUp.spendLimitMicros < winner.spendLimitMicros)
    return 'The budgeted group with the highest limit applies.';
  return 'Several budgeted groups share the highest limit: the one in the organization the user joined first applies (then the smallest group id).';
}

/**
 * Spend reports and the explanation of a user's budget (CONTRACT 2.5), for whoever may read
 * the user or the group. Amounts are for the current budget period of the enforcement clock.
 */
@Injectable()
export class SpendReportsService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(EnforcementService) private readonly enforcement: EnforcementService,
  ) {}

  async userSpend(actor: Actor, userRef: string) {
    const user = await this.stores.users.getUser(actor, userRef);
    const period = this.enforcement.period();
    const s = await this.stores.spend.getUserSpend(actor, user, period.startDate);
    return {
      user_id: user.id,
      effective_group_id: s.effectiveGroupId,
      limit_source: s.limitSource,
      spend_limit_micros: s.spendLimitMicros === null ? null : Number(s.spendLimitMicros),
      spent_micros: Number(s.spentMicros),
      held_micros: Number(s.heldMicros),
      remaining_micros: remaining(s),
      ...periodBody(period),
    };
  }

  async explain(actor: Actor, userRef: string) {
    const user = await this.stores.users.getUser(actor, userRef);
    const period = this.enforcement.period();
    const { candidates, state } = await this.stores.spend.explainBudget(actor, user, period.startDate);
    const winner = candidates[0] ?? null;
    return {
      user_id: user.id,
      user_status: user.status,
      rule: RESOLUTION_RULE,
      decision: decision(candidates),
      candidates: candidates.map(candidateBody),
      winner: winner === null ? null : candidateBody(winner),
      limit_source: state.limitSource,
      spend_limit_micros: state.spendLimitMicros === null ? null : Number(state.spendLimitMicros),
      effective_group_id: state.effectiveGroupId,
      spent_micros: Number(state.spentMicros),
      held_micros: Number(state.heldMicros),
      remaining_micros: remaining(state),
      ...periodBody(period),
    };
  }

  async groupSpend(actor: Actor, groupId: string) {
    const group = await this.stores.groups.getGroup(actor, groupId);
    const period = this.enforcement.period();
    const [limit, preview, spent] = await Promise.all([
      this.stores.budgets.getGroupBudget(actor, group.id).then(
        (b) => Number(b.spendLimitMicros),
        (err: unknown) => {
          // No budget row: the group sets no limit. Anything else is a real failure.
          if (isDomainError(err) && err.code === 'not_found') return null;
          throw err;
        },
      ),
      this.stores.groups.getGroupMemberPreview(actor, group),
      this.stores.spend.getGroupSpend(actor, group, period.start, period.end),
    ]);
    return {
      group_id: group.id,
      spend_limit_micros: limit,
      members: preview.memberCount,
      spent_micros: Number(spent),
      ...periodBody(period),
    };
  }
}
