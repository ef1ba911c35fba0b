import { Type } from 'class-transformer';
import type { FieldValidation } from '@aigov/errors';
import { ArrayMaxSize, IsArray, IsInt, IsObject, Min, ValidateNested } from 'class-validator';

const NESTED_DTO = Symbol('nestedDto');

/** A DTO class, as class-validator and class-transformer take it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- DTO constructors take no arguments we know of
export type DtoClass = new (...args: any[]) => object;

/**
 * A field holding a list of at most `max` objects of `dto`. Besides class-validator's nested
 * validation, it records the element DTO so that the validation pipe can reject unknown fields
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

/** The element DTO a ValidateNestedList field holds, if any. */
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
 * validation pipe checks these after the DTO's own decorators passed (so the field is known to
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

const DTO_RULES = Symbol('dtoRules');

/** A rule over a whole validated DTO (fields that depend on each other): its failures, each naming a field. */
export type DtoRule<T> = (dto: T) => FieldValidation[];

/**
 * Declares a cross-field rule on a DTO class (at least one price not null, tiers in increasing
 * order). The validation pipe runs it after every field passed its own decorators, so the rule
 * sees well-typed values.
 */
export function CheckDto<T>(rule: DtoRule<T>): (target: new (...args: never[]) => T) => void {
  return (target) => {
    const rules = (Reflect.getMetadata(DTO_RULES, target) as DtoRule<unknown>[] | undefined) ?? [];
    Reflect.defineMetadata(DTO_RULES, [...rules, rule], target);
  };
}

/** The cross-field rules declared on a DTO class. */
export function dtoRulesOf(dto: DtoClass): readonly DtoRule<object>[] {
  return (Reflect.getMetadata(DTO_RULES, dto) as DtoRule<object>[] | undefined) ?? [];
}

/**
 * An amount of money in integer micro-USD (CONTRACT 0 and 2): a JSON number that is a whole
 * number >= 0 (`1e3` is 1000); strings, fractions, negatives, null and booleans are refused.
 * Upper bounds that depend on configuration are checked where the configuration is known.
 */
export function IsMicros(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    // class-validator runs the decorator applied first first: the type check before the range.
    IsInt({ message: 'must be an integer number of micros' })(target, key);
    Min(0, { message: 'must not be negative' })(target, key);
  };
}
