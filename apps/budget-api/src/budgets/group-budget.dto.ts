import { IsMicros } from '../http/validators';

export class PutGroupBudgetDto {
  @IsMicros()
  spend_limit_micros!: number;
}
