import { DomainError, type ErrorCode, type FieldValidation } from '@aigov/errors';

/** The error body of docs/api.md. */
export interface ErrorBody {
  message: string;
  detail?: string;
  validations: FieldValidation[];
  request_id: string;
}

/** One exhaustive mapping from domain codes to HTTP statuses: the compiler flags a missing code. */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'invalid_argument':
      return 400;
    case 'unauthenticated':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'conflict':
      return 409;
    case 'payload_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    case 'upstream_error':
      return 502;
    case 'unavailable':
      return 503;
    case 'internal':
      return 500;
  }
}

export function bodyOf(err: DomainError, requestId: string): ErrorBody {
  return {
    message: err.message,
    ...(err.detail ? { detail: err.detail } : {}),
    validations: err.validations,
    request_id: requestId,
  };
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
  cause?: unknown;
}

const NOT_JSON = () =>
  DomainError.invalid('Invalid body: must be well-formed JSON.', [
    { field: 'body', detail: 'must be well-formed JSON' },
  ]);
const TOO_LARGE = () =>
  new DomainError('payload_too_large', 'Request body is too large: it must be at most 1 MiB.');
const NOT_JSON_MEDIA = () =>
  new DomainError('unsupported_media_type', 'Unsupported media type: the body must be application/json.');

/**
 * Errors raised by Fastify before a route runs (body parsing, size, media type) and by Nest's
 * own routing, turned into domain errors with messages of our own (theirs may echo input);
 * anything else is internal (500, no details). Nest hands Fastify's errors over wrapped in an
 * HttpException whose `cause` is the original.
 */
export function toDomainError(err: unknown): DomainError {
  if (err instanceof DomainError) return err;
  const outer = (err ?? {}) as FastifyLikeError & { getStatus?: () => number };
  const e = (outer.cause && typeof outer.cause === 'object' ? outer.cause : outer) as FastifyLikeError;
  switch (e.code ?? outer.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return TOO_LARGE();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return NOT_JSON_MEDIA();
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return DomainError.invalid('Invalid body: must be a JSON object, not empty.', [
        { field: 'body', detail: 'must be a JSON object' },
      ]);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return DomainError.invalid('Invalid content-length: must match the length of the body.', [
        { field: 'content-length', detail: 'must match the length of the body' },
      ]);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return NOT_JSON();
  }
  if (err instanceof SyntaxError || e instanceof SyntaxError) return NOT_JSON();
  if (typeof outer.getStatus === 'function') {
    const status = outer.getStatus();
    if (status === 404) return new DomainError('not_found', 'Not found: no route has this path.');
    if (status === 413) return TOO_LARGE();
    if (status === 415) return NOT_JSON_MEDIA();
    // Fastify's body parser errors reach here wrapped; they concern the body as a whole.
    if (status === 400)
      return /JSON/i.test(outer.message ?? '') ? NOT_JSON() : DomainError.invalid('Invalid request.');
    if (status === 401) return new DomainError('unauthenticated', 'Authentication required.');
    if (status === 403) return new DomainError('forbidden', 'Forbidden.');
  }
  const code = typeof e.statusCode === 'number' ? e.statusCode : outer.statusCode;
  if (typeof code === 'number' && code >= 400 && code < 500) return DomainError.invalid('Invalid request.');
  return new DomainError('internal', 'Internal error.');
}
