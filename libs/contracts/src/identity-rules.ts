import { Transform } from 'class-transformer';
import { IsEmail, IsString, Matches, MaxLength, NotEquals } from 'class-validator';
import type { OrganizationRole } from './identity-events';
import type { NameRule } from './text.validators';

/**
 * The rules of identity names and ids (CONTRACT 1.1), one definition for every way they enter:
 * the HTTP API and the identity events.
 */

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): boolean => typeof v === 'string' && UUID_PATTERN.test(v);

export const USERNAME_PATTERN = /^[a-z0-9_-]{1,64}$/;
export const USERNAME_RULE = 'must be 1 to 64 lowercase letters, digits, _ or -, and not "me"';
export const ORGANIZATION_NAME_PATTERN = /^[a-z0-9-]{1,64}$/;
export const ORGANIZATION_NAME_RULE = 'must be 1 to 64 lowercase letters, digits or -';
export const EMAIL_MAX_LENGTH = 254;

// A uuid-shaped path value is always an id, so a uuid-shaped name could never be addressed by name.
const NOT_UUID_SHAPED = /^(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)/;

/** Look-alikes of the organization-wide group's name are refused like the name itself. */
export const GROUP_NAME_RULE: NameRule = {
  max: 255,
  reserved: {
    name: 'Everyone',
    detail: 'must not be or look like Everyone (reserved for the organization-wide group)',
  },
};
export const DISPLAY_NAME_RULE: NameRule = { max: 255 };

export const ORGANIZATION_ROLES: readonly OrganizationRole[] = [
  'organization-admin',
  'organization-user-admin',
  'organization-auditor',
];
export const ORGANIZATION_ROLE_RULE = `must be one of ${ORGANIZATION_ROLES.join(', ')}`;
export const isOrganizationRole = (v: unknown): boolean =>
  typeof v === 'string' && (ORGANIZATION_ROLES as readonly string[]).includes(v);

// class-validator runs the decorator applied first (nearest the property) first: type checks first.
function compose(...decorators: PropertyDecorator[]): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    for (let i = decorators.length - 1; i >= 0; i--) decorators[i](target, key);
  };
}

/** A username: lowercase `[a-z0-9_-]`, 1..64, not `me`, not shaped like a uuid. */
export function IsUsername(): PropertyDecorator {
  return compose(
    Matches(NOT_UUID_SHAPED, { message: 'must not be shaped like a uuid' }),
    NotEquals('me', { message: USERNAME_RULE }),
    Matches(USERNAME_PATTERN, { message: USERNAME_RULE }),
    IsString({ message: 'must be a string' }),
  );
}

/** An email address, stored lowercased so that uniqueness ignores case (Bob@x.io is bob@x.io). */
export function IsEmailAddress(): PropertyDecorator {
  return compose(
    MaxLength(EMAIL_MAX_LENGTH, { message: `must be at most ${EMAIL_MAX_LENGTH} characters` }),
    IsEmail({}, { message: 'must be an email address' }),
    Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value)),
  );
}

/** An organization name: lowercase `[a-z0-9-]`, 1..64, not shaped like a uuid. */
export function IsOrganizationName(): PropertyDecorator {
  return compose(
    Matches(NOT_UUID_SHAPED, { message: 'must not be shaped like a uuid (a uuid in a path is an id)' }),
    Matches(ORGANIZATION_NAME_PATTERN, { message: ORGANIZATION_NAME_RULE }),
    IsString({ message: 'must be a string' }),
  );
}
