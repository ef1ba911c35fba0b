import { moneyDiff } from '@aigov/contracts';
import type { Group, GroupBudget, GroupBudgetRepository } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import type { GroupStore } from './groups.store';
import { can } from './policy';
import { groupRef, groupSubject, notFound } from './store-checks';

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
