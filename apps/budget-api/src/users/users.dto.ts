import { SITE_ROLES } from '@aigov/db';
import { IsEmailAddress, IsName, IsUsername, isUuid } from '@aigov/contracts';
import {
  ArrayMaxSize,
  IsArray,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  ValidateIf,
} from 'class-validator';
import { PageQuery } from '../http/query.dto';
import { EachElement } from '../http/validators';

const SITE_ROLE_RULE = `must be one of ${SITE_ROLES.join(', ')}`;
const isSiteRole = (v: unknown): boolean =>
  typeof v === 'string' && (SITE_ROLES as readonly string[]).includes(v);

export class FirstUserDto {
  @IsUsername()
  username!: string;

  @IsEmailAddress()
  email!: string;

  @IsOptional()
  @IsName({ max: 255 })
  name?: string;
}

export class CreateUserDto extends FirstUserDto {
  // Absent means none; null is the wrong type and is refused.
  @ValidateIf((o: CreateUserDto) => o.roles !== undefined)
  @IsArray({ message: 'must be an array of site roles' })
  @EachElement(isSiteRole, SITE_ROLE_RULE)
  roles?: string[];

  // Absent means organization `default`, [] none; null is refused rather than guessed.
  @ValidateIf((o: CreateUserDto) => o.organization_ids !== undefined)
  @ArrayMaxSize(100, { message: 'must have at most 100 entries' })
  @IsArray({ message: 'must be an array of organization ids' })
  @EachElement(isUuid, 'must be a uuid')
  organization_ids?: string[];
}

export class SetRolesDto {
  @IsArray({ message: 'must be an array of site roles' })
  @EachElement(isSiteRole, SITE_ROLE_RULE)
  roles!: string[];
}

export class CreateKeyDto {
  @IsOptional()
  @IsName({ max: 255 })
  name?: string;

  // Absent means no expiry; null is refused (a typo should not mint a key that never expires).
  @ValidateIf((o: CreateKeyDto) => o.lifetime_seconds !== undefined)
  @Min(60, { message: 'must be at least 60' })
  @Max(10 * 366 * 24 * 3600, { message: 'must be at most 10 years' })
  @IsInt({ message: 'must be an integer number of seconds' })
  lifetime_seconds?: number;
}

export class ListUsersQuery extends PageQuery {
  @IsOptional()
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @IsString({ message: 'must be a string' })
  q?: string;
}
