// Domain errors: a stable machine code, a human message naming what is wrong, and optional
// per-field validations. No HTTP or NATS types here; each transport maps codes itself.

export const ERROR_CODES = [
  'invalid_argument',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'unsupported_media_type',
  'upstream_error',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FieldValidation {
  field: string;
  detail: string;
}

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly validations: FieldValidation[] = [],
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }

  static invalid(message: string, validations: FieldValidation[] = []): DomainError {
    return new DomainError('invalid_argument', message, validations);
  }
}

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof DomainError;
}

/** An error reply lists at most this many problems: a hostile body must not get a huge answer. */
export const MAX_VALIDATIONS = 20;

/** The detail of a field the request does not have (its message says "Unknown field"). */
export const UNKNOWN_FIELD = 'is not a field of this request';

/**
 * The one invalid-argument error of every transport: the message names the first field and states
 * its rule (as a sentence), `validations` lists at most MAX_VALIDATIONS problems.
 */
export function validationFailed(validations: FieldValidation[]): DomainError {
  const first = validations[0];
  if (!first) return DomainError.invalid('Invalid request.');
  const more = validations.length - 1;
  // A capped list does not know how many more there were.
  const count =
    validations.length >= MAX_VALIDATIONS
      ? 'more problems'
      : more === 1
        ? '1 more problem'
        : `${more} more problems`;
  const rest = more > 0 ? ` (and ${count}, see validations)` : '';
  // Details are phrases ("must not be negative"); a few arrive as sentences ("Must not exceed N.").
  const rule = first.detail.replace(/\.$/, '').replace(/^[A-Z](?=[a-z])/, (c) => c.toLowerCase());
  const what = first.detail === UNKNOWN_FIELD ? 'Unknown field' : 'Invalid';
  return DomainError.invalid(
    `${what} ${first.field}: ${rule}${rest}.`,
    validations.slice(0, MAX_VALIDATIONS),
  );
}
