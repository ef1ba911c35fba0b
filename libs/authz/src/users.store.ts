import type { Counted, Organization, Page, SiteRole, User, UserRepository } from '@aigov/db';
import type { Actor, UserActor } from './actor';
import type { AuditTrail } from './audit-trail';
import { can } from './policy';
import {
  UUID,
  assertOutranks,
  forbidden,
  notFound,
  requireAllowed,
  userRef,
  userSubject,
} from './store-checks';

export class UserStore {
  constructor(
    private readonly users: UserRepository,
    private readonly trail: AuditTrail,
  ) {}

  /** `ref`: a uuid (always an id), a username, or `me`. Not found when the actor cannot read it. */
  async getUser(actor: Actor, ref: string): Promise<User> {
    const u = await this.lookup(actor, ref);
    if (!u || !can(actor, 'user.read', await userSubject(this.users, u))) throw notFound('User')();
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
    if (ref === 'me') return actor.kind === 'user' ? this.users.getUserById(actor.id) : null;
    return UUID.test(ref) ? this.users.getUserById(ref.toLowerCase()) : this.users.getUserByUsername(ref);
  }

  async listUsers(actor: Actor, q: string | null, page: Page): Promise<{ users: User[] } & Counted> {
    requireAllowed(actor, 'user.list', {}, forbidden('list users'));
    return this.users.listUsers(q, page);
  }

  async createUser(
    actor: Actor,
    u: { username: string; email: string; name: string | null; roles: SiteRole[] },
  ): Promise<User> {
    requireAllowed(actor, 'user.create', {}, forbidden('create users'));
    if (u.roles.length > 0) requireAllowed(actor, 'user.roles.update', {}, forbidden('give site roles'));
    const user = await this.users.createUser(u);
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
    const user = await this.users.createUser({ ...u, roles: ['owner'] });
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
   * Deletes the user. The database removes and records what goes with it (memberships, roles,
   * keys, override: actor system:database, reason user_deleted); this records the user itself.
   * The last active owner cannot go (constraint users_last_owner).
   */
  async deleteUser(actor: Actor, u: User): Promise<void> {
    requireAllowed(actor, 'user.delete', await userSubject(this.users, u), forbidden('delete this user'));
    assertOutranks(actor, u, 'delete this user');
    if (!(await this.users.deleteUser(u.id))) throw notFound('User')();
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
    requireAllowed(
      actor,
      'user.roles.update',
      await userSubject(this.users, u),
      forbidden("change this user's roles"),
    );
    const before = await this.users.lockUser(u.id);
    const after = before && (await this.users.setUserRoles(u.id, roles));
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
      await userSubject(this.users, u),
      forbidden("change this user's status"),
    );
    // Locked first, so a concurrent promotion to owner cannot slip between the check and the write.
    const before = await this.users.lockUser(u.id);
    if (!before) throw notFound('User')();
    if (before.roles.includes('owner') && !(actor.kind === 'user' && actor.siteRoles.has('owner'))) {
      throw forbidden("change an owner's status")();
    }
    const after = await this.users.setUserStatus(u.id, status);
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
    requireAllowed(actor, 'user.read', await userSubject(this.users, u), notFound('User'));
  }

  async assertCanUpdate(actor: Actor, u: User): Promise<void> {
    requireAllowed(actor, 'user.update', await userSubject(this.users, u), forbidden('change this user'));
  }
}
