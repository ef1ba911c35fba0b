import { ValidateBy, type ValidationArguments } from 'class-validator';
import { looksLike, nameProblem } from './text';

export interface NameRule {
  /** Longest accepted name, in code points. */
  max: number;
  /** A name this one must not be nor look like (`Everyone`), and why. */
  reserved?: { name: string; detail: string };
}

function nameError(value: unknown, rule: NameRule): string | null {
  if (typeof value !== 'string') return 'must be a string';
  const length = [...value].length;
  if (length < 1 || length > rule.max) return `must be 1 to ${rule.max} characters`;
  const problem = nameProblem(value);
  if (problem) return problem;
  if (rule.reserved && looksLike(value, rule.reserved.name)) return rule.reserved.detail;
  return null;
}

/**
 * A human-chosen name (group, display or key name): a string of 1..max characters, without
 * invisible characters, surrounding spaces or look-alike script mixes (CONTRACT 2). The value
 * reaching the validator is already NFC-normalized by the transport.
 */
export function IsName(rule: NameRule): PropertyDecorator {
  return ValidateBy({
    name: 'isName',
    validator: {
      validate: (value: unknown) => nameError(value, rule) === null,
      defaultMessage: (args?: ValidationArguments) => nameError(args?.value, rule) ?? 'must be a valid name',
    },
  });
}
