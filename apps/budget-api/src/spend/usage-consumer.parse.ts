import { BUDGET_SUBJECTS, UsageRecord, parseJsonPayload, validateStrict } from '@aigov/contracts';

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
 */
export function parseUsageMessage(payload: Uint8Array): UsageParseResult {
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
