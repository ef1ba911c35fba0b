// The cases of SpendStore for stores.int-spec.ts:
// - enforcing methods (budget.enforce) are allowed to the site roles ai-gateway and owner and to
//   system:ai-gateway, and refused to everyone else;
// - upkeep (spend.maintain) is system:budget-api's alone;
// - reports follow user read and group read.
// Assertions use node:assert, not jest's `expect`: this file is no test file, so the build
// compiles it too, without jest's globals.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Actor, Stores } from '@aigov/authz';
import type { UsageInput } from '@aigov/db';
import { Stores as StoresOn } from './stores';
import {
  actorOf,
  insertPerson,
  rows,
  type ActorName,
  type Person,
  type World,
} from './stores.int-spec-helpers';

type Who<F> = ActorName | { label: string; actor: (f: F) => Actor };

export interface SpendScenario<F, R> {
  title: string;
  arrange?: (w: World) => Promise<F>;
  act: (s: Stores, actor: Actor, f: NoInfer<F>, w: World) => Promise<R>;
  expect?: (r: NoInfer<R>, f: NoInfer<F>, w: World, actor: Actor) => void | Promise<void>;
  allow?: Who<NoInfer<F>>[];
  deny?: [Who<NoInfer<F>>, 'forbidden' | 'not_found'][];
}
type AnyScenario = SpendScenario<unknown, unknown>;
const scenario = <F, R>(s: SpendScenario<F, R>): AnyScenario => s as unknown as AnyScenario;

const PERIOD = '2026-12-01';
const ENFORCERS: ActorName[] = ['gateway', 'owner', 'aiGateway'];
const NOT_ENFORCERS: [ActorName, 'forbidden'][] = [
  ['groupMember', 'forbidden'],
  ['userAdmin', 'forbidden'],
  ['budgetApi', 'forbidden'],
  ['pricingWorker', 'forbidden'],
];
const NOT_MAINTAINERS: [ActorName, 'forbidden'][] = [
  ['owner', 'forbidden'],
  ['gateway', 'forbidden'],
  ['aiGateway', 'forbidden'],
];

const usage = (userId: string, cost: bigint): UsageInput => ({
  requestId: randomUUID(),
  userId,
  provider: 'acme',
  model: 'm1',
  inputTokens: 1n,
  outputTokens: 1n,
  cacheReadTokens: 0n,
  cacheWriteTokens: 0n,
  prices: { input: 1n, output: 1n, cacheRead: null, cacheWrite: null },
  priceSource: 'default',
  costMicros: cost,
  occurredAt: new Date(),
  periodStart: PERIOD,
  reservationId: null,
});

/** A new member of group A1 (budget w.budgetMicros) with a hold of 5 micros. */
async function heldReservation(w: World): Promise<{ p: Person; reservationId: string }> {
  const p = await insertPerson(w.ds, { orgs: { [w.orgA.id]: [] }, groups: [w.groupA1.id] });
  const gateway = actorOf(w, 'aiGateway');
  const r = await new StoresOn(w.ds).spend.reserve(gateway, {
    requestId: randomUUID(),
    userId: p.user.id,
    periodStart: PERIOD,
    amountMicros: 5n,
    expiresAt: new Date(Date.now() - 1_000),
  });
  assert.equal(r.kind, 'granted');
  return { p, reservationId: r.kind === 'granted' ? r.reservation.id : '' };
}

const self = { label: 'the user themself', actor: (f: { p: Person }) => f.p.actor };

export const SPEND_CASES: Record<string, AnyScenario[]> = {
  'SpendStore.getBudgetState': [
    scenario({
      title: "a member of A1's state",
      act: (s, a, _f, w) => s.spend.getBudgetState(a, w.people.groupMember.user.id, PERIOD),
      expect: (r, _f, w) => assert.equal(r.spendLimitMicros, w.budgetMicros),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
  ],
  'SpendStore.reserve': [
    scenario({
      title: 'a hold for a member of A1',
      act: (s, a, _f, w) =>
        s.spend.reserve(a, {
          requestId: randomUUID(),
          userId: w.people.groupMember.user.id,
          periodStart: PERIOD,
          amountMicros: 1n,
          expiresAt: new Date(Date.now() + 60_000),
        }),
      expect: (r) => assert.equal(r.kind, 'granted'),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
  ],
  'SpendStore.release': [
    scenario({
      title: 'a held reservation',
      arrange: heldReservation,
      act: (s, a, f) => s.spend.release(a, f.reservationId),
      expect: (r) => assert.deepEqual(r, { released: true }),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
    scenario({
      title: 'an unknown reservation',
      act: (s, a) => s.spend.release(a, randomUUID()),
      deny: [['gateway', 'not_found']],
    }),
  ],
  'SpendStore.getReservation': [
    scenario({
      title: 'a held reservation',
      arrange: heldReservation,
      act: (s, a, f) => s.spend.getReservation(a, f.reservationId),
      expect: (r) => assert.equal(r.status, 'held'),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
  ],
  'SpendStore.getPricesForUsage': [
    scenario({
      title: "the world's model m1 (custom over default)",
      act: (s, a, _f, w) => s.spend.getPricesForUsage(a, [{ provider: w.provider, model: 'm1' }]),
      expect: (r) => assert.equal([...r.values()][0]?.source, 'custom'),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
  ],
  'SpendStore.recordUsage': [
    scenario({
      title: 'one record for a member of A1',
      act: (s, a, _f, w) => s.spend.recordUsage(a, [usage(w.people.groupMember.user.id, 3n)]),
      expect: (r) => assert.equal(r.results[0].costMicros, 3n),
      allow: ENFORCERS,
      deny: NOT_ENFORCERS,
    }),
  ],
  'SpendStore.getUserSpend': [
    scenario({
      title: "a member of A1's spend",
      arrange: async (w: World) => ({
        p: await insertPerson(w.ds, { orgs: { [w.orgA.id]: [] }, groups: [w.groupA1.id] }),
      }),
      act: (s, a, f) => s.spend.getUserSpend(a, f.p.user, PERIOD),
      expect: (r, _f, w) => assert.equal(r.spendLimitMicros, w.budgetMicros),
      allow: [self, 'owner', 'userAdmin', 'auditor', 'orgAdminA', 'orgAuditorA'],
      deny: [
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['aiGateway', 'not_found'],
      ],
    }),
  ],
  'SpendStore.explainBudget': [
    scenario({
      title: 'a member of A1 with an override on B',
      arrange: async (w: World) => {
        const p = await insertPerson(w.ds, {
          orgs: { [w.orgA.id]: [], [w.orgB.id]: [] },
          groups: [w.groupA1.id, w.groupB.id],
        });
        await rows(
          w.ds,
          'INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, 7)',
          [p.user.id, w.groupB.id],
        );
        return { p };
      },
      act: (s, a, f) => s.spend.explainBudget(a, f.p.user, PERIOD),
      expect: (r, _f, w, actor) => {
        assert.equal(r.candidates[0].kind, 'user_override');
        assert.equal(r.candidates[0].spendLimitMicros, 7n);
        // Organization A's admin may not see which group of B the override names.
        const seesB = actor.kind === 'system' || actor.siteRoles.size > 0 || actor.orgRoles.has(w.orgB.id);
        assert.equal(r.candidates[0].groupId, seesB ? w.groupB.id : null);
        assert.equal(r.state.effectiveGroupId, seesB ? w.groupB.id : null);
      },
      allow: [self, 'owner', 'auditor', 'orgAdminA'],
      deny: [
        ['orgMember', 'not_found'],
        ['gateway', 'not_found'],
      ],
    }),
  ],
  'SpendStore.getGroupSpend': [
    scenario({
      title: 'group A1 this month',
      act: (s, a, _f, w) =>
        s.spend.getGroupSpend(
          a,
          w.groupA1,
          new Date('2026-12-01T00:00:00Z'),
          new Date('2027-01-01T00:00:00Z'),
        ),
      expect: (r) => assert.equal(typeof r, 'bigint'),
      allow: ['groupMember', 'orgAuditorA', 'owner', 'auditor'],
      deny: [
        ['memberB', 'not_found'],
        ['orgMember', 'not_found'],
        ['gateway', 'not_found'],
      ],
    }),
  ],
  'SpendStore.expireReservations': [
    scenario({
      title: 'holds past their expiry',
      arrange: heldReservation,
      act: (s, a) => s.spend.expireReservations(a, new Date(), 10_000),
      expect: (r, f) => assert.ok(r.includes(f.reservationId)),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.lockUnpublishedThresholds': [
    scenario({
      title: 'the outbox',
      act: (s, a) => s.spend.lockUnpublishedThresholds(a, 10),
      expect: (r) => assert.ok(Array.isArray(r)),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.markThresholdsPublished': [
    scenario({
      title: 'no events',
      act: (s, a) => s.spend.markThresholdsPublished(a, []),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.listCounterDifferences': [
    scenario({
      title: 'counters against the ledger',
      act: (s, a) => s.spend.listCounterDifferences(a, 'month'),
      expect: (r) => assert.ok(Array.isArray(r)),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.rebuildCounters': [
    scenario({
      title: 'counters from the ledger, in a transaction',
      act: (s, a) => s.transaction(null, (tx) => tx.spend.rebuildCounters(a, 'month')),
      expect: (r) => assert.equal(typeof r, 'number'),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.listEffectiveBudgetDifferences': [
    scenario({
      title: 'materialized effective budgets against the resolution',
      act: (s, a) => s.spend.listEffectiveBudgetDifferences(a),
      expect: (r) => assert.deepEqual(r, []),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
  'SpendStore.repairEffectiveBudgets': [
    scenario({
      title: 'effective budgets recomputed where they differ',
      act: (s, a) => s.spend.repairEffectiveBudgets(a),
      expect: (r) => assert.equal(r, 0),
      allow: ['budgetApi'],
      deny: NOT_MAINTAINERS,
    }),
  ],
};
