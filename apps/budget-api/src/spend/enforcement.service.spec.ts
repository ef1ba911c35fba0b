import type { BudgetState } from '@aigov/db';
import { checkReply } from './enforcement.service';
import { periodOf } from './period';

// The check rule of CONTRACT 7: allowed with no limit; with a = 0 when spent + held < limit;
// with a > 0 when spent + held + a <= limit. A limit of 0 blocks everything.

const PERIOD = periodOf('month', new Date('2026-12-02T12:00:00Z'));
const GROUP = '11111111-1111-4111-8111-111111111111';

function state(
  limit: bigint | null,
  spent: bigint,
  held: bigint,
  over: Partial<BudgetState> = {},
): BudgetState {
  return {
    limitSource: limit === null ? null : 'group',
    spendLimitMicros: limit,
    effectiveGroupId: GROUP,
    userStatus: 'active',
    spentMicros: spent,
    heldMicros: held,
    ...over,
  };
}

const decide = (s: BudgetState, amount: bigint) => {
  const r = checkReply(s, PERIOD, amount);
  return { allowed: r.allowed, reason: r.reason, remaining: r.remaining_micros };
};

describe('checkReply (CONTRACT 7 rule table)', () => {
  it.each([
    // limit, spent, held, amount -> allowed, reason, remaining
    [100n, 0n, 0n, 0n, true, undefined, 100],
    [100n, 60n, 39n, 0n, true, undefined, 1],
    [100n, 60n, 40n, 0n, false, 'limit_reached', 0],
    [100n, 60n, 39n, 1n, true, undefined, 1],
    [100n, 60n, 39n, 2n, false, 'insufficient_budget', 1],
    [100n, 0n, 0n, 100n, true, undefined, 100],
    [100n, 0n, 0n, 101n, false, 'insufficient_budget', 100],
    [100n, 100n, 0n, 1n, false, 'limit_reached', 0],
    [100n, 0n, 100n, 0n, false, 'limit_reached', 0],
  ] as const)(
    'limit %s, spent %s, held %s, amount %s -> allowed %s (%s), remaining %s',
    (limit, spent, held, amount, allowed, reason, remaining) => {
      expect(decide(state(limit, spent, held), amount)).toEqual({ allowed, reason, remaining });
    },
  );

  it('a limit of 0 blocks everything, also a check of amount 0', () => {
    expect(decide(state(0n, 0n, 0n), 0n)).toEqual({ allowed: false, reason: 'limit_reached', remaining: 0 });
    expect(decide(state(0n, 0n, 0n), 1n)).toEqual({ allowed: false, reason: 'limit_reached', remaining: 0 });
  });

  it('remaining is never negative, also when usage overshot the limit', () => {
    expect(decide(state(100n, 150n, 20n), 0n)).toEqual({
      allowed: false,
      reason: 'limit_reached',
      remaining: 0,
    });
  });

  it('without a limit everything is allowed and remaining is null', () => {
    const r = checkReply(state(null, 10n ** 15n, 5n), PERIOD, 10n ** 12n);
    expect(r).toEqual({
      allowed: true,
      limit_source: null,
      spend_limit_micros: null,
      spent_micros: 10 ** 15,
      held_micros: 5,
      remaining_micros: null,
      effective_group_id: GROUP,
      period_start: '2026-12-01T00:00:00.000Z',
      period_end: '2027-01-01T00:00:00.000Z',
    });
    expect('reason' in r).toBe(false);
  });

  it("the user's own state comes before the limit: unknown, then suspended", () => {
    expect(decide(state(0n, 0n, 0n, { userStatus: null }), 0n).reason).toBe('unknown_user');
    expect(decide(state(null, 0n, 0n, { userStatus: 'suspended' }), 0n).reason).toBe('user_suspended');
    expect(decide(state(100n, 200n, 0n, { userStatus: 'suspended' }), 5n)).toEqual({
      allowed: false,
      reason: 'user_suspended',
      remaining: 0,
    });
  });

  it('replies the full state with the period', () => {
    expect(checkReply(state(1_000n, 300n, 200n, { limitSource: 'user_override' }), PERIOD, 600n)).toEqual({
      allowed: false,
      reason: 'insufficient_budget',
      limit_source: 'user_override',
      spend_limit_micros: 1_000,
      spent_micros: 300,
      held_micros: 200,
      remaining_micros: 500,
      effective_group_id: GROUP,
      period_start: '2026-12-01T00:00:00.000Z',
      period_end: '2027-01-01T00:00:00.000Z',
    });
  });
});
