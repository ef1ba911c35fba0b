import type { DtoClass } from '@aigov/contracts';
import type { FieldValidation } from '@aigov/errors';
import { IsInt, Min } from 'class-validator';

// The strict-validation decorators are shared with the identity events (libs/contracts).
export {
  EachElement,
  ValidateNestedList,
  elementRulesOf,
  nestedDtoOf,
  type DtoClass,
} from '@aigov/contracts';

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
