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
}

/**
 * Errors raised by Fastify before a route runs (body parsing, size, media type) and by Nest's
 * own routing, turned into domain errors; anything else is internal (500, no details).
 */
export function toDomainError(err: unknown): DomainError {
  if (err instanceof DomainError) return err;
  const e = (err ?? {}) as FastifyLikeError & { getStatus?: () => number; getResponse?: () => unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new DomainError('payload_too_large', 'Request body is larger than 1 MiB.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new DomainError('unsupported_media_type', 'Request body must be application/json.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return DomainError.invalid('Request body is empty.', [
        { field: 'body', detail: 'must be a JSON object' },
      ]);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return DomainError.invalid('Invalid Content-Length.', [
        { field: 'body', detail: 'content-length does not match' },
      ]);
  }
  if (err instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return DomainError.invalid('Request body is not valid JSON.', [
      { field: 'body', detail: e.message ?? 'malformed JSON' },
    ]);
  }
  if (typeof e.getStatus === 'function') {
    const status = e.getStatus();
    if (status === 404) return new DomainError('not_found', 'Route not found.');
    if (status === 405) return new DomainError('not_found', 'Route not found.');
    if (status === 413) return new DomainError('payload_too_large', 'Request body is larger than 1 MiB.');
    if (status === 415)
      return new DomainError('unsupported_media_type', 'Request body must be application/json.');
    if (status === 400) {
      const message = e.message ?? 'Bad request.';
      // Fastify's body parser errors reach here wrapped; they concern the body as a whole.
      return /JSON/i.test(message)
        ? DomainError.invalid('Request body is not valid JSON.', [{ field: 'body', detail: message }])
        : DomainError.invalid(message);
    }
    if (status === 401) return new DomainError('unauthenticated', 'Unauthorized.');
    if (status === 403) return new DomainError('forbidden', e.message ?? 'Forbidden.');
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return DomainError.invalid(e.message ?? 'Bad request.');
  }
  return new DomainError('internal', 'Internal error.');
}
