import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import {
  BudgetCheckRequest,
  BudgetReleaseRequest,
  BudgetReserveRequest,
  UsageRecord,
  type BudgetCheckReply,
  type BudgetReleaseReply,
  type BudgetReserveReply,
  type UsageReply,
} from '@aigov/contracts';
import { AiBudgetRoute, Authenticated, CurrentActor } from '../auth/decorators';
import { EnforcementService } from './enforcement.service';

/**
 * The HTTP twins of the NATS enforcement subjects (CONTRACT 2.5, 4.3), for gateways that speak
 * HTTP: the same bodies, validated strictly by the global pipe, and the same replies. Who may
 * enforce (`ai-gateway`, owner) is decided by the spend store.
 */
@Controller('api/v2/ai')
@Authenticated()
@AiBudgetRoute()
export class EnforcementController {
  constructor(@Inject(EnforcementService) private readonly enforcement: EnforcementService) {}

  @Post('budget/check')
  @HttpCode(200)
  check(@CurrentActor() actor: UserActor, @Body() body: BudgetCheckRequest): Promise<BudgetCheckReply> {
    return this.enforcement.check(actor, body);
  }

  @Post('budget/reserve')
  @HttpCode(200)
  reserve(@CurrentActor() actor: UserActor, @Body() body: BudgetReserveRequest): Promise<BudgetReserveReply> {
    return this.enforcement.reserve(actor, body);
  }

  /** 404 for an unknown reservation; `released: false` for one no longer held. */
  @Post('budget/release')
  @HttpCode(200)
  release(@CurrentActor() actor: UserActor, @Body() body: BudgetReleaseRequest): Promise<BudgetReleaseReply> {
    return this.enforcement.release(actor, body.reservation_id);
  }

  /** One record; a replay of a known request id answers the first result with `duplicate: true`. */
  @Post('usage')
  @HttpCode(200)
  async usage(@CurrentActor() actor: UserActor, @Body() body: UsageRecord): Promise<UsageReply> {
    const [outcome] = await this.enforcement.recordUsage(actor, [body]);
    if (!outcome.ok) throw outcome.error;
    return outcome.reply;
  }
}
