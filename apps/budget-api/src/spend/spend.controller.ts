import { Controller, Get, Inject, Param } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import { AiBudgetRoute, Authenticated, CurrentActor } from '../auth/decorators';
import { UserRefParam, UuidParam } from '../http/params';
import { SpendReportsService } from './spend-reports.service';

/** Spend reports and budget explanations (CONTRACT 2.5): readers of the user or of the group. */
@Controller('api/v2')
@Authenticated()
@AiBudgetRoute()
export class SpendController {
  constructor(@Inject(SpendReportsService) private readonly reports: SpendReportsService) {}

  @Get('users/:user/ai/spend')
  userSpend(@CurrentActor() actor: UserActor, @Param('user', UserRefParam) user: string) {
    return this.reports.userSpend(actor, user);
  }

  @Get('users/:user/ai/budget/explain')
  explain(@CurrentActor() actor: UserActor, @Param('user', UserRefParam) user: string) {
    return this.reports.explain(actor, user);
  }

  @Get('groups/:group/ai/spend')
  groupSpend(@CurrentActor() actor: UserActor, @Param('group', new UuidParam('group')) group: string) {
    return this.reports.groupSpend(actor, group);
  }
}
