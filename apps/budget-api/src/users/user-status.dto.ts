import { IsIn } from 'class-validator';

export const USER_STATUSES = ['active', 'suspended'] as const;

/** PUT /users/{user}/status (CONTRACT 2.1). */
export class SetStatusDto {
  @IsIn(USER_STATUSES, { message: `must be one of ${USER_STATUSES.join(', ')}` })
  status!: (typeof USER_STATUSES)[number];
}
