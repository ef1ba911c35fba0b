import { ORG_ROLES } from '@aigov/db';
import { IsName } from '@aigov/contracts';
import { ArrayMaxSize, IsArray, IsOptional, IsString, Matches, ValidateIf } from 'class-validator';
import { ORGANIZATION_NAME } from '../http/params';
import { EachElement } from '../http/validators';

const NAME_RULE = 'must be 1 to 64 lowercase letters, digits or -';
// A uuid-shaped path value is always an id, so a uuid-shaped name could never be addressed by name.
const NOT_UUID_SHAPED = /^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)/;

export const ORG_ROLE_RULE = `must be one of ${ORG_ROLES.join(', ')}`;
export const isOrgRole = (v: unknown): boolean => typeof v === 'string' && ORG_ROLES.some((r) => r === v);

// class-validator runs the decorator nearest the property first: the type check goes last.
export class CreateOrganizationDto {
  @Matches(NOT_UUID_SHAPED, { message: 'must not be shaped like a uuid (a uuid in a path is an id)' })
  @Matches(ORGANIZATION_NAME, { message: NAME_RULE })
  @IsString({ message: 'must be a string' })
  name!: string;

  @IsOptional()
  @IsName({ max: 255 })
  display_name?: string | null;
}

export class PutMemberDto {
  // Absent keeps the member's roles; null is not "absent" and is refused.
  @ValidateIf((o: PutMemberDto) => o.roles !== undefined)
  @ArrayMaxSize(ORG_ROLES.length * 4, { message: 'has too many entries' })
  @IsArray({ message: 'must be an array of organization roles' })
  @EachElement(isOrgRole, ORG_ROLE_RULE)
  roles?: unknown[];
}
