import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { DomainError, type FieldValidation } from '@aigov/errors';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';

const PRIMITIVES: unknown[] = [String, Number, Boolean, Array, Object];

/** class-validator errors as `{field, detail}` with paths like `add_users[2]` and `tiers[0].input_price`. */
export function flattenValidationErrors(errors: ValidationError[], prefix = ''): FieldValidation[] {
  const out: FieldValidation[] = [];
  for (const e of errors) {
    const field = /^\d+$/.test(e.property)
      ? `${prefix}[${e.property}]`
      : prefix
        ? `${prefix}.${e.property}`
        : e.property;
    for (const detail of Object.values(e.constraints ?? {})) out.push({ field, detail });
    if (e.children?.length) out.push(...flattenValidationErrors(e.children, field));
  }
  return out;
}

export function validationFailed(validations: FieldValidation[]): DomainError {
  const first = validations[0];
  const summary = first ? `${first.field}: ${first.detail}` : 'invalid input';
  return DomainError.invalid(`Validation failed: ${summary}`, validations);
}

const MAX_DEPTH = 32;

/**
 * Finds what no field may hold before any recursive processing: nesting deeper than MAX_DEPTH
 * (class-transformer would recurse until the stack overflows) and NUL characters (PostgreSQL
 * text cannot store them). Iterative, so hostile input cannot exhaust the stack here either.
 */
export function findHostileInput(value: unknown): FieldValidation | null {
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    const field = path || 'body';
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return { field, detail: 'must not contain NUL characters' };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_DEPTH) {
      // Name the top-level field the monster hangs from, not a path thousands of levels long.
      const top = /^[^.[]+/.exec(path)?.[0] ?? 'body';
      return { field: top, detail: `must not be nested more than ${MAX_DEPTH} levels deep` };
    }
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, path: `${path}[${i}]`, depth: depth + 1 }));
    } else {
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        const child = path ? `${path}.${k}` : k;
        if (k.includes('\u0000')) return { field: child, detail: 'must not contain NUL characters' };
        stack.push({ v: item, path: child, depth: depth + 1 });
      }
    }
  }
  return null;
}

/**
 * Strict input validation: bodies must be JSON objects, unknown fields are rejected, types are
 * never coerced (a string is not an integer), and every failure names its field.
 */
@Injectable()
export class StrictValidationPipe implements PipeTransform {
  async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const { metatype, type } = metadata;
    if (!metatype || PRIMITIVES.includes(metatype) || (type !== 'body' && type !== 'query')) return value;
    if (
      type === 'body' &&
      (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value))
    ) {
      throw DomainError.invalid('Request body must be a JSON object.', [
        { field: 'body', detail: 'must be a JSON object' },
      ]);
    }
    const hostile = findHostileInput(value);
    if (hostile) throw validationFailed([hostile]);
    const instance = plainToInstance<object, unknown>(metatype as new () => object, value ?? {}, {
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
