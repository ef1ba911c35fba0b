// Errors from Node core can come from another realm (Jest's vm sandbox, worker threads), where
// `instanceof Error` is false; these helpers look at the shape instead.

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
}

function asErrorLike(err: unknown): ErrorLike | null {
  return typeof err === 'object' && err !== null ? err : null;
}

export function errorMessage(err: unknown): string {
  const e = asErrorLike(err);
  return e !== null && typeof e.message === 'string' ? e.message : String(err);
}

export function errorName(err: unknown): string | undefined {
  const name = asErrorLike(err)?.name;
  return typeof name === 'string' ? name : undefined;
}

export function errorCode(err: unknown): string | undefined {
  const code = asErrorLike(err)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorCause(err: unknown): unknown {
  return asErrorLike(err)?.cause;
}
