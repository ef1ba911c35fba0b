// Turns the models.dev catalogue into the committed price seed (README: the price book seed).
// Pure logic: no I/O, so the same input always gives byte-identical output.

export interface SeedTier {
  min_context_tokens: number;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
}

export interface SeedRow {
  provider: string;
  model: string;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
  tiers: SeedTier[] | null;
}

export class SeedValidationError extends Error {
  constructor(message: string) {
    super(`price seed: ${message}`);
    this.name = 'SeedValidationError';
  }
}

/** USD 10,000 per million tokens: anything above is a data error upstream, not a real price. */
export const MAX_PRICE_MICROS = 10_000_000_000n;

const MICROS_DIGITS = 6;

/**
 * Exact micros for a USD-per-million price, as a BigInt, rounded half away from zero.
 * Works on the shortest decimal form JS prints for the number, so 4.1 is read as "4.1"
 * and not as the binary double just below it (which would truncate to 4099999).
 */
function toMicrosExact(value: number): bigint {
  if (!Number.isFinite(value)) throw new RangeError(`price must be a finite number, got ${String(value)}`);
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(value));
  if (match === null) throw new RangeError(`cannot read ${String(value)} as a decimal number`);
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  const digits = BigInt(whole + fraction);
  // digits * 10^scale is the value in micros.
  const scale = Number(exponent) - fraction.length + MICROS_DIGITS;
  let micros: bigint;
  if (scale >= 0) {
    micros = digits * 10n ** BigInt(scale);
  } else {
    const divisor = 10n ** BigInt(-scale);
    micros = digits / divisor;
    if ((digits % divisor) * 2n >= divisor) micros += 1n;
  }
  return sign === '-' ? -micros : micros;
}

/**
 * USD per 1M tokens -> integer micro-USD per 1M tokens, rounded to nearest (half away from zero).
 * Results beyond Number.MAX_SAFE_INTEGER come back as the nearest double; the seed rejects
 * such prices long before that.
 */
export function usdPerMillionToMicros(value: number): number {
  const micros = toMicrosExact(value);
  // Avoids handing out -0 for tiny negative inputs.
  return micros === 0n ? 0 : Number(micros);
}

const PRICE_KEYS = [
  ['input', 'input_price'],
  ['output', 'output_price'],
  ['cache_read', 'cache_read_price'],
  ['cache_write', 'cache_write_price'],
] as const;

type PriceField = (typeof PRICE_KEYS)[number][1];
type Prices = Record<PriceField, number | null>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Own properties only: a JSON key such as "__proto__" must not reach Object.prototype.
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value === 'number' ? String(value) : `a ${typeof value}`;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

type Warn = (msg: string) => void;

function convertPrice(raw: unknown, where: string, warn: Warn): number | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'number' || Number.isNaN(raw)) {
    warn(`${where}: ignoring non-numeric price ${show(raw)}`);
    return null;
  }
  if (raw < 0) {
    warn(`${where}: ignoring negative price ${String(raw)}`);
    return null;
  }
  const micros = Number.isFinite(raw) ? toMicrosExact(raw) : MAX_PRICE_MICROS + 1n;
  if (micros > MAX_PRICE_MICROS) {
    throw new SeedValidationError(
      `${where} is ${String(raw)} USD per million tokens, above the USD 10,000 limit`,
    );
  }
  return Number(micros);
}

function convertPrices(cost: Record<string, unknown>, where: string, warn: Warn): Prices {
  const prices: Prices = {
    input_price: null,
    output_price: null,
    cache_read_price: null,
    cache_write_price: null,
  };
  for (const [key, field] of PRICE_KEYS)
    prices[field] = convertPrice(own(cost, key), `${where}.${key}`, warn);
  return prices;
}

function hasAnyPrice(prices: Prices): boolean {
  return PRICE_KEYS.some(([, field]) => prices[field] !== null);
}

function convertTiers(raw: unknown, where: string, warn: Warn): SeedTier[] | null {
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw)) {
    warn(`${where}: ignoring tiers that are ${show(raw)}, not an array`);
    return null;
  }
  const tiers: SeedTier[] = [];
  raw.forEach((entry: unknown, index) => {
    const at = `${where}[${index}]`;
    if (!isRecord(entry)) {
      warn(`${at}: dropping tier that is ${show(entry)}, not an object`);
      return;
    }
    const tier = own(entry, 'tier');
    const type = isRecord(tier) ? own(tier, 'type') : undefined;
    // Only context-size tiers map onto min_context_tokens; another kind would be misread.
    if (type !== undefined && type !== 'context') {
      warn(`${at}: dropping tier of unsupported type ${show(type)}`);
      return;
    }
    const size = isRecord(tier) ? own(tier, 'size') : undefined;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      warn(`${at}: dropping tier whose tier.size is ${show(size)}, not a non-negative integer`);
      return;
    }
    if (tiers.some((t) => t.min_context_tokens === size)) {
      warn(`${at}: dropping second tier for context size ${size}`);
      return;
    }
    tiers.push({ min_context_tokens: size, ...convertPrices(entry, at, warn) });
  });
  tiers.sort((a, b) => a.min_context_tokens - b.min_context_tokens);
  return tiers.length > 0 ? tiers : null;
}

/**
 * Builds the seed rows for the configured providers. Throws SeedValidationError when the
 * catalogue has the wrong shape, a provider is missing, a price is above USD 10,000 per
 * million, or nothing is priced; tolerable oddities (negative or non-numeric prices, bad
 * tiers) become null with a call to warn.
 */
export function buildSeed(catalogue: unknown, providers: string[], warn: Warn = () => undefined): SeedRow[] {
  if (!isRecord(catalogue)) {
    throw new SeedValidationError(`the catalogue must be an object of providers, got ${show(catalogue)}`);
  }
  if (providers.length === 0) throw new SeedValidationError('no providers are configured');
  const rows: SeedRow[] = [];
  for (const provider of [...new Set(providers)]) {
    const entry = own(catalogue, provider);
    if (entry === undefined) throw new SeedValidationError(`provider "${provider}" is not in the catalogue`);
    const models = isRecord(entry) ? own(entry, 'models') : undefined;
    if (!isRecord(models)) {
      throw new SeedValidationError(`"${provider}".models must be an object of models, got ${show(models)}`);
    }
    for (const [model, spec] of Object.entries(models)) {
      const where = `${provider}/${model}`;
      if (!isRecord(spec)) {
        throw new SeedValidationError(`"${provider}".models."${model}" must be an object, got ${show(spec)}`);
      }
      const cost = own(spec, 'cost');
      if (cost === undefined || cost === null) continue;
      if (!isRecord(cost)) {
        warn(`${where}: ignoring cost that is ${show(cost)}, not an object`);
        continue;
      }
      const prices = convertPrices(cost, `${where} cost`, warn);
      const tiers = convertTiers(own(cost, 'tiers'), `${where} cost.tiers`, warn);
      // Tiers only refine base prices; a model without any base price stays unpriced.
      if (!hasAnyPrice(prices)) continue;
      rows.push({ provider, model, ...prices, tiers });
    }
  }
  if (rows.length === 0) {
    throw new SeedValidationError(`no priced models for providers ${providers.join(', ')}`);
  }
  rows.sort((a, b) => byCodeUnits(a.provider, b.provider) || byCodeUnits(a.model, b.model));
  return rows;
}

/** The seed file's exact bytes: fixed key order, 2-space indent, trailing newline. */
export function formatSeed(rows: SeedRow[]): string {
  const ordered = rows.map((row) => ({
    provider: row.provider,
    model: row.model,
    input_price: row.input_price,
    output_price: row.output_price,
    cache_read_price: row.cache_read_price,
    cache_write_price: row.cache_write_price,
    tiers:
      row.tiers === null
        ? null
        : row.tiers.map((tier) => ({
            min_context_tokens: tier.min_context_tokens,
            input_price: tier.input_price,
            output_price: tier.output_price,
            cache_read_price: tier.cache_read_price,
            cache_write_price: tier.cache_write_price,
          })),
  }));
  return JSON.stringify(ordered, null, 2) + '\n';
}
