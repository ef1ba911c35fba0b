import { Module } from '@nestjs/common';
import { GroupBudgetsController } from './group-budgets.controller';
import { GroupBudgetsService } from './group-budgets.service';

@Module({ controllers: [GroupBudgetsController], providers: [GroupBudgetsService] })
export class BudgetsModule {}
