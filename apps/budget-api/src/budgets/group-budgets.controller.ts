import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Put } from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import { AiBudgetRoute, Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { UuidParam } from '../http/params';
import { groupBudgetResponse } from '../http/responses';
import { PutGroupBudgetDto } from './group-budget.dto';
import { GroupBudgetsService } from './group-budgets.service';

@Controller('api/v2/groups/:group/ai/budget')
@Authenticated()
@AiBudgetRoute()
export class GroupBudgetsController {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(GroupBudgetsService) private readonly budgets: GroupBudgetsService,
  ) {}

  @Get()
  async get(@CurrentActor() actor: UserActor, @Param('group', new UuidParam('group')) group: string) {
    return groupBudgetResponse(await this.stores.budgets.getGroupBudget(actor, group));
  }

  @Put()
  @HttpCode(200)
  async put(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('group', new UuidParam('group')) group: string,
    @Body() body: PutGroupBudgetDto,
  ) {
    return groupBudgetResponse(await this.budgets.put(actor, requestId, group, body.spend_limit_micros));
  }

  @Delete()
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('group', new UuidParam('group')) group: string,
  ): Promise<void> {
    await this.stores.transaction(requestId, (tx) => tx.budgets.deleteGroupBudget(actor, group));
  }
}
