import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsObject, ValidateNested } from 'class-validator';

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
