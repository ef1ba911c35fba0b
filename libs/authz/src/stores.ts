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
  type SiteRole,
  type User,
  type UserOverride,
  q,
} from '@aigov/db';
import { DataSource, type EntityManager } from 'typeorm';
import { actorId, actorName, type Actor } from './actor';
import { ROLE_TABLE, can, type Action, type Subject } from './policy';

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

/** `GET /groups/{group}` shows at most this many members; the members route pages them all. */
export const MEMBER_PREVIEW = 1000;

export class GroupStore {
  constructor(
    private readonly identity: IdentityRepository,
    private readonly db: Db,
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

  /** Those of `userIds` that are members of the group: for naming them in audit entries. */
  async listGroupMembersAmong(actor: Actor, group: Group, userIds: string[]): Promise<GroupMember[]> {
    requireAllowed(actor, 'group.read', groupSubject(group), notFound('Group'));
    return this.identity.listGroupMembersAmong(group, userIds);
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
    return this.identity.createGroup({ organizationId: org.id, name, displayName });
  }

  async updateGroup(
    actor: Actor,
    g: Group,
    patch: { name?: string; displayName?: string | null },
  ): Promise<Group> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    const updated = await this.identity.updateGroup(g.id, patch);
    if (!updated) throw notFound('Group')();
    return updated;
  }

  async addGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    return this.identity.addGroupMembers(g.id, userIds);
  }

  async removeGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    return this.identity.removeGroupMembers(g.id, userIds);
  }

  async deleteGroup(actor: Actor, g: Group): Promise<void> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('delete this group'));
    await this.identity.deleteGroup(g.id);
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
    return { group, ...(await this.budgets.upsert(groupId, limit)) };
  }

  async deleteGroupBudget(actor: Actor, groupId: string): Promise<{ group: Group; before: GroupBudget }> {
    const group = await this.groups.getGroupForUpdate(actor, groupId);
    const before = await this.budgets.delete(groupId);
    if (!before) throw new DomainError('not_found', 'Group has no AI budget.');
    return { group, before };
  }
}

export class PriceStore {
  constructor(private readonly prices: PriceQueryRepository) {}

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
    return this.prices.upsertCustom(provider, model, input);
  }

  async deleteCustomPrice(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    requireAllowed(actor, 'price.write', {}, forbidden('delete custom prices'));
    const before = await this.prices.deleteCustom(provider, model);
    if (!before) throw new DomainError('not_found', `No custom price for ${provider}/${model}.`);
    return before;
  }

  /** Asking the pricing worker to sync is checked here; the request itself goes over NATS. */
  assertCanSync(actor: Actor): void {
    requireAllowed(actor, 'price.sync', {}, forbidden('sync prices'));
  }
}

export class AuditStore {
  constructor(private readonly audit: AuditRepository) {}

  /** Records a change made by `actor`; call it inside the transaction of the change. */
  async record(actor: Actor, e: Omit<AuditEntryInput, 'actor' | 'actorId'>): Promise<void> {
    await this.audit.insert({ ...e, actor: actorName(actor), actorId: actorId(actor) });
  }

  async list(actor: Actor, f: AuditFilter, page: Page): Promise<{ entries: AuditEntry[] } & Counted> {
    requireAllowed(actor, 'audit.read', {}, forbidden('read the audit log'));
    return this.audit.list(f, page);
  }
}

export class UserStore {
  constructor(
    private readonly identity: IdentityRepository,
    private readonly keys: ApiKeyRepository,
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
    return this.identity.createUser(u);
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

  /** Deletes the user; returns what went with it (for the audit log): memberships and keys. */
  async deleteUser(actor: Actor, u: User): Promise<{ organizationIds: string[]; keys: ApiKey[] }> {
    const subject = await this.subject(u);
    requireAllowed(actor, 'user.delete', subject, forbidden('delete this user'));
    this.assertOutranks(actor, u, 'delete this user');
    const keys = await this.keys.listForUser(u.id);
    await this.identity.deleteUser(u.id);
    return { organizationIds: [...(subject.organizationIds ?? [])], keys };
  }

  async setRoles(actor: Actor, u: User, roles: SiteRole[]): Promise<{ before: User; after: User }> {
    requireAllowed(actor, 'user.roles.update', await this.subject(u), forbidden("change this user's roles"));
    const after = await this.identity.setUserRoles(u.id, roles);
    if (!after) throw notFound('User')();
    return { before: u, after };
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
    return this.keys.create({ ...k, userId: u.id });
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
    return key;
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class OrganizationStore {
  constructor(private readonly identity: IdentityRepository) {}

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
    return this.identity.createOrganization({ name, displayName });
  }

  async listMembers(
    actor: Actor,
    o: Organization,
    page: Page,
  ): Promise<{ members: OrganizationMember[] } & Counted> {
    requireAllowed(actor, 'organization.members.read', { organizationIds: [o.id] }, notFound('Organization'));
    return this.identity.listOrganizationMembers(o.id, page);
  }

  async upsertMember(actor: Actor, o: Organization, u: User, roles: OrgRole[] | null) {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    return this.identity.upsertOrganizationMember(o.id, u.id, roles);
  }

  async removeMember(actor: Actor, o: Organization, u: User): Promise<OrganizationMember> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    const removed = await this.identity.deleteOrganizationMember(o.id, u.id);
    if (!removed) throw new DomainError('not_found', 'User is not a member of the organization.');
    return removed;
  }
}

/**
 * User budget overrides (CONTRACT 2.3, 3): read by whoever may read the user; written only with
 * site-wide user update AND group update on the attributed group (on a reassignment, on both).
 */
export class OverrideStore {
  constructor(
    private readonly users: UserStore,
    private readonly groups: GroupStore,
    private readonly overrides: OverrideRepository,
  ) {}

  async getOverride(actor: Actor, user: User): Promise<UserOverride> {
    await this.users.assertCanRead(actor, user);
    const o = await this.overrides.get(user.id);
    if (!o) throw new DomainError('not_found', 'User has no AI budget override.');
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
    return { before, after, oldGroup };
  }

  async deleteOverride(actor: Actor, user: User): Promise<{ before: UserOverride; group: Group }> {
    // The same lock as writers: the group checked and audited is the one being deleted.
    await this.overrides.lock(user.id);
    const current = await this.overrides.get(user.id);
    if (!current) throw new DomainError('not_found', 'User has no AI budget override.');
    await this.users.assertCanUpdate(actor, user);
    const group = await this.groups.getGroupForUpdate(actor, current.groupId);
    const before = await this.overrides.delete(user.id);
    if (!before) throw new DomainError('not_found', 'User has no AI budget override.');
    return { before, group };
  }
}

/** The stores over one database handle; `transaction` gives the same stores inside one. */
export class Stores {
  readonly groups: GroupStore;
  readonly budgets: BudgetStore;
  readonly prices: PriceStore;
  readonly audit: AuditStore;
  readonly users: UserStore;
  readonly organizations: OrganizationStore;
  readonly overrides: OverrideStore;

  constructor(private readonly db: DataSource | EntityManager) {
    const identity = new IdentityRepository(db);
    this.groups = new GroupStore(identity, db);
    this.budgets = new BudgetStore(this.groups, new GroupBudgetRepository(db));
    this.prices = new PriceStore(new PriceQueryRepository(db));
    this.audit = new AuditStore(new AuditRepository(db));
    this.users = new UserStore(identity, new ApiKeyRepository(db));
    this.organizations = new OrganizationStore(identity);
    this.overrides = new OverrideStore(this.users, this.groups, new OverrideRepository(db));
  }

  /**
   * Runs `fn` in one transaction; the request id is handed to the database (set_config) so
   * that entries written by triggers can carry it.
   */
  async transaction<T>(requestId: string | null, fn: (tx: Stores) => Promise<T>): Promise<T> {
    const ds = this.db instanceof DataSource ? this.db : this.db.connection;
    return ds.transaction(async (em) => {
      if (requestId) await em.query(`SELECT set_config('aigov.request_id', $1, true)`, [requestId]);
      return fn(new Stores(em));
    });
  }
}
