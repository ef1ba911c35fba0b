import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { User, UserOverride } from '@aigov/db';
import { validationFailed } from '@aigov/errors';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import type { PutOverrideDto } from './overrides.dto';

@Injectable()
export class OverridesService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
  ) {}

  async get(actor: Actor, userRef: string): Promise<UserOverride> {
    const user = await this.stores.users.getUser(actor, userRef);
    return this.stores.overrides.getOverride(actor, user);
  }

  /**
   * `user` was found by the caller and the body validated after it (docs/api.md's order of
   * checks: user 404, body 400); then the configured maximum (400), the group exists and is
   * visible (404), permissions (403), membership (400, decided by the database trigger inside the
   * same transaction).
   */
  async put(actor: Actor, requestId: string, user: User, body: PutOverrideDto): Promise<UserOverride> {
    const limit = BigInt(body.spend_limit_micros);
    if (limit > this.options.maxSpendLimitMicros) {
      throw validationFailed([
        { field: 'spend_limit_micros', detail: `Must not exceed ${this.options.maxSpendLimitMicros}.` },
      ]);
    }
    return this.stores.transaction(requestId, async (tx) => {
      const group = await tx.groups.getGroup(actor, body.group_id.toLowerCase());
      return (await tx.overrides.upsertOverride(actor, user, group, limit)).after;
    });
  }

  async delete(actor: Actor, requestId: string, userRef: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, userRef);
      await tx.overrides.deleteOverride(actor, user);
    });
  }
}
