import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** The correlation id of the HTTP request or NATS message being handled, for every log line. */
export interface CorrelationContext {
  requestId: string;
}

export const correlation = new AsyncLocalStorage<CorrelationContext>();

export const REQUEST_ID_HEADER = 'x-request-id';
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** The caller's id when it has the allowed shape, otherwise a fresh one. */
export function acceptOrGenerateRequestId(candidate: unknown): string {
  if (typeof candidate === 'string' && REQUEST_ID_PATTERN.test(candidate)) return candidate;
  return randomUUID();
}

export function currentRequestId(): string | undefined {
  return correlation.getStore()?.requestId;
}

export function withCorrelation<T>(requestId: string, fn: () => T): T {
  return correlation.run({ requestId }, fn);
}
