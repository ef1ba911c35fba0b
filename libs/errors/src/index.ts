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
