import { IsInt, Min } from 'class-validator';

export class PutGroupBudgetDto {
  // class-validator runs the decorator nearest the property first: the type check goes last.
  @Min(0, { message: 'must not be negative' })
  @IsInt({ message: 'must be an integer number of micros' })
  spend_limit_micros!: number;
}
