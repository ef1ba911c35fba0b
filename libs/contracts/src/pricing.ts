/** `pricing.sync` request and reply data, `pricing.updated` event data (docs/nats.md). */
export const PRICE_SYNC_SOURCES = ['embedded', 'upstream'] as const;
export type PriceSyncSource = (typeof PRICE_SYNC_SOURCES)[number];

export interface PriceSyncRequest {
  source: PriceSyncSource;
}

export interface PriceSyncResult {
  source: PriceSyncSource;
  total: number;
  inserted: number;
  updated: number;
  unchanged: number;
  duration_ms: number;
}

export interface PricingUpdatedEvent {
  source: PriceSyncSource;
  inserted: number;
  updated: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** Strict: an object with exactly one key, `source`, naming a known source. */
export function parsePriceSyncRequest(payload: unknown): ParseResult<PriceSyncRequest> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return { ok: false, message: 'request must be a JSON object like {"source": "embedded"}' };
  }
  const unknown = Object.keys(payload).filter((k) => k !== 'source');
  if (unknown.length > 0) return { ok: false, message: `unknown field "${unknown[0]}"` };
  const source = (payload as Record<string, unknown>).source;
  if (typeof source !== 'string' || !(PRICE_SYNC_SOURCES as readonly string[]).includes(source)) {
    return { ok: false, message: `source: must be one of ${PRICE_SYNC_SOURCES.join(', ')}` };
  }
  return { ok: true, value: { source: source as PriceSyncSource } };
}
