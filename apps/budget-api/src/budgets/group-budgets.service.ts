import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import { moneyDiff } from '@aigov/contracts';
import type { GroupBudget } from '@aigov/db';
import { validationFailed } from '../http/validation.pipe';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';

@Injectable()
export class GroupBudgetsService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
  ) {}

  get(actor: Actor, groupId: string): Promise<GroupBudget> {
    return this.stores.budgets.getGroupBudget(actor, groupId);
  }

  /** Create or update, with its audit entry in the same transaction. */
  async put(actor: Actor, requestId: string, groupId: string, limit: number): Promise<GroupBudget> {
    const micros = BigInt(limit);
    if (micros > this.options.maxSpendLimitMicros) {
      throw validationFailed([
        { field: 'spend_limit_micros', detail: `Must not exceed ${this.options.maxSpendLimitMicros}.` },
      ]);
    }
    return this.stores.transaction(requestId, async (tx) => {
      const { group, before, after } = await tx.budgets.upsertGroupBudget(actor, groupId, micros);
      await tx.audit.record(actor, {
        action: before ? 'write' : 'create',
        resourceType: 'group_ai_budget',
        resourceId: group.id,
        organizationId: group.organizationId,
        diff: {
          group: { id: group.id, name: group.name },
          spend_limit: {
            before: moneyDiff(before?.spendLimitMicros ?? null),
            after: moneyDiff(after.spendLimitMicros),
          },
        },
        requestId,
      });
      return after;
    });
  }

  async delete(actor: Actor, requestId: string, groupId: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const { group, before } = await tx.budgets.deleteGroupBudget(actor, groupId);
      await tx.audit.record(actor, {
        action: 'delete',
        resourceType: 'group_ai_budget',
        resourceId: group.id,
        organizationId: group.organizationId,
        diff: {
          group: { id: group.id, name: group.name },
          spend_limit: { before: moneyDiff(before.spendLimitMicros), after: null },
        },
        requestId,
      });
    });
  }
}
