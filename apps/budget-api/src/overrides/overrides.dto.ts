import { IsInt, IsUUID, Min } from 'class-validator';

// class-validator runs the decorator nearest the property first: the type check goes last.
export class PutOverrideDto {
  @IsUUID('all', { message: 'must be a uuid' })
  group_id!: string;

  @Min(0, { message: 'must not be negative' })
  @IsInt({ message: 'must be an integer number of micros' })
  spend_limit_micros!: number;
}
