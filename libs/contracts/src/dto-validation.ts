import { MAX_VALIDATIONS, UNKNOWN_FIELD, type FieldValidation } from '@aigov/errors';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsObject,
  ValidateNested,
  getMetadataStorage,
  validateSync,
  type ValidationError,
} from 'class-validator';
import { hasLoneSurrogate, withoutLoneSurrogates } from './text';

/**
 * Strict validation of untrusted JSON against class-validator DTOs, shared by every transport
 * (HTTP bodies, identity events): unknown fields refused before any conversion work, strings
 * NFC-normalized, no type coercion, every failure naming its field.
 */

/** A DTO class, as class-validator and class-transformer take it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- DTO constructors take no arguments we know of
export type DtoClass = new (...args: any[]) => object;

const NESTED_DTO = Symbol('nestedDto');

/**
 * A field holding a list of at most `max` objects of `dto`. Besides class-validator's nested
 * validation, it records the element DTO so that the strict validation can reject unknown fields
 * inside the elements too, before any conversion work.
 */
export function ValidateNestedList(dto: () => DtoClass, max: number, what: string): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    Reflect.defineMetadata(NESTED_DTO, dto, target.constructor, key);
    // class-validator runs the decorator applied first (nearest the property) first.
    IsArray({ message: `must be an array of ${what}` })(target, key);
    ArrayMaxSize(max, { message: `must have at most ${max} entries` })(target, key);
    Type(dto)(target, key);
    ValidateNested({ each: true, message: 'each entry must be an object' })(target, key);
    // ValidateNested alone lets an entry that is itself an array through; this refuses it.
    IsObject({ each: true, message: 'each entry must be an object' })(target, key);
  };
}

/**
 * A field holding one object of `dto` (not a list): recorded like ValidateNestedList so that
 * unknown fields inside it are refused too.
 */
export function ValidateNestedObject(dto: () => DtoClass, what: string): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    Reflect.defineMetadata(NESTED_DTO, dto, target.constructor, key);
    Type(dto)(target, key);
    ValidateNested({ message: `must be ${what}` })(target, key);
    IsObject({ message: `must be ${what}` })(target, key);
  };
}

/** The element DTO a ValidateNestedList (or ValidateNestedObject) field holds, if any. */
export function nestedDtoOf(dto: DtoClass, field: string): DtoClass | null {
  const get = Reflect.getMetadata(NESTED_DTO, dto, field) as (() => DtoClass) | undefined;
  return get ? get() : null;
}

const EACH_ELEMENT = Symbol('eachElement');

interface ElementRule {
  field: string;
  ok: (value: unknown) => boolean;
  detail: string;
}

/**
 * Each element of an array field must pass `ok`; a failing one is named with its index
 * (`roles[1]`), which class-validator's `each` option cannot do (it names only the array). The
 * strict validation checks these after the DTO's own decorators passed (so the field is known to
 * be an array by then).
 */
export function EachElement(ok: (value: unknown) => boolean, detail: string): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    const rules = (Reflect.getMetadata(EACH_ELEMENT, target.constructor) as ElementRule[] | undefined) ?? [];
    // A copy per class: a subclass adds to its own list, not to its parent's.
    Reflect.defineMetadata(EACH_ELEMENT, [...rules, { field: String(key), ok, detail }], target.constructor);
  };
}

/** The element rules declared on a DTO (its parents' included). */
export function elementRulesOf(dto: DtoClass): readonly ElementRule[] {
  return (Reflect.getMetadata(EACH_ELEMENT, dto) as ElementRule[] | undefined) ?? [];
}

/**
 * Checks each element of an array field and names the failing ones (`roles[1]`). Returns the
 * failures; the caller reports them together.
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

const MAX_DEPTH = 32;

/**
 * One pass over the parsed input, before any class-transformer or class-validator work, in time
 * linear in its size (iterative, so hostile nesting cannot exhaust the stack): unknown fields
 * (checked against the DTO, nested DTOs included), nesting deeper than MAX_DEPTH, NUL characters
 * (PostgreSQL text cannot store them) and lone surrogates (neither can UTF-8, nor jsonb) in keys
 * and values. With `normalize`, strings are NFC-normalized in place on the way. Stops at
 * MAX_VALIDATIONS problems. `root` names the input in messages (`body`, `data`).
 */
export function prescan(
  value: unknown,
  dto: DtoClass | null,
  normalize: boolean,
  root = '',
): FieldValidation[] {
  const problems: FieldValidation[] = [];
  type Item = {
    holder: Record<string | number, unknown>;
    key: string | number;
    path: string;
    depth: number;
    schema: Schema | null;
  };
  const holderOfRoot = { v: value };
  const stack: Item[] = [
    { holder: holderOfRoot, key: 'v', path: root, depth: 0, schema: dto ? schemaOf(dto) : null },
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
      const relative = root ? path.slice(root.length).replace(/^\./, '') : path;
      const top = /^[^.[]+/.exec(relative)?.[0];
      problems.push({
        field: top ? join(root, top) : root || 'body',
        detail: `must not be nested more than ${MAX_DEPTH} levels deep`,
      });
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

/** The failures of @EachElement rules of the DTO and of the DTOs nested in it, named with their path. */
export function nestedElementErrors(instance: object, dto: DtoClass, prefix = ''): FieldValidation[] {
  const out: FieldValidation[] = [];
  const record = instance as Record<string, unknown>;
  for (const rule of elementRulesOf(dto)) {
    const values = record[rule.field];
    if (Array.isArray(values))
      out.push(...elementErrors(join(prefix, rule.field), values, rule.ok, rule.detail));
    if (out.length >= MAX_VALIDATIONS) return out.slice(0, MAX_VALIDATIONS);
  }
  for (const field of schemaOf(dto).nested.keys()) {
    const nested = nestedDtoOf(dto, field)!;
    const value = record[field];
    const items: [string, unknown][] = Array.isArray(value)
      ? value.map((v, i) => [`${join(prefix, field)}[${i}]`, v])
      : [[join(prefix, field), value]];
    for (const [path, item] of items) {
      if (item !== null && typeof item === 'object') out.push(...nestedElementErrors(item, nested, path));
      if (out.length >= MAX_VALIDATIONS) return out.slice(0, MAX_VALIDATIONS);
    }
  }
  return out;
}

/**
 * The input as DTO instances (nested DTO fields too), without class-transformer: the prescan has
 * checked every field already, and class-transformer's per-object metadata scans made a 1 MB
 * snapshot take most of a second. @Transform decorators therefore do not run here.
 */
function instantiate(dto: DtoClass, input: Record<string, unknown>): object {
  const instance = Object.assign(Object.create(dto.prototype as object) as object, input);
  const record = instance as Record<string, unknown>;
  for (const field of schemaOf(dto).nested.keys()) {
    const nested = nestedDtoOf(dto, field)!;
    const value = record[field];
    const make = (v: unknown): unknown =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? instantiate(nested, v as Record<string, unknown>)
        : v;
    if (Array.isArray(value)) record[field] = value.map(make);
    else if (value !== undefined) record[field] = make(value);
  }
  return instance;
}

export type StrictResult<T> = { ok: true; value: T } | { ok: false; problems: FieldValidation[] };

/**
 * The whole strict validation of one JSON value against a DTO: prescan (unknown fields, NUL,
 * lone surrogates, depth; NFC), then class-validator without coercion, then the @EachElement
 * rules at every level. Problems are named under `root` (`data.user_id`). Values are validated as
 * given: @Transform decorators (class-transformer) do not run, so the caller normalizes case.
 */
export function validateStrict<T extends object>(
  dto: new () => T,
  input: unknown,
  root: string,
): StrictResult<T> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ field: root || 'body', detail: 'must be a JSON object' }] };
  }
  const problems = prescan(input, dto, true, root);
  if (problems.length > 0) return { ok: false, problems };
  const instance = instantiate(dto, input as Record<string, unknown>) as T;
  const errors = validateSync(instance, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    stopAtFirstError: true,
    validationError: { target: false, value: false },
  });
  if (errors.length > 0) return { ok: false, problems: flattenValidationErrors(errors, root) };
  const elementProblems = nestedElementErrors(instance, dto, root);
  if (elementProblems.length > 0) return { ok: false, problems: elementProblems };
  return { ok: true, value: instance };
}
