import { moneyDiff } from '@aigov/contracts';
import type { Group, GroupRepository, OverrideRepository, User, UserOverride } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import type { GroupStore } from './groups.store';
import { can } from './policy';
import { forbidden, groupRef, groupSubject, requireAllowed, userRef } from './store-checks';
import type { UserStore } from './users.store';

/**
 * User budget overrides (docs/permissions.md): read by whoever may read the user; written only with
 * site-wide user update AND group update on the attributed group (on a reassignment, on both).
 */
export class OverrideStore {
  constructor(
    private readonly users: UserStore,
    private readonly groups: GroupStore,
    private readonly overrides: OverrideRepository,
    private readonly groupRows: GroupRepository,
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
      const g = await this.groupRows.getGroup(o.groupId);
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
