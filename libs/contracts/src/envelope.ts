/** Reply envelope of every NATS request-reply subject. */
export type ReplyEnvelope<T> =
  { ok: true; data: T } | { ok: false; error: { code: string; message: string } };

export function okReply<T>(data: T): ReplyEnvelope<T> {
  return { ok: true, data };
}

export function errorReply(code: string, message: string): ReplyEnvelope<never> {
  return { ok: false, error: { code, message } };
}
