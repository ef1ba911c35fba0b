import { Injectable, type PipeTransform } from '@nestjs/common';
import { UUID } from '@aigov/authz';
import { ORGANIZATION_NAME_PATTERN } from '@aigov/contracts';
import { DomainError } from '@aigov/errors';

/** A path parameter that must be a uuid; anything else is a 400 naming the parameter. */
@Injectable()
export class UuidParam implements PipeTransform<string, string> {
  constructor(private readonly name: string) {}

  transform(value: string): string {
    if (!UUID.test(value)) {
      throw DomainError.invalid(`Invalid ${this.name}: must be a uuid.`, [
        { field: this.name, detail: 'must be a uuid' },
      ]);
    }
    return value.toLowerCase();
  }
}

/** `{user}` path parameter: a uuid, a username, or `me`. */
@Injectable()
export class UserRefParam implements PipeTransform<string, string> {
  transform(value: string): string {
    if (value === 'me' || UUID.test(value) || /^[a-z0-9_-]{1,64}$/.test(value)) return value;
    throw DomainError.invalid('Invalid user: must be a user id, a username or me.', [
      { field: 'user', detail: 'must be a user id, a username or me' },
    ]);
  }
}

export const ORGANIZATION_NAME = ORGANIZATION_NAME_PATTERN;

/** `{organization}` path parameter: an id (anything uuid-shaped) or a name. */
@Injectable()
export class OrganizationRefParam implements PipeTransform<string, string> {
  transform(value: string): string {
    if (UUID.test(value)) return value.toLowerCase();
    if (ORGANIZATION_NAME.test(value)) return value;
    throw DomainError.invalid('Invalid organization: must be an organization id or name.', [
      { field: 'organization', detail: 'must be an organization id or name' },
    ]);
  }
}

/** An API key id: 10 lowercase letters or digits. */
@Injectable()
export class KeyIdParam implements PipeTransform<string, string> {
  transform(value: string): string {
    if (/^[a-z0-9]{10}$/.test(value)) return value;
    throw DomainError.invalid('Invalid id: must be 10 lowercase letters or digits (an API key id).', [
      { field: 'id', detail: 'must be 10 lowercase letters or digits (an API key id)' },
    ]);
  }
}
