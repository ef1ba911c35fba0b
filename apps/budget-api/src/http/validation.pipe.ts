import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import {
  elementErrors,
  elementRulesOf,
  flattenValidationErrors,
  prescan,
  type DtoClass,
} from '@aigov/contracts';
import { DomainError, MAX_VALIDATIONS, validationFailed, type FieldValidation } from '@aigov/errors';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { dtoRulesOf } from './validators';

// Shared with the identity events; re-exported for the HTTP code that already imports them here.
export { elementErrors, flattenValidationErrors, prescan };

const PRIMITIVES: unknown[] = [String, Number, Boolean, Array, Object];

/** The failures of the DTO's @EachElement rules, each named with its index. */
function elementErrorsOf(instance: object, dto: DtoClass): FieldValidation[] {
  const out: FieldValidation[] = [];
  for (const rule of elementRulesOf(dto)) {
    const values = (instance as Record<string, unknown>)[rule.field];
    if (Array.isArray(values)) out.push(...elementErrors(rule.field, values, rule.ok, rule.detail));
    if (out.length >= MAX_VALIDATIONS) break;
  }
  return out;
}

/**
 * Strict input validation: bodies must be JSON objects, unknown fields are rejected before any
 * conversion work, types are never coerced (a string is not an integer), and every failure names
 * its field.
 */
@Injectable()
export class StrictValidationPipe implements PipeTransform {
  // Not async: as the global pipe it sees every parameter of every request (path parameters,
  // the actor), and those pass through unchanged without a promise of their own.
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    const { metatype, type } = metadata;
    if (!metatype || PRIMITIVES.includes(metatype) || (type !== 'body' && type !== 'query')) return value;
    return this.validateDto(value, metatype as DtoClass, type);
  }

  private async validateDto(value: unknown, metatype: DtoClass, type: 'body' | 'query'): Promise<unknown> {
    if (
      type === 'body' &&
      (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value))
    ) {
      throw DomainError.invalid('Invalid body: must be a JSON object.', [
        { field: 'body', detail: 'must be a JSON object' },
      ]);
    }
    const input = value ?? {};
    // Bodies are what gets stored: NFC there. Query values are filters, compared with what is
    // stored as given (model ids), so they are left as sent.
    const problems = prescan(input, metatype, type === 'body');
    if (problems.length > 0) throw validationFailed(problems);
    const instance = plainToInstance<object, unknown>(metatype, input, {
      enableImplicitConversion: false,
    });
    const errors = await validate(instance, {
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      stopAtFirstError: true,
      validationError: { target: false, value: false },
    });
    if (errors.length > 0) throw validationFailed(flattenValidationErrors(errors));
    throwIfInvalid(elementErrorsOf(instance, metatype));
    throwIfInvalid(dtoRulesOf(metatype).flatMap((rule) => rule(instance)));
    return instance;
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

export function throwIfInvalid(validations: FieldValidation[]): void {
  if (validations.length > 0) throw validationFailed(validations);
}
