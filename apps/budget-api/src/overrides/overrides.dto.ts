import { IsUUID } from 'class-validator';
import { IsMicros } from '../http/validators';

export class PutOverrideDto {
  @IsUUID('all', { message: 'must be a uuid' })
  group_id!: string;

  @IsMicros()
  spend_limit_micros!: number;
}
