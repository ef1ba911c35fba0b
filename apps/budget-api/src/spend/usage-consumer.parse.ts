import { isISO8601, isUUID } from 'class-validator';
import {
  BUDGET_SUBJECTS,
  MAX_TOKEN_COUNT,
  UsageRecord,
  parseJsonPayload,
  validateStrict,
} from '@aigov/contracts';

/** Why a usage message was dead-lettered: a metric label and the dead letter's cause header. */
export type UsageDeadLetterCause = 'invalid_json' | 'invalid_data' | 'rejected' | 'unacknowledged';

export type UsageParseResult =
  | { ok: true; record: UsageRecord }
  | { ok: false; cause: 'invalid_json' | 'invalid_data'; errors: string[]; json: unknown };

/**
 * A message of `aigov.usage.recorded`: the usage record itself as plain JSON (docs/nats.md), or,
 * for publishers that wrap every event, a CloudEvent whose `data` is the record (recognised by its
 * `specversion`; its `id` is not used: `request_id` is the idempotency key either way). Strictly
 * validated: unknown fields, wrong types and out-of-range values are refused with their field named.
 *
 * The UsageRecord DTO (class-validator) is the definition. A record that passes the quick check
 * below is one the DTO accepts, as the DTO would return it; anything else, bad records included,
 * goes through the full strict validation, which decides and words the errors.
 */
export function parseUsageMessage(payload: Uint8Array): UsageParseResult {
  return parseWith(payload, true);
}

/** parseUsageMessage without the quick check: the DTO's strict validation for every record. */
export function parseUsageMessageStrictly(payload: Uint8Array): UsageParseResult {
  return parseWith(payload, false);
}

function parseWith(payload: Uint8Array, quick: boolean): UsageParseResult {
  const parsed = parseJsonPayload(payload);
  if (!parsed.ok) return { ok: false, cause: 'invalid_json', errors: parsed.errors, json: undefined };
  const { json } = parsed;
  let body = json;
  let root = '';
  if (json !== null && typeof json === 'object' && !Array.isArray(json) && 'specversion' in json) {
    const envelope = json as Record<string, unknown>;
    const errors: string[] = [];
    if (envelope.specversion !== '1.0') errors.push('specversion: must be "1.0"');
    if (envelope.type !== undefined && envelope.type !== BUDGET_SUBJECTS.usageRecorded) {
      errors.push(`type: must be "${BUDGET_SUBJECTS.usageRecorded}" when present`);
    }
    if (errors.length > 0) return { ok: false, cause: 'invalid_data', errors, json };
    body = envelope.data;
    root = 'data';
  }
  if (quick) {
    const record = quickUsageRecord(body);
    if (record) return { ok: true, record };
  }
  const result = validateStrict(UsageRecord, body, root);
  if (!result.ok) {
    return {
      ok: false,
      cause: 'invalid_data',
      errors: result.problems.map((p) => `${p.field}: ${p.detail}`),
      json,
    };
  }
  return { ok: true, record: result.value };
}

/** The fields the quick check knows: a test compares them with the DTO's rules. */
export const QUICK_CHECKED_FIELDS = [
  'request_id',
  'user_id',
  'provider',
  'model',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'occurred_at',
  'reservation_id',
] as const;

const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ISO8601 = { strict: true, strictSeparator: true };

/**
 * The record as validateStrict(UsageRecord) returns it, when `body` is a well-formed record whose
 * strings are printable ASCII (so that NFC, the NUL and surrogate checks and the control and
 * space rules have nothing to do or reduce to a character range); null for anything else, which
 * is not a verdict: the full validation decides. It must never accept what the DTO refuses
 * (usage-consumer.parse.spec.ts compares the two on valid, hostile and random records).
 */
export function quickUsageRecord(body: unknown): UsageRecord | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null;
  const o = body as Record<string, unknown>;
  let required = 0;
  for (const key of Object.keys(o)) {
    const v = o[key];
    switch (key) {
      case 'request_id':
      case 'model':
        if (!isIdentifier(v)) return null;
        required++;
        break;
      case 'user_id':
        if (!isPrintableAscii(v) || !isUUID(v, 'all')) return null;
        required++;
        break;
      case 'provider':
        if (typeof v !== 'string' || !PROVIDER.test(v)) return null;
        required++;
        break;
      case 'input_tokens':
      case 'output_tokens':
        if (!isTokenCount(v)) return null;
        required++;
        break;
      case 'cache_read_tokens':
      case 'cache_write_tokens':
        if (!isTokenCount(v)) return null;
        break;
      case 'occurred_at':
        if (!isPrintableAscii(v) || !isISO8601(v, ISO8601)) return null;
        break;
      case 'reservation_id':
        if (!isPrintableAscii(v) || !isUUID(v, 'all')) return null;
        break;
      default:
        return null;
    }
  }
  if (required !== 6) return null;
  return Object.assign(Object.create(UsageRecord.prototype) as UsageRecord, o);
}

/** IsInt, Min(0), Max(MAX_TOKEN_COUNT) as class-validator applies them. */
function isTokenCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_COUNT;
}

/** The request id and model rule, for printable ASCII: 1 to 255 characters, no space at either end. */
function isIdentifier(v: unknown): boolean {
  return (
    isPrintableAscii(v) &&
    v.length >= 1 &&
    v.length <= 255 &&
    v.charCodeAt(0) !== 0x20 &&
    v.charCodeAt(v.length - 1) !== 0x20
  );
}

/** Only U+0020..U+007E: NFC leaves it alone, and it holds no control, format or surrogate. */
function isPrintableAscii(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
