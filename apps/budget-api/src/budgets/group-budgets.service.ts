import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { GroupBudget } from '@aigov/db';
import { validationFailed } from '@aigov/errors';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';

@Injectable()
export class GroupBudgetsService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
  ) {}

  /** Create or update, within the configured maximum (the store records the audit entry). */
  async put(actor: Actor, requestId: string, groupId: string, limit: number): Promise<GroupBudget> {
    const micros = BigInt(limit);
    if (micros > this.options.maxSpendLimitMicros) {
      throw validationFailed([
        { field: 'spend_limit_micros', detail: `Must not exceed ${this.options.maxSpendLimitMicros}.` },
      ]);
    }
    return this.stores.transaction(
      requestId,
      async (tx) => (await tx.budgets.upsertGroupBudget(actor, groupId, micros)).after,
    );
  }
}
