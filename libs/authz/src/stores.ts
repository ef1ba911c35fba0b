import { DomainError } from '@aigov/errors';
import {
  ApiKeyRepository,
  AuditRepository,
  GroupBudgetRepository,
  IdentityRepository,
  OverrideRepository,
  PriceQueryRepository,
  type ApiKey,
  type AuditEntry,
  type AuditEntryInput,
  type AuditFilter,
  type Counted,
  type Db,
  type Group,
  type GroupBudget,
  type GroupMember,
  type Organization,
  type OrganizationMember,
  type OrgRole,
  type Page,
  type PriceFilter,
  type PriceInput,
  type PriceRow,
  type PriceTierRow,
  type SiteRole,
  type User,
  type UserOverride,
  isRetryableTransactionError,
  q,
} from '@aigov/db';
import { moneyDiff } from '@aigov/contracts';
import { DataSource, type EntityManager } from 'typeorm';
import { actorId, actorName, type Actor, type UserActor } from './actor';
import { ROLE_TABLE, can, grantableOrgRoles, type Action, type Subject } from './policy';

/**
 * The stores mirror the repositories and add only the permission check (the idea of coder's
 * dbauthz). Every method takes the actor first. A resource the actor cannot read is reported as
 * not found (no existence leak); one it can read but not change is forbidden.
 */

function requireAllowed(actor: Actor, action: Action, subject: Subject, onDeny: () => DomainError): void {
  if (!can(actor, action, subject)) throw onDeny();
}

const forbidden = (what: string) => () => new DomainError('forbidden', `You may not ${what}.`);
export const notFound = (what: string) => () => new DomainError('not_found', `${what} not found.`);

const groupSubject = (g: Group): Subject => ({ organizationIds: [g.organizationId], groupId: g.id });
const userRef = (u: { id: string; username: string }) => ({ id: u.id, username: u.username });
const groupRef = (g: Group | null) => (g ? { id: g.id, name: g.name } : null);

/**
 * The audit entries of the store methods' own changes (CONTRACT 1.5): written as the actor, with
 * the request id of the transaction the stores were opened in, by the method that made the
 * change, so no caller has to remember them. Not a store: it checks nothing, it is no part of the
 * stores' surface, and only store methods that have authorized their change call it.
 */
class AuditTrail {
  constructor(
    private readonly audit: AuditRepository,
    private readonly requestId: string | null,
  ) {}

  async record(actor: Actor, e: Omit<AuditEntryInput, 'actor' | 'actorId' | 'requestId'>): Promise<void> {
    await this.audit.insert({
      ...e,
      actor: actorName(actor),
      actorId: actorId(actor),
      requestId: this.requestId,
    });
  }
}

/**
 * Changes of one group (name, members) serialize on its row: two concurrent PATCHes end as if
 * one ran after the other, and their membership rows are never locked in crossing order.
 */
async function lockForChange(identity: IdentityRepository, g: Group): Promise<void> {
  if (!(await identity.lockGroup(g.id))) throw notFound('Group')();
}

/** `GET /groups/{group}` shows at most this many members; the members route pages them all. */
export const MEMBER_PREVIEW = 1000;

export class GroupStore {
  constructor(
    private readonly identity: IdentityRepository,
    private readonly db: Db,
    private readonly trail: AuditTrail,
  ) {}

  /** The group, when the actor may read it; else not found. */
  async getGroup(actor: Actor, id: string): Promise<Group> {
    const g = await this.identity.getGroup(id);
    if (!g || !can(actor, 'group.read', groupSubject(g))) throw notFound('Group')();
    return g;
  }

  /** The group for a change: not found when unreadable, forbidden when read-only. */
  async getGroupForUpdate(actor: Actor, id: string): Promise<Group> {
    const g = await this.getGroup(actor, id);
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    return g;
  }

  /** How many members the group has and the first MEMBER_PREVIEW of them by username. */
  async getGroupMemberPreview(
    actor: Actor,
    group: Group,
  ): Promise<{ memberCount: number; members: GroupMember[] }> {
    requireAllowed(actor, 'group.read', groupSubject(group), notFound('Group'));
    return this.identity.getGroupMemberPreview(group, MEMBER_PREVIEW);
  }

  /** A page of the members of a group the actor may read (else not found). */
  async listGroupMembers(
    actor: Actor,
    groupId: string,
    page: Page,
  ): Promise<{ members: GroupMember[] } & Counted> {
    const group = await this.getGroup(actor, groupId);
    return this.identity.listGroupMembers(group, page);
  }

  /**
   * Groups of an organization the actor can see. Readers of every group of the organization (the
   * rule without the member clause) see all; others see Everyone and the groups they are in. The
   * filter runs in the database, so paging and count see only visible groups.
   */
  async listGroups(actor: Actor, org: Organization, page: Page): Promise<{ groups: Group[] } & Counted> {
    requireAllowed(actor, 'organization.read', { organizationIds: [org.id] }, notFound('Organization'));
    if (actor.kind !== 'user') throw notFound('Organization')(); // no system actor reads organizations
    const seesAll = can(actor, 'group.read', { organizationIds: [org.id] });
    const everyone = can(actor, 'group.read', { organizationIds: [org.id], groupId: org.id });
    return this.identity.listGroups(org.id, seesAll ? null : { userId: actor.id, everyone }, page);
  }

  async createGroup(
    actor: Actor,
    org: Organization,
    name: string,
    displayName: string | null,
  ): Promise<Group> {
    requireAllowed(
      actor,
      'organization.groups.create',
      { organizationIds: [org.id] },
      forbidden('create groups here'),
    );
    const g = await this.identity.createGroup({ organizationId: org.id, name, displayName });
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'group',
      resourceId: g.id,
      organizationId: g.organizationId,
      diff: { name: g.name, display_name: g.displayName },
    });
    return g;
  }

  async updateGroup(
    actor: Actor,
    g: Group,
    patch: { name?: string; displayName?: string | null },
  ): Promise<Group> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.identity, g);
    const updated = await this.identity.updateGroup(g.id, patch);
    if (!updated) throw notFound('Group')();
    return updated;
  }

  /** Adds the users (one ordered insert); one entry per user added, none for a member already. */
  async addGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.identity, g);
    const added = await this.identity.addGroupMembers(g.id, userIds);
    await this.recordMembers(actor, g, 'create', added, await this.identity.listGroupMembersAmong(g, added));
    return added;
  }

  /** Removes the users; one entry per user removed, none for a non-member. */
  async removeGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.identity, g);
    // Named before they go: the entries show who was removed.
    const members = await this.identity.listGroupMembersAmong(g, userIds);
    const removed = await this.identity.removeGroupMembers(g.id, userIds);
    await this.recordMembers(actor, g, 'delete', removed, members);
    return removed;
  }

  private async recordMembers(
    actor: Actor,
    g: Group,
    action: 'create' | 'delete',
    userIds: string[],
    named: GroupMember[],
  ): Promise<void> {
    const usernames = new Map(named.map((m) => [m.userId, m.username]));
    for (const userId of userIds) {
      await this.trail.record(actor, {
        action,
        resourceType: 'group_member',
        resourceId: `${g.id}/${userId}`,
        organizationId: g.organizationId,
        diff: { group: groupRef(g), user: { id: userId, username: usernames.get(userId) ?? null } },
      });
    }
  }

  async deleteGroup(actor: Actor, g: Group): Promise<void> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('delete this group'));
    // The database records what goes with the group (its budget, memberships and overrides).
    if (!(await this.identity.deleteGroup(g.id))) throw notFound('Group')();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'group',
      resourceId: g.id,
      organizationId: g.organizationId,
      diff: { name: g.name, display_name: g.displayName },
    });
  }

  /** Which of these users are members of the organization (for PATCH validation). */
  async organizationMemberIds(actor: Actor, g: Group, userIds: string[]): Promise<Set<string>> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    if (userIds.length === 0) return new Set();
    const rows = await q<{ user_id: string }[]>(
      this.db,
      'SELECT user_id FROM organization_members WHERE organization_id = $1 AND user_id = ANY($2::uuid[])',
      [g.organizationId, userIds],
    );
    return new Set(rows.map((r) => r.user_id));
  }
}

export class BudgetStore {
  constructor(
    private readonly groups: GroupStore,
    private readonly budgets: GroupBudgetRepository,
    private readonly trail: AuditTrail,
  ) {}

  async getGroupBudget(actor: Actor, groupId: string): Promise<GroupBudget> {
    const found = await this.budgets.getWithGroup(groupId);
    if (!found || !can(actor, 'group.read', groupSubject(found.group))) throw notFound('Group')();
    if (!found.budget) throw new DomainError('not_found', 'Group has no AI budget.');
    return found.budget;
  }

  async upsertGroupBudget(
    actor: Actor,
    groupId: string,
    limit: bigint,
  ): Promise<{ group: Group; before: GroupBudget | null; after: GroupBudget }> {
    const group = await this.groups.getGroupForUpdate(actor, groupId);
    const { before, after } = await this.budgets.upsert(groupId, limit);
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'group_ai_budget',
      resourceId: group.id,
      organizationId: group.organizationId,
      diff: {
        group: groupRef(group),
        spend_limit: {
          before: moneyDiff(before?.spendLimitMicros ?? null),
          after: moneyDiff(after.spendLimitMicros),
        },
      },
    });
    return { group, before, after };
  }

  async deleteGroupBudget(actor: Actor, groupId: string): Promise<{ group: Group; before: GroupBudget }> {
    const group = await this.groups.getGroupForUpdate(actor, groupId);
    const before = await this.budgets.delete(groupId);
    if (!before) throw new DomainError('not_found', 'Group has no AI budget.');
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'group_ai_budget',
      resourceId: group.id,
      organizationId: group.organizationId,
      diff: {
        group: groupRef(group),
        spend_limit: { before: moneyDiff(before.spendLimitMicros), after: null },
      },
    });
    return { group, before };
  }
}

const big = (v: number | null): bigint | null => (v === null ? null : BigInt(v));

/** A tier list as people read it in the audit log: each price in dollars next to its micros. */
function tiersDiff(tiers: PriceTierRow[] | null | undefined) {
  if (!tiers) return null;
  return tiers.map((t) => ({
    min_context_tokens: t.min_context_tokens,
    input_price: moneyDiff(big(t.input_price)),
    output_price: moneyDiff(big(t.output_price)),
    cache_read_price: moneyDiff(big(t.cache_read_price)),
    cache_write_price: moneyDiff(big(t.cache_write_price)),
  }));
}

/** Every price and the tiers before and after (prices are micro-USD per million tokens). */
function priceDiff(provider: string, model: string, before: PriceRow | null, after: PriceRow | null) {
  return {
    provider,
    model,
    input_price: {
      before: moneyDiff(before?.inputPrice ?? null),
      after: moneyDiff(after?.inputPrice ?? null),
    },
    output_price: {
      before: moneyDiff(before?.outputPrice ?? null),
      after: moneyDiff(after?.outputPrice ?? null),
    },
    cache_read_price: {
      before: moneyDiff(before?.cacheReadPrice ?? null),
      after: moneyDiff(after?.cacheReadPrice ?? null),
    },
    cache_write_price: {
      before: moneyDiff(before?.cacheWritePrice ?? null),
      after: moneyDiff(after?.cacheWritePrice ?? null),
    },
    tiers: { before: tiersDiff(before?.tiers), after: tiersDiff(after?.tiers) },
  };
}

export class PriceStore {
  constructor(
    private readonly prices: PriceQueryRepository,
    private readonly trail: AuditTrail,
  ) {}

  async listPrices(actor: Actor, f: PriceFilter, page: Page): Promise<{ prices: PriceRow[] } & Counted> {
    requireAllowed(actor, 'price.read', {}, forbidden('read prices'));
    return this.prices.list(f, page);
  }

  async getEffectivePrice(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    requireAllowed(actor, 'price.read', {}, forbidden('read prices'));
    const p = await this.prices.getEffective(provider, model);
    if (!p) throw new DomainError('not_found', `No price for ${provider}/${model}.`);
    return p;
  }

  async upsertCustomPrice(actor: Actor, provider: string, model: string, input: PriceInput) {
    requireAllowed(actor, 'price.write', {}, forbidden('set custom prices'));
    const { before, after } = await this.prices.upsertCustom(provider, model, input);
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'ai_model_price',
      resourceId: `${provider}/${model}`,
      organizationId: null,
      diff: priceDiff(provider, model, before, after),
    });
    return { before, after };
  }

  async deleteCustomPrice(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    requireAllowed(actor, 'price.write', {}, forbidden('delete custom prices'));
    const before = await this.prices.deleteCustom(provider, model);
    if (!before) throw new DomainError('not_found', `No custom price for ${provider}/${model}.`);
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'ai_model_price',
      resourceId: `${provider}/${model}`,
      organizationId: null,
      diff: priceDiff(provider, model, before, null),
    });
    return before;
  }

  /** Asking the pricing worker to sync is checked here; the request itself goes over NATS. */
  assertCanSync(actor: Actor): void {
    requireAllowed(actor, 'price.sync', {}, forbidden('sync prices'));
  }
}

export class AuditStore {
  constructor(private readonly audit: AuditRepository) {}

  async list(actor: Actor, f: AuditFilter, page: Page): Promise<{ entries: AuditEntry[] } & Counted> {
    requireAllowed(actor, 'audit.read', {}, forbidden('read the audit log'));
    return this.audit.list(f, page);
  }
}

export class UserStore {
  constructor(
    private readonly identity: IdentityRepository,
    private readonly keys: ApiKeyRepository,
    private readonly trail: AuditTrail,
  ) {}

  private async subject(u: User): Promise<Subject> {
    return { userId: u.id, organizationIds: await this.identity.organizationIdsOfUser(u.id) };
  }

  /** `ref`: a uuid (always an id), a username, or `me`. Not found when the actor cannot read it. */
  async getUser(actor: Actor, ref: string): Promise<User> {
    const u = await this.lookup(actor, ref);
    if (!u || !can(actor, 'user.read', await this.subject(u))) throw notFound('User')();
    return u;
  }

  /** Finds a user regardless of visibility: for member management, which needs only that right. */
  async findUserForMembership(actor: Actor, org: Organization, ref: string): Promise<User> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [org.id] },
      forbidden('manage members here'),
    );
    const u = await this.lookup(actor, ref);
    if (!u) throw notFound('User')();
    return u;
  }

  private async lookup(actor: Actor, ref: string): Promise<User | null> {
    if (ref === 'me') return actor.kind === 'user' ? this.identity.getUserById(actor.id) : null;
    return UUID.test(ref)
      ? this.identity.getUserById(ref.toLowerCase())
      : this.identity.getUserByUsername(ref);
  }

  async listUsers(actor: Actor, q: string | null, page: Page): Promise<{ users: User[] } & Counted> {
    requireAllowed(actor, 'user.list', {}, forbidden('list users'));
    return this.identity.listUsers(q, page);
  }

  async createUser(
    actor: Actor,
    u: { username: string; email: string; name: string | null; roles: SiteRole[] },
  ): Promise<User> {
    requireAllowed(actor, 'user.create', {}, forbidden('create users'));
    if (u.roles.length > 0) requireAllowed(actor, 'user.roles.update', {}, forbidden('give site roles'));
    const user = await this.identity.createUser(u);
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'user',
      resourceId: user.id,
      organizationId: null,
      diff: { username: user.username, email: user.email, name: user.name, status: user.status },
    });
    if (user.roles.length > 0) {
      await this.trail.record(actor, {
        action: 'create',
        resourceType: 'user_roles',
        resourceId: user.id,
        organizationId: null,
        diff: { user: userRef(user), roles: { before: [], after: user.roles } },
      });
    }
    return user;
  }

  /**
   * The first owner (bootstrap): nobody can authorize it, so the caller checks, under its own
   * lock, that no user exists yet; the creation is recorded as done by the new user, who is the
   * actor of what the bootstrap does next.
   */
  async createFirstOwner(u: {
    username: string;
    email: string;
    name: string | null;
  }): Promise<{ user: User; actor: UserActor }> {
    const user = await this.identity.createUser({ ...u, roles: ['owner'] });
    const actor: UserActor = {
      kind: 'user',
      id: user.id,
      username: user.username,
      status: user.status,
      siteRoles: new Set(user.roles),
      orgRoles: new Map(),
      groupIds: new Set(),
    };
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'user',
      resourceId: user.id,
      organizationId: null,
      diff: { username: user.username, email: user.email, name: user.name, status: user.status },
    });
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'user_roles',
      resourceId: user.id,
      organizationId: null,
      diff: { user: userRef(user), roles: { before: [], after: user.roles } },
    });
    return { user, actor };
  }

  /**
   * Acting on another user's account (deleting it, or managing its keys, which lets one act as
   * it) needs at least every site role that user holds, unless the actor is an owner: a
   * user-admin cannot take over an owner or an auditor.
   */
  private assertOutranks(actor: Actor, u: User, what: string): void {
    if (actor.kind === 'user' && (actor.id === u.id || actor.siteRoles.has('owner'))) return;
    const lacking = u.roles.filter((r) => actor.kind !== 'user' || !actor.siteRoles.has(r));
    if (lacking.length > 0) throw forbidden(`${what} (the user holds ${lacking.join(', ')})`)();
  }

  /**
   * Deletes the user. The database removes and records what goes with it (memberships, roles,
   * keys, override: actor system:database, reason user_deleted); this records the user itself.
   * The last active owner cannot go (constraint users_last_owner).
   */
  async deleteUser(actor: Actor, u: User): Promise<void> {
    requireAllowed(actor, 'user.delete', await this.subject(u), forbidden('delete this user'));
    this.assertOutranks(actor, u, 'delete this user');
    if (!(await this.identity.deleteUser(u.id))) throw notFound('User')();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'user',
      resourceId: u.id,
      organizationId: null,
      diff: { username: u.username, email: u.email, name: u.name, status: u.status, roles: u.roles },
    });
  }

  /** Site roles are set by owners only; the last active owner keeps the role (users_last_owner). */
  async setRoles(actor: Actor, u: User, roles: SiteRole[]): Promise<{ before: User; after: User }> {
    requireAllowed(actor, 'user.roles.update', await this.subject(u), forbidden("change this user's roles"));
    const before = await this.identity.lockUser(u.id);
    const after = before && (await this.identity.setUserRoles(u.id, roles));
    if (!before || !after) throw notFound('User')();
    await this.trail.record(actor, {
      action: 'write',
      resourceType: 'user_roles',
      resourceId: u.id,
      organizationId: null,
      diff: { user: userRef(u), roles: { before: before.roles, after: after.roles } },
    });
    return { before, after };
  }

  /**
   * Suspends or reactivates the user (CONTRACT 2.1, 3): owners, and user-admins on anyone but an
   * owner. Suspension removes nothing. The last active owner cannot be suspended (users_last_owner).
   */
  async setStatus(actor: Actor, u: User, status: User['status']): Promise<{ before: User; after: User }> {
    requireAllowed(
      actor,
      'user.status.update',
      await this.subject(u),
      forbidden("change this user's status"),
    );
    // Locked first, so a concurrent promotion to owner cannot slip between the check and the write.
    const before = await this.identity.lockUser(u.id);
    if (!before) throw notFound('User')();
    if (before.roles.includes('owner') && !(actor.kind === 'user' && actor.siteRoles.has('owner'))) {
      throw forbidden("change an owner's status")();
    }
    const after = await this.identity.setUserStatus(u.id, status);
    if (!after) throw notFound('User')();
    await this.trail.record(actor, {
      action: 'write',
      resourceType: 'user',
      resourceId: u.id,
      organizationId: null,
      diff: { user: userRef(u), status: { before: before.status, after: after.status } },
    });
    return { before, after };
  }

  async assertCanRead(actor: Actor, u: User): Promise<void> {
    requireAllowed(actor, 'user.read', await this.subject(u), notFound('User'));
  }

  async assertCanUpdate(actor: Actor, u: User): Promise<void> {
    requireAllowed(actor, 'user.update', await this.subject(u), forbidden('change this user'));
  }

  async createKey(
    actor: Actor,
    u: User,
    k: { id: string; name: string | null; secretHash: Buffer; expiresAt: Date | null },
  ): Promise<ApiKey> {
    requireAllowed(actor, 'user.keys.manage', await this.subject(u), forbidden("manage this user's keys"));
    this.assertOutranks(actor, u, "manage this user's keys");
    const key = await this.keys.create({ ...k, userId: u.id });
    // Never the secret, nor its hash.
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'api_key',
      resourceId: key.id,
      organizationId: null,
      diff: { user: userRef(u), name: key.name, expires_at: key.expiresAt },
    });
    return key;
  }

  async listKeys(actor: Actor, u: User, page: Page): Promise<{ keys: ApiKey[] } & Counted> {
    requireAllowed(actor, 'user.keys.manage', await this.subject(u), forbidden("manage this user's keys"));
    this.assertOutranks(actor, u, "manage this user's keys");
    return this.keys.listPageForUser(u.id, page);
  }

  async deleteKey(actor: Actor, u: User, id: string): Promise<ApiKey> {
    requireAllowed(actor, 'user.keys.manage', await this.subject(u), forbidden("manage this user's keys"));
    this.assertOutranks(actor, u, "manage this user's keys");
    const key = await this.keys.get(u.id, id);
    if (!key || !(await this.keys.delete(u.id, id))) throw notFound('API key')();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'api_key',
      resourceId: key.id,
      organizationId: null,
      diff: { user: userRef(u), name: key.name },
    });
    return key;
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class OrganizationStore {
  constructor(
    private readonly identity: IdentityRepository,
    private readonly trail: AuditTrail,
  ) {}

  /** `ref`: an id, or a name. Not found when the actor cannot see it. */
  async getOrganization(actor: Actor, ref: string): Promise<Organization> {
    const o = UUID.test(ref)
      ? await this.identity.getOrganizationById(ref.toLowerCase())
      : await this.identity.getOrganizationByName(ref);
    if (!o || !can(actor, 'organization.read', { organizationIds: [o.id] })) throw notFound('Organization')();
    return o;
  }

  async listOrganizations(actor: Actor, page: Page): Promise<{ organizations: Organization[] } & Counted> {
    if (actor.kind !== 'user') throw forbidden('list organizations')();
    const seesAll = ROLE_TABLE['organization.read'].site.some((r) => actor.siteRoles.has(r));
    return this.identity.listOrganizations(seesAll ? null : [...actor.orgRoles.keys()], page);
  }

  async createOrganization(actor: Actor, name: string, displayName: string | null): Promise<Organization> {
    requireAllowed(actor, 'organization.create', {}, forbidden('create organizations'));
    const o = await this.identity.createOrganization({ name, displayName });
    // Its Everyone group (id = organization id) comes with it: one entry for both.
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'organization',
      resourceId: o.id,
      organizationId: o.id,
      diff: { name: o.name, display_name: o.displayName, everyone_group_id: o.id },
    });
    return o;
  }

  async listMembers(
    actor: Actor,
    o: Organization,
    page: Page,
  ): Promise<{ members: OrganizationMember[] } & Counted> {
    requireAllowed(actor, 'organization.members.read', { organizationIds: [o.id] }, notFound('Organization'));
    return this.identity.listOrganizationMembers(o.id, page);
  }

  /**
   * Idempotent add; `roles` null keeps the member's roles. Audited: `create` when the membership
   * came into being, else `write`. Roles are granted only as CONTRACT 3 allows (grantableOrgRoles):
   * the new roles, and on a change the member's current ones, must all be grantable by the actor.
   */
  async upsertMember(
    actor: Actor,
    o: Organization,
    u: User,
    roles: OrgRole[] | null,
  ): Promise<{ before: OrganizationMember | null; after: OrganizationMember }> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    const grantable = grantableOrgRoles(actor, o.id);
    if (roles !== null) {
      const beyond = roles.filter((r) => !grantable.has(r));
      if (beyond.length > 0) throw forbidden(`grant ${beyond.join(', ')}`)();
      // Locked, so the roles checked are the roles replaced (a concurrent promotion waits).
      const current = await this.identity.lockOrganizationMemberRoles(o.id, u.id);
      const held = (current ?? []).filter((r) => !grantable.has(r));
      if (held.length > 0) throw forbidden(`change the roles of a member who holds ${held.join(', ')}`)();
    }
    const { before, after } = await this.identity.upsertOrganizationMember(o.id, u.id, roles);
    // A membership created concurrently after the lock above found none: the row is locked now,
    // and the transaction rolls back the write.
    if (roles !== null && before?.roles.some((r) => !grantable.has(r))) {
      throw forbidden(`change the roles of a member who holds ${before.roles.join(', ')}`)();
    }
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'organization_member',
      resourceId: `${o.id}/${u.id}`,
      organizationId: o.id,
      diff: { user: userRef(u), roles: { before: before?.roles ?? null, after: after.roles } },
    });
    return { before, after };
  }

  /**
   * Removes the membership; the database removes and records the user's memberships of the
   * organization's groups and the overrides that lose their group. A member holding a role the
   * actor cannot grant cannot be removed by it.
   */
  async removeMember(actor: Actor, o: Organization, u: User): Promise<OrganizationMember> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    const current = await this.identity.lockOrganizationMemberRoles(o.id, u.id);
    const grantable = grantableOrgRoles(actor, o.id);
    const held = (current ?? []).filter((r) => !grantable.has(r));
    if (held.length > 0) throw forbidden(`remove a member who holds ${held.join(', ')}`)();
    const removed = await this.identity.deleteOrganizationMember(o.id, u.id);
    if (!removed) throw new DomainError('not_found', 'User is not a member of the organization.');
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'organization_member',
      resourceId: `${o.id}/${u.id}`,
      organizationId: o.id,
      diff: { user: userRef(u), roles: { before: removed.roles, after: null } },
    });
    return removed;
  }
}

/**
 * User budget overrides (docs/permissions.md): read by whoever may read the user; written only with
 * site-wide user update AND group update on the attributed group (on a reassignment, on both).
 */
export class OverrideStore {
  constructor(
    private readonly users: UserStore,
    private readonly groups: GroupStore,
    private readonly overrides: OverrideRepository,
    private readonly identity: IdentityRepository,
    private readonly trail: AuditTrail,
  ) {}

  /**
   * Whoever may read the user; but a reader by organization role alone (organization-admin,
   * -user-admin, -auditor of an organization the user is in) sees the override only when its
   * group belongs to such an organization. Otherwise it is not found, like no override at all.
   */
  async getOverride(actor: Actor, user: User): Promise<UserOverride> {
    await this.users.assertCanRead(actor, user);
    const o = await this.overrides.get(user.id);
    if (!o) throw noOverride();
    if (!can(actor, 'user.read', { userId: user.id })) {
      const g = await this.identity.getGroup(o.groupId);
      if (!g || !can(actor, 'user.read', { userId: user.id, organizationIds: [g.organizationId] })) {
        throw noOverride();
      }
    }
    return o;
  }

  /**
   * `user` was found with UserStore.getUser (so the actor can read it) and `group` with
   * GroupStore.getGroup. Checks the write permissions, then writes; the database rejects a
   * non-member with the named constraint.
   */
  async upsertOverride(
    actor: Actor,
    user: User,
    group: Group,
    limit: bigint,
  ): Promise<{ before: UserOverride | null; after: UserOverride; oldGroup: Group | null }> {
    await this.users.assertCanUpdate(actor, user);
    requireAllowed(actor, 'group.update', groupSubject(group), forbidden('attribute spend to this group'));
    // Lock the user's override first (transaction-scoped), so the current group checked below is
    // the one the write replaces, and every check happens before anything is written.
    await this.overrides.lock(user.id);
    const before = await this.overrides.get(user.id);
    let oldGroup: Group | null = null;
    if (before) {
      oldGroup =
        before.groupId === group.id ? group : await this.groups.getGroupForUpdate(actor, before.groupId);
    }
    const after = await this.overrides.write(user.id, group.id, limit);
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'user_ai_budget_override',
      resourceId: user.id,
      organizationId: group.organizationId,
      diff: {
        user: userRef(user),
        group: { before: groupRef(oldGroup), after: groupRef(group) },
        spend_limit: {
          before: moneyDiff(before?.spendLimitMicros ?? null),
          after: moneyDiff(after.spendLimitMicros),
        },
      },
    });
    return { before, after, oldGroup };
  }

  async deleteOverride(actor: Actor, user: User): Promise<{ before: UserOverride; group: Group }> {
    // The same lock as writers: the group checked and audited is the one being deleted.
    await this.overrides.lock(user.id);
    const current = await this.overrides.get(user.id);
    if (!current) throw noOverride();
    await this.users.assertCanUpdate(actor, user);
    const group = await this.groups.getGroupForUpdate(actor, current.groupId);
    const before = await this.overrides.delete(user.id);
    if (!before) throw noOverride();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'user_ai_budget_override',
      resourceId: user.id,
      organizationId: group.organizationId,
      diff: {
        user: userRef(user),
        group: { before: groupRef(group), after: null },
        spend_limit: { before: moneyDiff(before.spendLimitMicros), after: null },
      },
    });
    return { before, group };
  }
}

const noOverride = () => new DomainError('not_found', 'User has no AI budget override.');

/** The stores over one database handle; `transaction` gives the same stores inside one. */
export class Stores {
  readonly groups: GroupStore;
  readonly budgets: BudgetStore;
  readonly prices: PriceStore;
  readonly audit: AuditStore;
  readonly users: UserStore;
  readonly organizations: OrganizationStore;
  readonly overrides: OverrideStore;

  /**
   * `requestId`: the request the changes belong to, written to their audit entries. Changing
   * methods are meant to run inside `transaction` (so a change and its entries commit together).
   */
  constructor(
    private readonly db: DataSource | EntityManager,
    requestId: string | null = null,
  ) {
    const identity = new IdentityRepository(db);
    const auditRepository = new AuditRepository(db);
    const trail = new AuditTrail(auditRepository, requestId);
    this.groups = new GroupStore(identity, db, trail);
    this.budgets = new BudgetStore(this.groups, new GroupBudgetRepository(db), trail);
    this.prices = new PriceStore(new PriceQueryRepository(db), trail);
    this.audit = new AuditStore(auditRepository);
    this.users = new UserStore(identity, new ApiKeyRepository(db), trail);
    this.organizations = new OrganizationStore(identity, trail);
    this.overrides = new OverrideStore(this.users, this.groups, new OverrideRepository(db), identity, trail);
  }

  /**
   * Runs `fn` in one transaction; the request id is handed to the database (set_config) so
   * that entries written by triggers can carry it. A deadlock or serialization failure rolls
   * the whole attempt back and runs it again (a bounded number of times, with a short jittered
   * pause); one that outlives the retries surfaces as the driver error, which the transports
   * map to "unavailable, retry later".
   */
  async transaction<T>(requestId: string | null, fn: (tx: Stores) => Promise<T>): Promise<T> {
    const ds = this.db instanceof DataSource ? this.db : this.db.connection;
    for (let attempt = 1; ; attempt++) {
      try {
        return await ds.transaction(async (em) => {
          if (requestId) await em.query(`SELECT set_config('aigov.request_id', $1, true)`, [requestId]);
          return fn(new Stores(em, requestId));
        });
      } catch (err) {
        if (attempt >= TRANSACTION_ATTEMPTS || !isRetryableTransactionError(err)) throw err;
        await sleep(Math.random() * 10 * attempt);
      }
    }
  }
}

/** Attempts of one transaction that keeps losing deadlock/serialization races. */
export const TRANSACTION_ATTEMPTS = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
