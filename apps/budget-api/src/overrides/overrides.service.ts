import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { UserOverride } from '@aigov/db';
import { StrictValidationPipe, validationFailed } from '../http/validation.pipe';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { PutOverrideDto } from './overrides.dto';

@Injectable()
export class OverridesService {
  private readonly validate = new StrictValidationPipe();

  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
  ) {}

  async get(actor: Actor, userRef: string): Promise<UserOverride> {
    const user = await this.stores.users.getUser(actor, userRef);
    return this.stores.overrides.getOverride(actor, user);
  }

  /**
   * docs/api.md's order: the user exists and is visible (404), the body is valid (400), the
   * group exists and is visible (404), permissions (403), membership (400, decided by the
   * database trigger inside the same transaction).
   */
  async put(actor: Actor, requestId: string, userRef: string, rawBody: unknown): Promise<UserOverride> {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, userRef);
      const body = (await this.validate.transform(rawBody, {
        type: 'body',
        metatype: PutOverrideDto,
      })) as PutOverrideDto;
      const limit = BigInt(body.spend_limit_micros);
      if (limit > this.options.maxSpendLimitMicros) {
        throw validationFailed([
          { field: 'spend_limit_micros', detail: `Must not exceed ${this.options.maxSpendLimitMicros}.` },
        ]);
      }
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
