import { UUID } from '@aigov/authz';
import type { FieldValidation } from '@aigov/errors';
import { DISPLAY_NAME_RULE, GROUP_NAME_RULE, IsName } from '@aigov/contracts';
import { ArrayMaxSize, IsArray, IsOptional, ValidateIf } from 'class-validator';
import { throwIfInvalid } from '../http/validation.pipe';
import { EachElement } from '../http/validators';

const GROUP_NAME = GROUP_NAME_RULE;
const DISPLAY_NAME = DISPLAY_NAME_RULE;
export const MAX_USERS_PER_PATCH = 1000;
export const isUuid = (v: unknown): boolean => typeof v === 'string' && UUID.test(v);
const USER_ID_RULE = 'must be a user id (uuid)';

// class-validator runs the decorator nearest the property first: the type check goes last.
export class CreateGroupDto {
  @IsName(GROUP_NAME)
  name!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME)
  display_name?: string | null;
}

export class PatchGroupDto {
  // Absent keeps the name; null is refused (a group always has a name).
  @ValidateIf((o: PatchGroupDto) => o.name !== undefined)
  @IsName(GROUP_NAME)
  name?: string;

  // Absent keeps it; null clears it.
  @IsOptional()
  @IsName(DISPLAY_NAME)
  display_name?: string | null;

  @ValidateIf((o: PatchGroupDto) => o.add_users !== undefined)
  @ArrayMaxSize(MAX_USERS_PER_PATCH, { message: `must have at most ${MAX_USERS_PER_PATCH} entries` })
  @IsArray({ message: 'must be an array of user ids' })
  @EachElement(isUuid, USER_ID_RULE)
  add_users?: unknown[];

  @ValidateIf((o: PatchGroupDto) => o.remove_users !== undefined)
  @ArrayMaxSize(MAX_USERS_PER_PATCH, { message: `must have at most ${MAX_USERS_PER_PATCH} entries` })
  @IsArray({ message: 'must be an array of user ids' })
  @EachElement(isUuid, USER_ID_RULE)
  remove_users?: unknown[];
}

/** An entry of `add_users`: the id and where it was in the request (for `add_users[i]`). */
export interface UserRef {
  id: string;
  index: number;
}

/**
 * The validated lists (every element a uuid: @EachElement) with duplicates dropped and ids
 * lowercased. A user in both lists is refused: the request would not say what it wants.
 */
export function parseUserLists(body: PatchGroupDto): { add: UserRef[]; remove: string[] } {
  const add = new Map<string, number>();
  (body.add_users ?? []).forEach((v, i) => {
    const id = (v as string).toLowerCase();
    if (!add.has(id)) add.set(id, i);
  });
  const remove = new Set<string>();
  const both: FieldValidation[] = [];
  (body.remove_users ?? []).forEach((v, i) => {
    const id = (v as string).toLowerCase();
    if (add.has(id)) both.push({ field: `remove_users[${i}]`, detail: `user ${id} is also in add_users` });
    remove.add(id);
  });
  throwIfInvalid(both);
  return { add: [...add].map(([id, index]) => ({ id, index })), remove: [...remove] };
}
