import { ORG_ROLES } from '@aigov/db';
import { IsName, IsOrganizationName, ORGANIZATION_ROLE_RULE, isOrganizationRole } from '@aigov/contracts';
import { ArrayMaxSize, IsArray, IsOptional, ValidateIf } from 'class-validator';
import { EachElement } from '../http/validators';

// class-validator runs the decorator nearest the property first: the type check goes last.
export class CreateOrganizationDto {
  @IsOrganizationName()
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
  @EachElement(isOrganizationRole, ORGANIZATION_ROLE_RULE)
  roles?: unknown[];
}
