import { SITE_ROLES } from '@aigov/db';
import { IsName } from '@aigov/contracts';
import {
  ArrayMaxSize,
  IsArray,
  IsEmail,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  NotEquals,
  ValidateIf,
} from 'class-validator';
import { UUID } from '@aigov/authz';
import { Transform } from 'class-transformer';
import { PageQuery } from '../http/query.dto';
import { EachElement } from '../http/validators';

const USERNAME = /^[a-z0-9_-]{1,64}$/;
const SITE_ROLE_RULE = `must be one of ${SITE_ROLES.join(', ')}`;
const isSiteRole = (v: unknown): boolean =>
  typeof v === 'string' && (SITE_ROLES as readonly string[]).includes(v);
const isUuid = (v: unknown): boolean => typeof v === 'string' && UUID.test(v);
const USERNAME_RULE = 'must be 1 to 64 lowercase letters, digits, _ or -, and not "me"';

export class FirstUserDto {
  // A uuid-shaped path value is always an id, so such a username could never be addressed.
  @Matches(/^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)/, {
    message: 'must not be shaped like a uuid',
  })
  @NotEquals('me', { message: USERNAME_RULE })
  @Matches(USERNAME, { message: USERNAME_RULE })
  @IsString({ message: 'must be a string' })
  username!: string;

  @MaxLength(254, { message: 'must be at most 254 characters' })
  @IsEmail({}, { message: 'must be an email address' })
  // Stored lowercased, so uniqueness ignores case (Bob@x.io and bob@x.io are one address).
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value))
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
