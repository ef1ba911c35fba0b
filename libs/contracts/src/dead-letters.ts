/**
 * Dead letters (docs/nats.md): what a consumer publishes to `aigov.dlq.<source>` for a message it
 * will never apply. The original message travels inline when it was JSON, else as base64 in `raw`,
 * so that `npm run events:dlq -- replay` can publish it again unchanged in meaning.
 */
export interface DeadLetter {
  /** Why: a parse reason (`invalid_data`...), or the applier's reason. */
  reason: string;
  /** Field-named problems, or the applier's explanation. */
  errors: string[];
  /** The subject the original message was published on. */
  subject: string;
  /** Its sequence in its stream. */
  stream_seq: number;
  /** How many times it had been delivered. */
  deliveries: number;
  /** The original message, when it was JSON. */
  event?: unknown;
  /** The original message as base64, when it was not JSON. */
  raw?: string;
}

/** Headers of a dead letter, for tools that filter without parsing the body. */
export const DEAD_LETTER_HEADERS = {
  /** Why it was dead-lettered, as a closed set: `invalid_json`, ..., `retries_exhausted`, `rejected`. */
  cause: 'Aigov-Dlq-Cause',
  subject: 'Aigov-Dlq-Subject',
  streamSeq: 'Aigov-Dlq-Stream-Seq',
} as const;

export function deadLetterOf(input: {
  reason: string;
  errors: string[];
  subject: string;
  streamSeq: number;
  deliveries: number;
  /** The parsed message, or undefined when it was not JSON. */
  json: unknown;
  payload: Uint8Array;
}): DeadLetter {
  const letter: DeadLetter = {
    reason: input.reason,
    errors: input.errors,
    subject: input.subject,
    stream_seq: input.streamSeq,
    deliveries: input.deliveries,
  };
  if (input.json !== undefined) letter.event = input.json;
  else letter.raw = Buffer.from(input.payload).toString('base64');
  return letter;
}

/** A dead letter read back from the DLQ stream, or null when the body is not one. */
export function parseDeadLetter(data: Uint8Array): DeadLetter | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.subject !== 'string' || typeof v.reason !== 'string') return null;
  if (v.event === undefined && typeof v.raw !== 'string') return null;
  return {
    reason: v.reason,
    errors: Array.isArray(v.errors) ? v.errors.map(String) : [],
    subject: v.subject,
    stream_seq: typeof v.stream_seq === 'number' ? v.stream_seq : 0,
    deliveries: typeof v.deliveries === 'number' ? v.deliveries : 0,
    ...(v.event !== undefined ? { event: v.event } : { raw: v.raw as string }),
  };
}

/** The original message's bytes, as they are to be published again. */
export function originalPayload(letter: DeadLetter): Uint8Array {
  if (letter.event !== undefined) return Buffer.from(JSON.stringify(letter.event));
  return Buffer.from(letter.raw ?? '', 'base64');
}
