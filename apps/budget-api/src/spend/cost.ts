import type { PriceTierRow } from '@aigov/db';
import { validationFailed, type FieldValidation } from '@aigov/errors';

// The cost of a usage record (CONTRACT 7). Pure and exact: every amount is a BigInt, so a
// 10^12-token request at USD 10,000 per million (10^22 micro-micros) is still exact.

/** A tier as stored in `ai_model_prices.tiers` (jsonb): prices are JSON numbers. */
export type PriceTier = PriceTierRow;

/** The price row a lookup found (custom preferred over default, CONTRACT 1.2). */
export interface PriceForCost {
  source: 'default' | 'custom';
  inputPrice: bigint | null;
  outputPrice: bigint | null;
  cacheReadPrice: bigint | null;
  cacheWritePrice: bigint | null;
  tiers: PriceTier[] | null;
}

export interface TokenCounts {
  input: bigint;
  output: bigint;
  cacheRead: bigint;
  cacheWrite: bigint;
}

/** The prices a record was costed with, kept in the ledger for re-rating (CONTRACT 7.1). */
export interface PricesUsed {
  input: bigint | null;
  output: bigint | null;
  cacheRead: bigint | null;
  cacheWrite: bigint | null;
}

export interface CostResult {
  /** null = unpriced (no row, or no price for any dimension). */
  costMicros: bigint | null;
  /**
   * The source of the row found, null only when there is no row. A row whose prices are all null
   * still reports its source: costMicros null already says "unpriced", and knowing that a custom
   * row (which hides the default one entirely) is the reason is what an operator needs.
   */
  priceSource: 'default' | 'custom' | null;
  prices: PricesUsed;
  /** The tier applied, null when the base prices applied. */
  tierMinContextTokens: number | null;
}

/** Token counts above this are rejected (CONTRACT 7). */
export const MAX_TOKENS = 10n ** 12n;

/** Prices are per million tokens. */
const PER = 1_000_000n;

const NO_PRICES: PricesUsed = { input: null, output: null, cacheRead: null, cacheWrite: null };

/**
 * cost_micros = ceil(sum(tokens * price) / 10^6), rounded up once per record (never per
 * dimension), so a sub-micro request still costs 1 micro and nothing is summed as a fraction.
 *
 * Unpriced when there is no row, or when all four prices actually used are null. "Used" means
 * after tier selection: a row with no base prices but a tier that applies is priced for that
 * request, since charging a known price beats recording the usage as free. Otherwise a null
 * price counts 0.
 */
export function costOf(price: PriceForCost | null, tokens: TokenCounts): CostResult {
  assertTokens(tokens);
  if (price === null) {
    return { costMicros: null, priceSource: null, prices: NO_PRICES, tierMinContextTokens: null };
  }
  const context = tokens.input + tokens.cacheRead + tokens.cacheWrite;
  const tier = tierFor(price.tiers, context);
  const prices = tier === null ? basePrices(price) : tierPrices(price, tier);
  const tierMinContextTokens = tier === null ? null : tier.min_context_tokens;
  if (
    prices.input === null &&
    prices.output === null &&
    prices.cacheRead === null &&
    prices.cacheWrite === null
  ) {
    return { costMicros: null, priceSource: price.source, prices, tierMinContextTokens };
  }
  const micro =
    tokens.input * (prices.input ?? 0n) +
    tokens.output * (prices.output ?? 0n) +
    tokens.cacheRead * (prices.cacheRead ?? 0n) +
    tokens.cacheWrite * (prices.cacheWrite ?? 0n);
  // Ceiling of a non-negative quotient; BigInt division truncates.
  const costMicros = (micro + PER - 1n) / PER;
  return { costMicros, priceSource: price.source, prices, tierMinContextTokens };
}

/**
 * The most a request with these limits can cost, for the token form of a reservation.
 *
 * The gateway does not know beforehand how the prompt will split into uncached, cache-read and
 * cache-write tokens, so all maxInputTokens go to the dearest of those three prices (e.g.
 * Anthropic's cache write at 1.25x input). The tier is the one maxInputTokens selects, which is
 * the tier of any request that fills the limit. The result is exactly costOf of that worst-case
 * record, so its `prices` reproduce its cost.
 */
export function reservationCost(
  price: PriceForCost | null,
  maxInputTokens: bigint,
  maxOutputTokens: bigint,
): CostResult {
  const zero = { input: 0n, output: maxOutputTokens, cacheRead: 0n, cacheWrite: 0n };
  if (price === null) return costOf(null, { ...zero, input: maxInputTokens });
  const p = tierFor(price.tiers, maxInputTokens);
  const used = p === null ? basePrices(price) : tierPrices(price, p);
  const input = used.input ?? 0n;
  const cacheRead = used.cacheRead ?? 0n;
  const cacheWrite = used.cacheWrite ?? 0n;
  // Ties go to `input`, the plain case.
  const tokens =
    cacheWrite > input && cacheWrite >= cacheRead
      ? { ...zero, cacheWrite: maxInputTokens }
      : cacheRead > input
        ? { ...zero, cacheRead: maxInputTokens }
        : { ...zero, input: maxInputTokens };
  return costOf(price, tokens);
}

function assertTokens(t: TokenCounts): void {
  const bad: FieldValidation[] = [];
  const check = (field: string, v: bigint) => {
    if (v < 0n || v > MAX_TOKENS) {
      bad.push({ field, detail: `must be an integer between 0 and ${MAX_TOKENS}` });
    }
  };
  check('input_tokens', t.input);
  check('output_tokens', t.output);
  check('cache_read_tokens', t.cacheRead);
  check('cache_write_tokens', t.cacheWrite);
  if (bad.length > 0) throw validationFailed(bad);
}

function basePrices(p: PriceForCost): PricesUsed {
  return {
    input: p.inputPrice,
    output: p.outputPrice,
    cacheRead: p.cacheReadPrice,
    cacheWrite: p.cacheWritePrice,
  };
}

/** A tier's prices, each null falling back to the base price (which may be null too). */
function tierPrices(p: PriceForCost, t: PriceTier): PricesUsed {
  return {
    input: bigPrice(t.input_price) ?? p.inputPrice,
    output: bigPrice(t.output_price) ?? p.outputPrice,
    cacheRead: bigPrice(t.cache_read_price) ?? p.cacheReadPrice,
    cacheWrite: bigPrice(t.cache_write_price) ?? p.cacheWritePrice,
  };
}

/**
 * The tier with the highest min_context_tokens that `context` strictly exceeds, or null. Tiers
 * are not assumed sorted. A malformed tier (a threshold or a price that is not a non-negative
 * safe integer) is skipped as a whole: the seed generator and the API only store integers, so
 * this only guards against a hand-edited row, and BigInt() of a fraction would throw.
 */
function tierFor(tiers: PriceTier[] | null, context: bigint): PriceTier | null {
  let best: PriceTier | null = null;
  for (const t of tiers ?? []) {
    if (!isWellFormed(t)) continue;
    if (context > BigInt(t.min_context_tokens)) {
      if (best === null || t.min_context_tokens > best.min_context_tokens) best = t;
    }
  }
  return best;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function isWellFormed(t: PriceTier): boolean {
  return (
    isCount(t.min_context_tokens) &&
    [t.input_price, t.output_price, t.cache_read_price, t.cache_write_price].every(
      (v) => v == null || isCount(v),
    )
  );
}

// Only called on well-formed tiers, so BigInt() cannot throw here. A key missing from the jsonb
// reads as null, like a missing price in the seed (CONTRACT 5).
const bigPrice = (v: number | null | undefined): bigint | null => (v == null ? null : BigInt(v));
