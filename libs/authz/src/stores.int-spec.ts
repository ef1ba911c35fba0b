import { randomBytes } from 'node:crypto';
import { Stores, type Actor } from '@aigov/authz';
import { createDataSource, type Group } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import {
  addGroupMember,
  addOrganizationMember,
  createTestDatabase,
  insertApiKey,
  insertGroup,
  insertOverride,
  newKeyId,
  uniqueName,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import { IDENTITY_SYNC_CASES } from './identity-sync.store.int-spec-cases';
import { SPEND_CASES } from './spend.store.int-spec-cases';
import {
  ACTOR_LABELS,
  actorOf,
  destroyDataSource,
  insertBudget,
  insertPerson,
  insertPrice,
  rows,
  setup,
  type ActorName,
  type Person,
  type World,
} from './stores.int-spec-helpers';

// Every public store method, called on a real migrated database by an actor docs/permissions.md
// permits and by one it forbids. The enumeration test keeps the table complete: a new store, or a
// new method of one, fails until its allow and deny cases are in CASES.

/** Private TypeScript methods are still on the prototype; they are no part of a store's surface. */
const NOT_PUBLIC = new Set([
  'UserStore.lookup', // resolves a user reference before the public methods check it
  // (the outranking rule of deleteUser and of the key methods is covered by their deny cases)
  'GroupStore.recordMembers', // the entries of addGroupMembers and removeGroupMembers
  'IdentitySyncStore.check', // the one check all its methods share
  'IdentitySyncStore.recordGroupMember', // the entry of addGroupMember and removeGroupMember
]);

/**
 * Methods that check nothing by design, hence have an allow case and no deny case.
 * UserStore.createFirstOwner is the bootstrap, which nobody can authorize: its caller allows it
 * only while no user exists (under a lock); its cases show it records itself as the actor.
 */
const UNCHECKED = new Set(['UserStore.createFirstOwner']);

/**
 * Methods whose names say they change the database: each of their cases observes the rows, and
 * each records its own audit entries (CONTRACT 1.5), so every allowed case says which entries it
 * leaves (`audits`: an empty list for a change CONTRACT 1.5 does not audit) and every refused call
 * leaves none. The cascades the database records (actor system:database) count too.
 */
const WRITE = /^(create|update|upsert|delete|add|remove|set)/;

/** The store classes the enumeration must at least find (it finds new ones by itself). */
const KNOWN_STORES = [
  'GroupStore',
  'BudgetStore',
  'PriceStore',
  'AuditStore',
  'UserStore',
  'ApiKeyStore',
  'OrganizationStore',
  'OverrideStore',
  'IdentitySyncStore',
  'SpendStore',
];

/**
 * How a forbidden call ends: `not_found` when the actor cannot read the resource, `forbidden`
 * when it can read but not change it (docs/permissions.md), `hidden` for the list methods that
 * filter rather than refuse (the call succeeds and shows nothing the actor may not read).
 */
type Refusal = 'forbidden' | 'not_found' | 'hidden';

/** A named actor of the world, or one that comes with the case's fresh rows. */
type Who<F> = ActorName | { label: string; actor: (f: F) => Actor };

/**
 * One call, tried by each `allow` actor (it succeeds, `expect` holds, and for a write the observed
 * rows changed) and each `deny` actor (it ends as the refusal says, and the rows did not change).
 * `arrange` runs before every attempt, so writes never see each other's rows.
 */
interface Scenario<F, R> {
  title: string;
  arrange?: (w: World) => Promise<F>;
  act: (s: Stores, actor: Actor, f: NoInfer<F>, w: World) => Promise<R>;
  observe?: (f: NoInfer<F>, w: World) => Promise<unknown>;
  expect?: (r: NoInfer<R>, f: NoInfer<F>, w: World, actor: Actor) => void | Promise<void>;
  allow?: Who<NoInfer<F>>[];
  deny?: [Who<NoInfer<F>>, Refusal][];
  /** for `hidden` refusals: what the caller got instead */
  hides?: (r: NoInfer<R>, f: NoInfer<F>, w: World) => void;
  /** for WRITE methods: the entries an allowed call leaves, in any order */
  audits?: (r: NoInfer<R>, f: NoInfer<F>, w: World, actor: Actor) => AuditRow[];
}

interface AuditRow {
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  reason: string | null;
}
const byName = (a: Actor): string => (a.kind === 'user' ? a.username : a.name);
const entry = (
  actor: Actor | 'system:database',
  action: string,
  resource_type: string,
  resource_id: string,
  reason: string | null = null,
): AuditRow => ({
  actor: actor === 'system:database' ? actor : byName(actor),
  action,
  resource_type,
  resource_id,
  reason,
});
const sortRows = (xs: AuditRow[]): AuditRow[] =>
  [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

type AnyScenario = Scenario<unknown, unknown>;
const scenario = <F, R>(s: Scenario<F, R>): AnyScenario => s as unknown as AnyScenario;

const PAGE = { limit: 10_000, offset: 0 };
const ids = (xs: { id: string }[]): string[] => xs.map((x) => x.id);
const userIds = (xs: { userId: string }[]): string[] => xs.map((x) => x.userId);

// Fresh rows for writes.

/** A new group of A with one member, and a member of A outside the group. */
async function freshGroup(
  w: World,
  budget?: bigint,
): Promise<{ g: Group; member: Person; outsider: Person }> {
  const g = await insertGroup(w.ds, w.orgA.id);
  const member = await insertPerson(w.ds, { orgs: { [w.orgA.id]: [] }, groups: [g.id] });
  const outsider = await insertPerson(w.ds, { orgs: { [w.orgA.id]: [] } });
  if (budget !== undefined) await insertBudget(w.ds, g.id, budget);
  return { g, member, outsider };
}

/** A new plain member of A (readable by A's organization admins and auditors). */
async function freshMemberOfA(w: World): Promise<{ p: Person }> {
  return { p: await insertPerson(w.ds, { orgs: { [w.orgA.id]: [] } }) };
}

/** A new plain member of A with an override on A's Everyone group. */
async function freshOverride(w: World): Promise<{ p: Person }> {
  const { p } = await freshMemberOfA(w);
  await insertOverride(w.ds, p.user.id, w.everyoneA.id, 1_000_000n);
  return { p };
}

const groupMember = { label: 'a member of the group', actor: (f: { member: Person }) => f.member.actor };
const self = { label: 'the user themself', actor: (f: { p: Person }) => f.p.actor };

const groupRow = (f: { g: Group }, w: World) =>
  rows(w.ds, 'SELECT name, display_name FROM groups WHERE id = $1', [f.g.id]);
const groupMembersRows = (f: { g: Group }, w: World) =>
  rows(w.ds, 'SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id', [f.g.id]);
const budgetRow = (f: { g: Group }, w: World) =>
  rows(w.ds, 'SELECT spend_limit_micros::text AS limit FROM group_ai_budgets WHERE group_id = $1', [f.g.id]);
const userRow = (f: { p: Person }, w: World) =>
  rows(w.ds, 'SELECT id, roles FROM users WHERE id = $1', [f.p.user.id]);
const statusRow = (f: { p: Person }, w: World) =>
  rows(w.ds, 'SELECT status FROM users WHERE id = $1', [f.p.user.id]);
const keyRows = (f: { p: Person }, w: World) =>
  rows(w.ds, 'SELECT id FROM api_keys WHERE user_id = $1 ORDER BY id', [f.p.user.id]);
const membershipRow = (f: { p: Person }, w: World) =>
  rows(w.ds, 'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
    w.orgA.id,
    f.p.user.id,
  ]);
const priceRows = (f: { model: string }, w: World) =>
  rows(
    w.ds,
    'SELECT source, input_price::text AS input FROM ai_model_prices WHERE provider = $1 AND model = $2 ORDER BY source',
    [w.provider, f.model],
  );
const overrideRow = (f: { p: Person }, w: World) =>
  rows(
    w.ds,
    'SELECT group_id, spend_limit_micros::text AS limit FROM user_ai_budget_overrides WHERE user_id = $1',
    [f.p.user.id],
  );
const CASES: Record<string, AnyScenario[]> = {
  // GroupStore

  'GroupStore.getGroup': [
    scenario({
      title: 'group A1',
      act: (s, a, _f, w) => s.groups.getGroup(a, w.groupA1.id),
      expect: (g, _f, w) => expect(g.id).toBe(w.groupA1.id),
      allow: ['groupMember', 'orgAdminA', 'orgUserAdminA', 'orgAuditorA', 'owner', 'userAdmin', 'auditor'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
    scenario({
      title: "A's Everyone group",
      act: (s, a, _f, w) => s.groups.getGroup(a, w.everyoneA.id),
      expect: (g, _f, w) => expect(g.id).toBe(w.orgA.id),
      allow: ['orgMember'],
      deny: [
        ['memberB', 'not_found'],
        ['membershipListener', 'not_found'],
      ],
    }),
  ],

  'GroupStore.getGroupForUpdate': [
    scenario({
      title: 'group A1',
      act: (s, a, _f, w) => s.groups.getGroupForUpdate(a, w.groupA1.id),
      expect: (g, _f, w) => expect(g.id).toBe(w.groupA1.id),
      allow: ['orgAdminA', 'orgUserAdminA', 'owner', 'userAdmin'],
      deny: [
        ['groupMember', 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
        ['orgMember', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'GroupStore.listGroupMembers': [
    scenario({
      title: 'group A1',
      act: (s, a, _f, w) => s.groups.listGroupMembers(a, w.groupA1.id, PAGE),
      expect: (r, _f, w) => {
        expect(userIds(r.members)).toEqual([w.people.groupMember.user.id]);
        expect(r.count).toBe(1);
      },
      allow: ['groupMember', 'orgAuditorA', 'auditor'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
    scenario({
      title: "A's Everyone group (the organization's members)",
      act: (s, a, _f, w) => s.groups.listGroupMembers(a, w.everyoneA.id, PAGE),
      expect: (r, _f, w) => {
        const { orgMember, groupMember, orgAdminA, memberB } = w.people;
        expect(userIds(r.members)).toEqual(
          expect.arrayContaining([orgMember.user.id, groupMember.user.id, orgAdminA.user.id]),
        );
        expect(userIds(r.members)).not.toContain(memberB.user.id);
        expect(r.count).toBe(r.members.length);
      },
      allow: ['orgMember'],
      deny: [['memberB', 'not_found']],
    }),
  ],

  'GroupStore.getGroupMemberPreview': [
    scenario({
      title: 'group A1',
      act: (s, a, _f, w) => s.groups.getGroupMemberPreview(a, w.groupA1),
      expect: (r, _f, w) =>
        expect({ n: r.memberCount, ids: userIds(r.members) }).toEqual({
          n: 1,
          ids: [w.people.groupMember.user.id],
        }),
      allow: ['groupMember', 'orgAuditorA', 'auditor'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'GroupStore.listGroups': [
    scenario({
      title: "A's groups, by A's readers",
      act: (s, a, _f, w) => s.groups.listGroups(a, w.orgA, PAGE),
      expect: (r, _f, w) =>
        expect(ids(r.groups)).toEqual(expect.arrayContaining([w.everyoneA.id, w.groupA1.id, w.groupA2.id])),
      allow: ['orgAdminA', 'orgAuditorA', 'auditor', 'owner'],
    }),
    scenario({
      title: "A's groups, by plain members",
      act: (s, a, _f, w) => s.groups.listGroups(a, w.orgA, PAGE),
      // Everyone comes first (listGroups' order); A2 and the other groups of A stay hidden.
      expect: (r, _f, w) => expect(ids(r.groups)).toEqual([w.everyoneA.id, w.groupA1.id]),
      allow: ['groupMember'],
      deny: [['orgMember', 'hidden']],
      hides: (r, _f, w) => expect(r).toEqual({ groups: [w.everyoneA], count: 1, countCapped: false }),
    }),
    scenario({
      title: "A's groups, by outsiders",
      act: (s, a, _f, w) => s.groups.listGroups(a, w.orgA, PAGE),
      deny: [
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'GroupStore.createGroup': [
    scenario({
      title: 'in A',
      arrange: async () => ({ name: uniqueName('team') }),
      act: (s, a, f, w) => s.groups.createGroup(a, w.orgA, f.name, 'Team'),
      observe: (f, w) =>
        rows(w.ds, 'SELECT id FROM groups WHERE organization_id = $1 AND name = $2', [w.orgA.id, f.name]),
      expect: (g, f, w) => expect(g).toMatchObject({ organizationId: w.orgA.id, name: f.name }),
      audits: (g, _f, _w, a) => [entry(a, 'create', 'group', g.id)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin', 'owner'],
      deny: [
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['orgMember', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'GroupStore.updateGroup': [
    scenario({
      title: 'a group of A',
      arrange: (w: World) => freshGroup(w),
      act: (s, a, f) => s.groups.updateGroup(a, f.g, { displayName: 'Renamed' }),
      observe: groupRow,
      expect: (g) => expect(g.displayName).toBe('Renamed'),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'group', f.g.id)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin', 'owner'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'GroupStore.addGroupMembers': [
    scenario({
      title: 'a member of A to a group of A',
      arrange: (w: World) => freshGroup(w),
      act: (s, a, f) => s.groups.addGroupMembers(a, f.g, [f.outsider.user.id]),
      observe: groupMembersRows,
      expect: (added, f) => expect(added).toEqual([f.outsider.user.id]),
      audits: (_r, f, _w, a) => [entry(a, 'create', 'group_member', `${f.g.id}/${f.outsider.user.id}`)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'GroupStore.removeGroupMembers': [
    scenario({
      title: 'the member of a group of A',
      arrange: (w: World) => freshGroup(w),
      act: (s, a, f) => s.groups.removeGroupMembers(a, f.g, [f.member.user.id]),
      observe: groupMembersRows,
      expect: (removed, f) => expect(removed).toEqual([f.member.user.id]),
      audits: (_r, f, _w, a) => [entry(a, 'delete', 'group_member', `${f.g.id}/${f.member.user.id}`)],
      allow: ['orgUserAdminA', 'owner'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
      ],
    }),
  ],

  'GroupStore.deleteGroup': [
    scenario({
      title: 'a group of A',
      arrange: (w: World) => freshGroup(w),
      act: (s, a, f) => s.groups.deleteGroup(a, f.g),
      observe: groupRow,
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'group', f.g.id),
        entry('system:database', 'delete', 'group_member', `${f.g.id}/${f.member.user.id}`, 'group_deleted'),
      ],
      allow: ['orgAdminA', 'owner'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
    scenario({
      title: 'a group of A with a budget and an override: all recorded',
      arrange: async (w: World) => {
        const f = await freshGroup(w, 2_000_000n);
        await insertOverride(w.ds, f.member.user.id, f.g.id, 3_000_000n);
        return f;
      },
      act: (s, a, f) => s.groups.deleteGroup(a, f.g),
      observe: async (f, w) => [
        await groupRow(f, w),
        await budgetRow(f, w),
        await overrideRow({ p: f.member }, w),
      ],
      audits: (_r, f, _w, a) => [
        entry(a, 'delete', 'group', f.g.id),
        entry('system:database', 'delete', 'group_member', `${f.g.id}/${f.member.user.id}`, 'group_deleted'),
        entry('system:database', 'delete', 'group_ai_budget', f.g.id, 'group_deleted'),
        entry('system:database', 'delete', 'user_ai_budget_override', f.member.user.id, 'group_deleted'),
      ],
      allow: ['orgUserAdminA'],
      deny: [['orgAuditorA', 'forbidden']],
    }),
  ],

  'GroupStore.organizationMemberIds': [
    scenario({
      title: 'of group A1',
      act: (s, a, _f, w) =>
        s.groups.organizationMemberIds(a, w.groupA1, [w.people.orgMember.user.id, w.people.memberB.user.id]),
      expect: (found, _f, w) => expect([...found]).toEqual([w.people.orgMember.user.id]),
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin'],
      deny: [
        ['groupMember', 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  // BudgetStore

  'BudgetStore.getGroupBudget': [
    scenario({
      title: "group A1's",
      act: (s, a, _f, w) => s.budgets.getGroupBudget(a, w.groupA1.id),
      expect: (b, _f, w) => expect(b.spendLimitMicros).toBe(w.budgetMicros),
      allow: ['groupMember', 'orgAuditorA', 'auditor', 'owner'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'BudgetStore.upsertGroupBudget': [
    scenario({
      title: 'creates one for a group of A',
      arrange: (w: World) => freshGroup(w),
      act: (s, a, f) => s.budgets.upsertGroupBudget(a, f.g.id, 7_000_000n),
      observe: budgetRow,
      expect: (r) => {
        expect(r.before).toBeNull();
        expect(r.after.spendLimitMicros).toBe(7_000_000n);
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'group_ai_budget', f.g.id)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin', 'owner'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
        ['gateway', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['pricingWorker', 'not_found'],
        ['membershipListener', 'not_found'],
      ],
    }),
    scenario({
      title: 'changes the one of a group of A',
      arrange: (w: World) => freshGroup(w, 1_000_000n),
      act: (s, a, f) => s.budgets.upsertGroupBudget(a, f.g.id, 7_000_000n),
      observe: budgetRow,
      expect: (r) => expect(r.before?.spendLimitMicros).toBe(1_000_000n),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'group_ai_budget', f.g.id)],
      allow: ['orgAdminA'],
      deny: [
        [groupMember, 'forbidden'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'BudgetStore.deleteGroupBudget': [
    scenario({
      title: "a group of A's",
      arrange: (w: World) => freshGroup(w, 1_000_000n),
      act: (s, a, f) => s.budgets.deleteGroupBudget(a, f.g.id),
      observe: budgetRow,
      expect: (r) => expect(r.before.spendLimitMicros).toBe(1_000_000n),
      audits: (_r, f, _w, a) => [entry(a, 'delete', 'group_ai_budget', f.g.id)],
      allow: ['orgUserAdminA', 'userAdmin'],
      deny: [
        [groupMember, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  // PriceStore

  'PriceStore.listPrices': [
    scenario({
      title: "the test provider's",
      act: (s, a, _f, w) => s.prices.listPrices(a, { provider: w.provider }, PAGE),
      expect: (r) => expect(r.count).toBe(3),
      allow: ['memberB', 'gateway', 'owner', 'pricingWorker'],
      deny: [
        ['membershipListener', 'forbidden'],
        ['database', 'forbidden'],
      ],
    }),
  ],

  'PriceStore.getEffectivePrice': [
    scenario({
      title: 'a model with a custom price',
      act: (s, a, _f, w) => s.prices.getEffectivePrice(a, w.provider, 'm1'),
      expect: (p) => expect(p).toMatchObject({ source: 'custom', inputPrice: 2000n }),
      allow: ['groupMember', 'pricingWorker'],
      deny: [
        ['membershipListener', 'forbidden'],
        ['database', 'forbidden'],
      ],
    }),
  ],

  'PriceStore.listPriceChanges': [
    scenario({
      title: "a model's price history",
      act: (s, a, _f, w) => s.prices.listPriceChanges(a, w.provider, 'm1', PAGE),
      // The world's default and custom rows of m1, each inserted once.
      expect: (r) => {
        expect(r.count).toBe(2);
        expect(r.changes.map((c) => c.source).sort()).toEqual(['custom', 'default']);
      },
      allow: ['memberB', 'gateway', 'owner', 'pricingWorker'],
      deny: [
        ['membershipListener', 'forbidden'],
        ['database', 'forbidden'],
      ],
    }),
  ],

  'PriceStore.upsertCustomPrice': [
    scenario({
      title: 'over a default price',
      arrange: async (w: World) => {
        const model = uniqueName('model');
        await insertPrice(w.ds, { provider: w.provider, model, source: 'default', input: 10 });
        return { model };
      },
      act: (s, a, f, w) =>
        s.prices.upsertCustomPrice(a, w.provider, f.model, {
          inputPrice: 5n,
          outputPrice: 6n,
          cacheReadPrice: null,
          cacheWritePrice: null,
          tiers: null,
        }),
      observe: priceRows,
      expect: (r) => expect(r.after).toMatchObject({ source: 'custom', inputPrice: 5n }),
      audits: (_r, f, w, a) => [entry(a, 'create', 'ai_model_price', `${w.provider}/${f.model}`)],
      allow: ['owner'],
      deny: [
        ['userAdmin', 'forbidden'],
        ['auditor', 'forbidden'],
        ['gateway', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  'PriceStore.deleteCustomPrice': [
    scenario({
      title: 'a custom price',
      arrange: async (w: World) => {
        const model = uniqueName('model');
        await insertPrice(w.ds, { provider: w.provider, model, source: 'custom', input: 10 });
        return { model };
      },
      act: (s, a, f, w) => s.prices.deleteCustomPrice(a, w.provider, f.model),
      observe: priceRows,
      expect: (p) => expect(p.source).toBe('custom'),
      audits: (_r, f, w, a) => [entry(a, 'delete', 'ai_model_price', `${w.provider}/${f.model}`)],
      allow: ['owner'],
      deny: [
        ['userAdmin', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  'PriceStore.assertCanSync': [
    scenario({
      title: 'asking for a price sync',
      act: async (s, a) => s.prices.assertCanSync(a),
      allow: ['owner'],
      deny: [
        ['userAdmin', 'forbidden'],
        ['auditor', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  // AuditStore

  'AuditStore.list': [
    scenario({
      title: 'entries of a resource type',
      act: (s, a, _f, w) => s.audit.list(a, { resourceType: w.auditResourceType }, PAGE),
      expect: (r) => expect(r.count).toBe(1),
      allow: ['owner', 'auditor'],
      deny: [
        ['userAdmin', 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  // UserStore

  'UserStore.getUser': [
    scenario({
      title: 'by username',
      act: (s, a, _f, w) => s.users.getUser(a, w.people.groupMember.user.username),
      expect: (u, _f, w) => expect(u.id).toBe(w.people.groupMember.user.id),
      allow: ['groupMember', 'orgAdminA', 'orgUserAdminA', 'orgAuditorA', 'owner', 'userAdmin', 'auditor'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
    scenario({
      title: 'by id in upper case',
      act: (s, a, _f, w) => s.users.getUser(a, w.people.memberB.user.id.toUpperCase()),
      expect: (u, _f, w) => expect(u.id).toBe(w.people.memberB.user.id),
      allow: ['orgAdminB', 'auditor'],
      deny: [['orgAdminA', 'not_found']],
    }),
    scenario({
      title: "'me'",
      act: (s, a) => s.users.getUser(a, 'me'),
      expect: (u, _f, _w, a) => expect(a.kind === 'user' && u.id === a.id).toBe(true),
      allow: ['orgMember', 'gateway'],
      deny: [['pricingWorker', 'not_found']],
    }),
  ],

  'UserStore.findUserForMembership': [
    scenario({
      title: 'a user the caller cannot read, for membership of A',
      act: (s, a, _f, w) => s.users.findUserForMembership(a, w.orgA, w.people.memberB.user.username),
      expect: (u, _f, w) => expect(u.id).toBe(w.people.memberB.user.id),
      allow: ['orgUserAdminA', 'orgAdminA', 'userAdmin'],
      deny: [
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'UserStore.listUsers': [
    scenario({
      title: 'everyone',
      act: (s, a) => s.users.listUsers(a, null, PAGE),
      expect: (r, _f, w) =>
        expect(ids(r.users)).toEqual(expect.arrayContaining(Object.values(w.people).map((p) => p.user.id))),
      allow: ['owner', 'userAdmin', 'auditor'],
      deny: [
        ['orgAdminA', 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  'UserStore.createFirstOwner': [
    scenario({
      title: 'an owner, recorded as done by itself',
      arrange: async () => ({ username: uniqueName('first') }),
      // The caller's actor plays no part: the bootstrap has none.
      act: (s, _a, f) =>
        s.users.createFirstOwner({ username: f.username, email: `${f.username}@example.test`, name: null }),
      observe: (f, w) => rows(w.ds, 'SELECT username, roles FROM users WHERE username = $1', [f.username]),
      expect: (r, f) => {
        expect(r.user).toMatchObject({ username: f.username, roles: ['owner'] });
        expect(r.actor).toMatchObject({ kind: 'user', id: r.user.id, username: f.username });
      },
      audits: (r) => [
        entry(r.actor, 'create', 'user', r.user.id),
        entry(r.actor, 'create', 'user_roles', r.user.id),
      ],
      allow: ['groupMember'],
    }),
  ],

  'UserStore.createUser': [
    scenario({
      title: 'without site roles',
      arrange: async () => ({ username: uniqueName('new') }),
      act: (s, a, f) =>
        s.users.createUser(a, {
          username: f.username,
          email: `${f.username}@example.test`,
          name: null,
          roles: [],
        }),
      observe: (f, w) => rows(w.ds, 'SELECT username, roles FROM users WHERE username = $1', [f.username]),
      expect: (u, f) => expect(u).toMatchObject({ username: f.username, roles: [] }),
      audits: (u, _f, _w, a) => [entry(a, 'create', 'user', u.id)],
      allow: ['userAdmin', 'owner'],
      deny: [
        ['orgAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['membershipListener', 'forbidden'],
      ],
    }),
    scenario({
      title: 'with site roles',
      arrange: async () => ({ username: uniqueName('new') }),
      act: (s, a, f) =>
        s.users.createUser(a, {
          username: f.username,
          email: `${f.username}@example.test`,
          name: null,
          roles: ['auditor'],
        }),
      observe: (f, w) => rows(w.ds, 'SELECT username, roles FROM users WHERE username = $1', [f.username]),
      expect: (u) => expect(u.roles).toEqual(['auditor']),
      audits: (u, _f, _w, a) => [entry(a, 'create', 'user', u.id), entry(a, 'create', 'user_roles', u.id)],
      allow: ['owner'],
      deny: [['userAdmin', 'forbidden']],
    }),
  ],

  'UserStore.deleteUser': [
    scenario({
      title: 'a member of A',
      arrange: freshMemberOfA,
      act: (s, a, f) => s.users.deleteUser(a, f.p.user),
      observe: userRow,
      audits: (_r, f, w, a) => [
        entry(a, 'delete', 'user', f.p.user.id),
        entry(
          'system:database',
          'delete',
          'organization_member',
          `${w.orgA.id}/${f.p.user.id}`,
          'user_deleted',
        ),
      ],
      allow: ['userAdmin', 'owner'],
      deny: [
        [self, 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['orgUserAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
    scenario({
      title: 'an auditor with groups, a key and an override: all recorded',
      arrange: async (w: World) => {
        const { g, member: p } = await freshGroup(w);
        await rows(w.ds, `UPDATE users SET roles = '{auditor}' WHERE id = $1`, [p.user.id]);
        await addOrganizationMember(w.ds, w.orgB.id, p.user.id);
        await insertOverride(w.ds, p.user.id, g.id, 4_000_000n);
        const keyId = await insertApiKey(w.ds, p.user.id);
        return { p: { ...p, user: { ...p.user, roles: ['auditor' as const] } }, g, keyId };
      },
      act: (s, a, f) => s.users.deleteUser(a, f.p.user),
      observe: userRow,
      audits: (_r, f, w, a) => {
        const u = f.p.user.id;
        const db = 'system:database';
        return [
          entry(a, 'delete', 'user', u),
          entry(db, 'delete', 'user_ai_budget_override', u, 'user_deleted'),
          entry(db, 'delete', 'group_member', `${f.g.id}/${u}`, 'user_deleted'),
          entry(db, 'delete', 'organization_member', `${w.orgA.id}/${u}`, 'user_deleted'),
          entry(db, 'delete', 'organization_member', `${w.orgB.id}/${u}`, 'user_deleted'),
          entry(db, 'delete', 'api_key', f.keyId, 'user_deleted'),
          entry(db, 'delete', 'user_roles', u, 'user_deleted'),
        ];
      },
      allow: ['owner'],
      // A user-admin does not hold auditor: it cannot delete one.
      deny: [['userAdmin', 'forbidden']],
    }),
  ],

  'UserStore.setRoles': [
    scenario({
      title: 'of a member of A',
      arrange: freshMemberOfA,
      act: (s, a, f) => s.users.setRoles(a, f.p.user, ['auditor']),
      observe: userRow,
      expect: (r) => expect(r.after.roles).toEqual(['auditor']),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'user_roles', f.p.user.id)],
      allow: ['owner'],
      deny: [
        [self, 'forbidden'],
        ['userAdmin', 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'UserStore.setStatus': [
    scenario({
      title: 'suspends a member of A',
      arrange: freshMemberOfA,
      act: (s, a, f) => s.users.setStatus(a, f.p.user, 'suspended'),
      observe: statusRow,
      expect: (r) => expect([r.before.status, r.after.status]).toEqual(['active', 'suspended']),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'user', f.p.user.id)],
      allow: ['userAdmin', 'owner'],
      deny: [
        [self, 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['orgUserAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
        ['membershipListener', 'forbidden'],
      ],
    }),
    scenario({
      title: 'suspends an owner (another owner stays active)',
      arrange: async (w: World) => ({ p: await insertPerson(w.ds, { site: ['owner'] }) }),
      act: (s, a, f) => s.users.setStatus(a, f.p.user, 'suspended'),
      observe: statusRow,
      audits: (_r, f, _w, a) => [entry(a, 'write', 'user', f.p.user.id)],
      allow: ['owner'],
      // A user-admin may suspend anyone but an owner.
      deny: [['userAdmin', 'forbidden']],
    }),
  ],

  'UserStore.assertCanRead': [
    scenario({
      title: 'the member of group A1',
      act: (s, a, _f, w) => s.users.assertCanRead(a, w.people.groupMember.user),
      allow: ['groupMember', 'orgAdminA', 'orgAuditorA', 'auditor', 'userAdmin'],
      deny: [
        ['orgMember', 'not_found'],
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'UserStore.assertCanUpdate': [
    scenario({
      title: 'the member of group A1',
      act: (s, a, _f, w) => s.users.assertCanUpdate(a, w.people.groupMember.user),
      allow: ['userAdmin', 'owner'],
      deny: [
        ['groupMember', 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'ApiKeyStore.createKey': [
    scenario({
      title: 'for a member of A',
      arrange: freshMemberOfA,
      act: (s, a, f) =>
        s.keys.createKey(a, f.p.user, {
          id: newKeyId(),
          name: 'k',
          secretHash: randomBytes(32),
          expiresAt: null,
        }),
      observe: keyRows,
      expect: (k, f) => expect(k.userId).toBe(f.p.user.id),
      audits: (k, _f, _w, a) => [entry(a, 'create', 'api_key', k.id)],
      allow: [self, 'userAdmin', 'owner'],
      deny: [
        ['orgAdminA', 'forbidden'],
        ['orgUserAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'ApiKeyStore.listKeys': [
    scenario({
      title: 'of the member of group A1',
      act: (s, a, _f, w) => s.keys.listKeys(a, w.people.groupMember.user, PAGE),
      expect: (r, _f, w) =>
        expect({ ids: ids(r.keys), count: r.count }).toEqual({ ids: [w.memberKeyId], count: 1 }),
      allow: ['groupMember', 'userAdmin', 'owner'],
      deny: [
        ['orgUserAdminA', 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'ApiKeyStore.deleteKey': [
    scenario({
      title: 'of a member of A',
      arrange: async (w: World) => {
        const { p } = await freshMemberOfA(w);
        return { p, keyId: await insertApiKey(w.ds, p.user.id) };
      },
      act: (s, a, f) => s.keys.deleteKey(a, f.p.user, f.keyId),
      observe: keyRows,
      expect: (k, f) => expect(k.id).toBe(f.keyId),
      audits: (_k, f, _w, a) => [entry(a, 'delete', 'api_key', f.keyId)],
      allow: [self, 'userAdmin'],
      deny: [
        ['orgAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  // OrganizationStore

  'OrganizationStore.getOrganization': [
    scenario({
      title: 'A by name',
      act: (s, a, _f, w) => s.organizations.getOrganization(a, w.orgA.name),
      expect: (o, _f, w) => expect(o.id).toBe(w.orgA.id),
      allow: ['orgMember', 'groupMember', 'orgAuditorA', 'auditor', 'userAdmin', 'owner'],
      deny: [
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
    scenario({
      title: 'B by id in upper case',
      act: (s, a, _f, w) => s.organizations.getOrganization(a, w.orgB.id.toUpperCase()),
      expect: (o, _f, w) => expect(o.id).toBe(w.orgB.id),
      allow: ['memberB', 'auditor'],
      deny: [['orgAdminA', 'not_found']],
    }),
  ],

  'OrganizationStore.listOrganizations': [
    scenario({
      title: 'by a member: theirs',
      act: (s, a) => s.organizations.listOrganizations(a, PAGE),
      expect: (r, _f, w) => expect(ids(r.organizations)).toEqual([w.orgB.id]),
      allow: ['memberB', 'orgAdminB'],
    }),
    scenario({
      title: 'by site readers: all',
      act: (s, a) => s.organizations.listOrganizations(a, PAGE),
      expect: (r, _f, w) =>
        expect(ids(r.organizations)).toEqual(expect.arrayContaining([w.orgA.id, w.orgB.id])),
      allow: ['auditor', 'userAdmin', 'owner'],
      deny: [
        ['pricingWorker', 'forbidden'],
        ['membershipListener', 'forbidden'],
      ],
    }),
    scenario({
      title: 'by a user in no organization',
      act: (s, a) => s.organizations.listOrganizations(a, PAGE),
      deny: [['gateway', 'hidden']],
      hides: (r) => expect(r).toEqual({ organizations: [], count: 0, countCapped: false }),
    }),
  ],

  'OrganizationStore.createOrganization': [
    scenario({
      title: 'with its Everyone group',
      arrange: async () => ({ name: uniqueName('org') }),
      act: (s, a, f) => s.organizations.createOrganization(a, f.name, null),
      observe: (f, w) =>
        rows(
          w.ds,
          'SELECT o.name, g.name AS everyone FROM organizations o LEFT JOIN groups g ON g.id = o.id WHERE o.name = $1',
          [f.name],
        ),
      expect: (o, f) => expect(o.name).toBe(f.name),
      audits: (o, _f, _w, a) => [entry(a, 'create', 'organization', o.id)],
      allow: ['owner'],
      deny: [
        ['userAdmin', 'forbidden'],
        ['auditor', 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['pricingWorker', 'forbidden'],
      ],
    }),
  ],

  'OrganizationStore.listMembers': [
    scenario({
      title: 'of A',
      act: (s, a, _f, w) => s.organizations.listMembers(a, w.orgA, PAGE),
      expect: (r, _f, w) => {
        const { orgMember, groupMember, orgAdminA, memberB } = w.people;
        expect(userIds(r.members)).toEqual(
          expect.arrayContaining([orgMember.user.id, groupMember.user.id, orgAdminA.user.id]),
        );
        expect(userIds(r.members)).not.toContain(memberB.user.id);
      },
      allow: ['orgMember', 'orgAuditorA', 'auditor', 'userAdmin'],
      deny: [
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['gateway', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
  ],

  'OrganizationStore.upsertMember': [
    scenario({
      title: 'adds a user to A',
      arrange: async (w: World) => ({ p: await insertPerson(w.ds) }),
      act: (s, a, f, w) => s.organizations.upsertMember(a, w.orgA, f.p.user, ['organization-auditor']),
      observe: membershipRow,
      expect: (r) => {
        expect(r.before).toBeNull();
        expect(r.after.roles).toEqual(['organization-auditor']);
      },
      audits: (_r, f, w, a) => [entry(a, 'create', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin', 'owner'],
      deny: [
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
    scenario({
      title: 'makes a member of A organization-admin',
      arrange: freshMemberOfA,
      act: (s, a, f, w) => s.organizations.upsertMember(a, w.orgA, f.p.user, ['organization-admin']),
      observe: membershipRow,
      expect: (r) => expect(r.before?.roles).toEqual([]),
      audits: (_r, f, w, a) => [entry(a, 'write', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgAdminA', 'userAdmin'],
      deny: [
        // CONTRACT 3: nobody grants a role more powerful than the ones they hold.
        ['orgUserAdminA', 'forbidden'],
        [self, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['orgAdminB', 'forbidden'],
      ],
    }),
    scenario({
      title: 'makes a member of A organization-user-admin and organization-auditor',
      arrange: freshMemberOfA,
      act: (s, a, f, w) =>
        s.organizations.upsertMember(a, w.orgA, f.p.user, [
          'organization-user-admin',
          'organization-auditor',
        ]),
      observe: membershipRow,
      audits: (_r, f, w, a) => [entry(a, 'write', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgUserAdminA', 'owner'],
      deny: [
        ['orgAuditorA', 'forbidden'],
        ['groupMember', 'forbidden'],
      ],
    }),
    scenario({
      title: 'an organization-user-admin of A makes itself organization-admin',
      arrange: async (w: World) => ({
        p: await insertPerson(w.ds, { orgs: { [w.orgA.id]: ['organization-user-admin'] } }),
      }),
      act: (s, a, f, w) => s.organizations.upsertMember(a, w.orgA, f.p.user, ['organization-admin']),
      observe: membershipRow,
      audits: (_r, f, w, a) => [entry(a, 'write', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['owner'],
      deny: [[self, 'forbidden']],
    }),
    scenario({
      title: 'demotes an organization-admin of A',
      arrange: async (w: World) => ({
        p: await insertPerson(w.ds, { orgs: { [w.orgA.id]: ['organization-admin'] } }),
      }),
      act: (s, a, f, w) => s.organizations.upsertMember(a, w.orgA, f.p.user, ['organization-auditor']),
      observe: membershipRow,
      audits: (_r, f, w, a) => [entry(a, 'write', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgAdminA', 'userAdmin'],
      deny: [['orgUserAdminA', 'forbidden']],
    }),
  ],

  'OrganizationStore.removeMember': [
    scenario({
      title: 'a member of A',
      arrange: freshMemberOfA,
      act: (s, a, f, w) => s.organizations.removeMember(a, w.orgA, f.p.user),
      observe: membershipRow,
      expect: (m, f) => expect(m.userId).toBe(f.p.user.id),
      audits: (_r, f, w, a) => [entry(a, 'delete', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgAdminA', 'orgUserAdminA', 'userAdmin'],
      deny: [
        [self, 'forbidden'],
        ['orgAuditorA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
    scenario({
      title: 'an organization-admin of A',
      arrange: async (w: World) => ({
        p: await insertPerson(w.ds, { orgs: { [w.orgA.id]: ['organization-admin'] } }),
      }),
      act: (s, a, f, w) => s.organizations.removeMember(a, w.orgA, f.p.user),
      observe: membershipRow,
      audits: (_r, f, w, a) => [entry(a, 'delete', 'organization_member', `${w.orgA.id}/${f.p.user.id}`)],
      allow: ['orgAdminA', 'owner'],
      deny: [['orgUserAdminA', 'forbidden']],
    }),
  ],

  // OverrideStore: read with the user; written only with site-wide user update AND group update
  // on the attributed group(s), so organization admins may not write one even on their groups.

  'OverrideStore.getOverride': [
    scenario({
      title: "a member of A's",
      arrange: freshOverride,
      act: (s, a, f) => s.overrides.getOverride(a, f.p.user),
      expect: (o, _f, w) =>
        expect(o).toMatchObject({ groupId: w.everyoneA.id, spendLimitMicros: 1_000_000n }),
      allow: [self, 'orgAdminA', 'orgAuditorA', 'auditor', 'userAdmin'],
      deny: [
        ['groupMember', 'not_found'],
        ['memberB', 'not_found'],
        ['orgAdminB', 'not_found'],
        ['pricingWorker', 'not_found'],
      ],
    }),
    scenario({
      title: "of a member of A and B, on B's Everyone group",
      arrange: async (w: World) => {
        const p = await insertPerson(w.ds, { orgs: { [w.orgA.id]: [], [w.orgB.id]: [] } });
        await insertOverride(w.ds, p.user.id, w.orgB.id, 2_000_000n);
        return { p };
      },
      act: (s, a, f) => s.overrides.getOverride(a, f.p.user),
      expect: (o, _f, w) => expect(o.groupId).toBe(w.orgB.id),
      allow: [self, 'orgAdminB', 'auditor'],
      // They may read the user (through A), not an override attributed to B's group.
      deny: [
        ['orgAdminA', 'not_found'],
        ['orgUserAdminA', 'not_found'],
        ['orgAuditorA', 'not_found'],
      ],
    }),
  ],

  'OverrideStore.upsertOverride': [
    scenario({
      title: "creates one on A's Everyone group",
      arrange: freshMemberOfA,
      act: (s, a, f, w) => s.overrides.upsertOverride(a, f.p.user, w.everyoneA, 5_000_000n),
      observe: overrideRow,
      expect: (r, f) => {
        expect(r.before).toBeNull();
        expect(r.after).toMatchObject({ userId: f.p.user.id, spendLimitMicros: 5_000_000n });
      },
      audits: (_r, f, _w, a) => [entry(a, 'create', 'user_ai_budget_override', f.p.user.id)],
      allow: ['userAdmin', 'owner'],
      deny: [
        [self, 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['orgUserAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
    scenario({
      title: 'moves one to another group of A',
      arrange: async (w: World) => {
        const { p } = await freshOverride(w);
        const g = await insertGroup(w.ds, w.orgA.id);
        await addGroupMember(w.ds, g.id, p.user.id);
        return { p, g };
      },
      act: (s, a, f) => s.overrides.upsertOverride(a, f.p.user, f.g, 5_000_000n),
      observe: overrideRow,
      expect: (r, _f, w) => expect(r.oldGroup?.id).toBe(w.everyoneA.id),
      audits: (_r, f, _w, a) => [entry(a, 'write', 'user_ai_budget_override', f.p.user.id)],
      allow: ['userAdmin'],
      deny: [
        ['orgAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  'OverrideStore.deleteOverride': [
    scenario({
      title: "a member of A's",
      arrange: freshOverride,
      act: (s, a, f) => s.overrides.deleteOverride(a, f.p.user),
      observe: overrideRow,
      expect: (r, _f, w) => expect(r.group.id).toBe(w.everyoneA.id),
      audits: (_r, f, _w, a) => [entry(a, 'delete', 'user_ai_budget_override', f.p.user.id)],
      allow: ['userAdmin', 'owner'],
      deny: [
        [self, 'forbidden'],
        ['orgAdminA', 'forbidden'],
        ['orgUserAdminA', 'forbidden'],
        ['auditor', 'forbidden'],
      ],
    }),
  ],

  ...IDENTITY_SYNC_CASES,
  ...SPEND_CASES,
};

const label = (who: Who<unknown>): string => (typeof who === 'string' ? ACTOR_LABELS[who] : who.label);

/** Every `Store.method` the Stores instance exposes, found from its own properties. */
function storeSurface(stores: Stores): { classes: string[]; methods: string[]; all: string[] } {
  const classes: string[] = [];
  const methods: string[] = [];
  const all: string[] = [];
  for (const value of Object.values(stores) as unknown[]) {
    if (typeof value !== 'object' || value === null) continue;
    const proto = Object.getPrototypeOf(value) as object;
    const cls = (proto.constructor as { name: string }).name;
    if (!cls.endsWith('Store')) continue; // e.g. the database handle
    classes.push(cls);
    for (const m of Object.getOwnPropertyNames(proto)) {
      if (m === 'constructor' || typeof Object.getOwnPropertyDescriptor(proto, m)?.value !== 'function')
        continue;
      all.push(`${cls}.${m}`);
      if (!NOT_PUBLIC.has(`${cls}.${m}`)) methods.push(`${cls}.${m}`);
    }
  }
  return { classes, methods, all };
}

describe('stores (docs/permissions.md) on a real database', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let stores: Stores;
  let w: World;

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-stores-test' });
    await ds.initialize();
    stores = new Stores(ds);
    w = await setup(ds);
  });

  afterAll(async () => {
    if (ds) await destroyDataSource(ds);
    await db?.drop();
  });

  /** Runs one attempt of a scenario; `refusal` null: the actor is allowed. */
  async function attempt(s: AnyScenario, who: Who<unknown>, refusal: Refusal | null): Promise<void> {
    const f = s.arrange ? await s.arrange(w) : undefined;
    const actor = typeof who === 'string' ? actorOf(w, who) : who.actor(f);
    const before = s.observe ? await s.observe(f, w) : undefined;
    const auditIds = new Set(
      (await rows<{ id: string }>(w.ds, 'SELECT id FROM audit_logs')).map((r) => r.id),
    );
    const outcome = await s.act(stores, actor, f, w).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    const after = s.observe ? await s.observe(f, w) : undefined;
    const newEntries = (
      await rows<AuditRow & { id: string }>(
        w.ds,
        'SELECT id, actor, action, resource_type, resource_id, reason FROM audit_logs',
      )
    )
      .filter((r) => !auditIds.has(r.id))
      .map(({ id: _id, ...r }) => r);

    if (refusal === null) {
      if (!outcome.ok) throw outcome.error;
      await s.expect?.(outcome.value, f, w, actor);
      if (s.observe) expect(after).not.toEqual(before);
      if (s.audits) expect(sortRows(newEntries)).toEqual(sortRows(s.audits(outcome.value, f, w, actor)));
      return;
    }
    // A refused call records nothing.
    expect(newEntries).toEqual([]);
    if (refusal === 'hidden') {
      if (!outcome.ok) throw outcome.error;
      s.hides?.(outcome.value, f, w);
      return;
    }
    if (outcome.ok) throw new Error(`expected ${refusal}, but the call succeeded`);
    expect(outcome.error).toBeInstanceOf(DomainError);
    expect((outcome.error as DomainError).code).toBe(refusal);
    if (s.observe) expect(after).toEqual(before);
  }

  describe('the case table', () => {
    it('finds the stores from the Stores instance', () => {
      expect(storeSurface(stores).classes).toEqual(expect.arrayContaining(KNOWN_STORES));
    });

    it('has an allow and a deny case for every public store method, and no case for a missing one', () => {
      const { methods, all } = storeSurface(stores);
      const has = (m: string, kind: 'allow' | 'deny') =>
        (CASES[m] ?? []).some((s) => (s[kind]?.length ?? 0) > 0);
      expect({
        missingAllow: methods.filter((m) => !has(m, 'allow')),
        missingDeny: methods.filter((m) => !UNCHECKED.has(m) && !has(m, 'deny')),
        staleCases: Object.keys(CASES).filter((m) => !methods.includes(m)),
        staleNotPublic: [...NOT_PUBLIC].filter((m) => !all.includes(m)),
        staleUnchecked: [...UNCHECKED].filter((m) => !methods.includes(m) || has(m, 'deny')),
      }).toEqual({
        missingAllow: [],
        missingDeny: [],
        staleCases: [],
        staleNotPublic: [],
        staleUnchecked: [],
      });
    });

    it('observes the rows and the audit entries of every write, and says what a hidden refusal shows', () => {
      const bad: string[] = [];
      for (const [m, scenarios] of Object.entries(CASES)) {
        const write = WRITE.test(m.split('.')[1]);
        for (const s of scenarios) {
          if (write && s.allow?.length && !s.audits) bad.push(`${m} (${s.title}): no audits`);
          if (write && !s.observe) bad.push(`${m} (${s.title}): no observe`);
          if (s.deny?.some(([, r]) => r === 'hidden') && !s.hides) bad.push(`${m} (${s.title}): no hides`);
        }
      }
      expect(bad).toEqual([]);
    });
  });

  for (const [method, scenarios] of Object.entries(CASES)) {
    describe(method, () => {
      for (const s of scenarios) {
        for (const who of s.allow ?? []) {
          it(`${s.title}: allows ${label(who)}`, () => attempt(s, who, null));
        }
        for (const [who, refusal] of s.deny ?? []) {
          const how = refusal === 'hidden' ? 'shows nothing to' : `refuses (${refusal})`;
          it(`${s.title}: ${how} ${label(who)}`, () => attempt(s, who, refusal));
        }
      }
    });
  }
});
