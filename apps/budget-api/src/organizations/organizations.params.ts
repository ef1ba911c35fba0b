import { Injectable, type PipeTransform } from '@nestjs/common';
import { UUID } from '@aigov/authz';
import { DomainError, type FieldValidation } from '@aigov/errors';
import { StrictValidationPipe, validationFailed } from '../http/validation.pipe';

export const ORGANIZATION_NAME = /^[a-z0-9-]{1,64}$/;

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

/**
 * A body that may be left out entirely (`PUT .../members/{user}` with nothing to say): absent
 * means `{}`; anything present goes through the strict validation as usual. The parameter must be
 * typed `unknown` so that the global pipe (which would reject the absent body) leaves it alone.
 */
@Injectable()
export class OptionalBody<T extends object> implements PipeTransform<unknown, Promise<T>> {
  private readonly strict = new StrictValidationPipe();

  constructor(private readonly dto: new () => T) {}

  async transform(value: unknown): Promise<T> {
    return (await this.strict.transform(value === undefined ? {} : value, {
      type: 'body',
      metatype: this.dto,
    })) as T;
  }
}

/**
 * Checks each element of an array field and names the failing ones (`roles[1]`): class-validator's
 * `each` option only names the array. Returns the failures; the caller throws them together.
 */
export function elementErrors(
  field: string,
  values: readonly unknown[] | undefined,
  ok: (v: unknown) => boolean,
  detail: string,
): FieldValidation[] {
  return (values ?? []).flatMap((v, i) => (ok(v) ? [] : [{ field: `${field}[${i}]`, detail }]));
}

export function throwIfInvalid(validations: FieldValidation[]): void {
  if (validations.length > 0) throw validationFailed(validations);
}
