import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { hasLoneSurrogate, withoutLoneSurrogates } from '@aigov/contracts';
import {
  DomainError,
  MAX_VALIDATIONS,
  UNKNOWN_FIELD,
  validationFailed,
  type FieldValidation,
} from '@aigov/errors';
import { plainToInstance } from 'class-transformer';
import { getMetadataStorage, validate, type ValidationError } from 'class-validator';
import { dtoRulesOf, elementRulesOf, nestedDtoOf, type DtoClass } from './validators';

const PRIMITIVES: unknown[] = [String, Number, Boolean, Array, Object];

const MAX_DEPTH = 32;

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
    if (out.length >= MAX_VALIDATIONS) break;
  }
  return out;
}

/** The fields a DTO accepts, and the DTO of each field that holds nested DTOs. */
interface Schema {
  fields: Set<string>;
  nested: Map<string, Schema>;
}

const schemas = new Map<DtoClass, Schema>();

function schemaOf(dto: DtoClass): Schema {
  let schema = schemas.get(dto);
  if (schema) return schema;
  const metadata = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false);
  schema = { fields: new Set(metadata.map((m) => m.propertyName)), nested: new Map() };
  schemas.set(dto, schema);
  for (const field of schema.fields) {
    const nested = nestedDtoOf(dto, field);
    if (nested) schema.nested.set(field, schemaOf(nested));
  }
  return schema;
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

/**
 * One pass over the parsed input, before any class-transformer or class-validator work, in time
 * linear in its size (iterative, so hostile nesting cannot exhaust the stack): unknown fields
 * (checked against the DTO, nested DTOs included), nesting deeper than MAX_DEPTH, NUL characters
 * (PostgreSQL text cannot store them) and lone surrogates (neither can UTF-8, nor jsonb) in keys
 * and values. With `normalize`, strings are NFC-normalized in place on the way (CONTRACT 2). Stops at
 * MAX_VALIDATIONS problems.
 */
export function prescan(value: unknown, dto: DtoClass | null, normalize: boolean): FieldValidation[] {
  const problems: FieldValidation[] = [];
  type Item = {
    holder: Record<string | number, unknown>;
    key: string | number;
    path: string;
    depth: number;
    schema: Schema | null;
  };
  const root = { v: value };
  const stack: Item[] = [
    {
      holder: root,
      key: 'v',
      path: '',
      depth: 0,
      schema: dto ? schemaOf(dto) : null,
    },
  ];
  while (stack.length > 0 && problems.length < MAX_VALIDATIONS) {
    const { holder, key, path, depth, schema } = stack.pop()!;
    const v = holder[key];
    const field = path || 'body';
    if (typeof v === 'string') {
      if (v.includes('\u0000')) problems.push({ field, detail: 'must not contain NUL characters' });
      else if (hasLoneSurrogate(v))
        problems.push({ field, detail: 'must not contain unpaired UTF-16 surrogates' });
      else if (normalize) holder[key] = v.normalize('NFC');
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_DEPTH) {
      // Name the top-level field the monster hangs from, not a path thousands of levels long.
      const top = /^[^.[]+/.exec(path)?.[0] ?? 'body';
      problems.push({ field: top, detail: `must not be nested more than ${MAX_DEPTH} levels deep` });
      break;
    }
    if (Array.isArray(v)) {
      // Elements of a list of DTOs are DTOs themselves.
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({
          holder: v as unknown[] as Record<number, unknown>,
          key: i,
          path: `${path}[${i}]`,
          depth: depth + 1,
          schema,
        });
      }
      continue;
    }
    const obj = v as Record<string, unknown>;
    // The object's own problems in document order; its fields are visited after them.
    const children: Item[] = [];
    for (const k of Object.keys(obj)) {
      const child = join(path, withoutLoneSurrogates(k));
      if (k.includes('\u0000')) problems.push({ field: child, detail: 'must not contain NUL characters' });
      else if (hasLoneSurrogate(k))
        problems.push({ field: child, detail: 'must not contain unpaired UTF-16 surrogates' });
      else if (schema && !schema.fields.has(k)) problems.push({ field: child, detail: UNKNOWN_FIELD });
      else {
        children.push({
          holder: obj,
          key: k,
          path: child,
          depth: depth + 1,
          schema: schema?.nested.get(k) ?? null,
        });
        continue;
      }
      if (problems.length >= MAX_VALIDATIONS) break;
    }
    // Last in, first out: pushed in reverse so that the first field is visited first.
    for (let c = children.length - 1; c >= 0; c--) stack.push(children[c]);
  }
  return problems;
}

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
  const out: FieldValidation[] = [];
  for (const [i, v] of (values ?? []).entries()) {
    if (!ok(v)) out.push({ field: `${field}[${i}]`, detail });
    if (out.length >= MAX_VALIDATIONS) break;
  }
  return out;
}

export function throwIfInvalid(validations: FieldValidation[]): void {
  if (validations.length > 0) throw validationFailed(validations);
}
