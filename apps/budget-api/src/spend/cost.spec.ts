import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DomainError } from '@aigov/errors';
import { costOf, MAX_TOKENS, reservationCost, type PriceForCost, type TokenCounts } from './cost';

// Golden cases against the committed seed (read in place, never copied), computed by hand in the
// comments. Prices are micros per million tokens, so tokens * price / 10^6 is micros.

interface SeedRow {
  provider: string;
  model: string;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
  tiers: PriceForCost['tiers'];
}

const SEED = path.resolve(__dirname, '../../../..', 'apps/pricing-worker/seed/prices.json');
const seed = JSON.parse(readFileSync(SEED, 'utf8')) as SeedRow[];

const big = (v: number | null): bigint | null => (v === null ? null : BigInt(v));

/** The seed row as the price lookup returns it (a `default` row). */
function seedPrice(provider: string, model: string): PriceForCost {
  const r = seed.find((s) => s.provider === provider && s.model === model);
  if (!r) throw new Error(`${provider}/${model} is not in the seed`);
  return {
    source: 'default',
    inputPrice: big(r.input_price),
    outputPrice: big(r.output_price),
    cacheReadPrice: big(r.cache_read_price),
    cacheWritePrice: big(r.cache_write_price),
    tiers: r.tiers,
  };
}

const tokens = (t: Partial<TokenCounts>): TokenCounts => ({
  input: 0n,
  output: 0n,
  cacheRead: 0n,
  cacheWrite: 0n,
  ...t,
});

describe('costOf', () => {
  it('prices all four dimensions of an Anthropic model and rounds the sum up once', () => {
    const p = seedPrice('anthropic', 'claude-sonnet-4-5');
    // The seed as of this test: USD 3 / 15 / 0.30 / 3.75 per million.
    expect([p.inputPrice, p.outputPrice, p.cacheReadPrice, p.cacheWritePrice]).toEqual([
      3_000_000n,
      15_000_000n,
      300_000n,
      3_750_000n,
    ]);
    //   1,000 * 3,000,000  =  3,000,000,000
    //     500 * 15,000,000 =  7,500,000,000
    //  20,001 * 300,000    =  6,000,300,000
    //   4,000 * 3,750,000  = 15,000,000,000
    //                   sum = 31,500,300,000 -> / 10^6 = 31,500.3 -> 31,501
    const r = costOf(p, tokens({ input: 1000n, output: 500n, cacheRead: 20_001n, cacheWrite: 4000n }));
    expect(r).toEqual({
      costMicros: 31_501n,
      priceSource: 'default',
      prices: { input: 3_000_000n, output: 15_000_000n, cacheRead: 300_000n, cacheWrite: 3_750_000n },
      tierMinContextTokens: null,
    });
  });

  it('counts a null price as 0 and reports it as null (gpt-3.5-turbo has no cache write price)', () => {
    const p = seedPrice('openai', 'gpt-3.5-turbo');
    expect([p.inputPrice, p.outputPrice, p.cacheReadPrice, p.cacheWritePrice]).toEqual([
      500_000n,
      1_500_000n,
      0n,
      null,
    ]);
    // 1,200 * 500,000 = 600,000,000; 300 * 1,500,000 = 450,000,000; 800 * 0 (free) = 0;
    // 1,000 cache writes * null (counts 0) = 0.  Sum 1,050,000,000 -> 1,050.
    const r = costOf(p, tokens({ input: 1200n, output: 300n, cacheRead: 800n, cacheWrite: 1000n }));
    expect(r.costMicros).toBe(1050n);
    expect(r.prices).toEqual({ input: 500_000n, output: 1_500_000n, cacheRead: 0n, cacheWrite: null });
  });

  describe('tiers (gpt-5.4: base 2.50 / 15 / 0.25 / null, tier above 272,000: 5 / 22.50 / 0.50 / null)', () => {
    const p = seedPrice('openai', 'gpt-5.4');

    it('the seed has that tier', () => {
      expect(p.tiers).toEqual([
        {
          min_context_tokens: 272_000,
          input_price: 5_000_000,
          output_price: 22_500_000,
          cache_read_price: 500_000,
          cache_write_price: null,
        },
      ]);
    });

    it('a context of exactly 272,000 stays on the base prices', () => {
      // 200,000 * 2,500,000 = 500,000,000,000; 72,000 * 250,000 = 18,000,000,000;
      // 1,000 * 15,000,000 = 15,000,000,000.  Sum 533,000,000,000 -> 533,000.
      const r = costOf(p, tokens({ input: 200_000n, cacheRead: 72_000n, output: 1000n }));
      expect(r.costMicros).toBe(533_000n);
      expect(r.tierMinContextTokens).toBeNull();
      expect(r.prices.input).toBe(2_500_000n);
    });

    it('272,001 switches the whole request to the tier', () => {
      // 200,001 * 5,000,000 = 1,000,005,000,000; 72,000 * 500,000 = 36,000,000,000;
      // 1,000 * 22,500,000 = 22,500,000,000.  Sum 1,058,505,000,000 -> 1,058,505.
      const r = costOf(p, tokens({ input: 200_001n, cacheRead: 72_000n, output: 1000n }));
      expect(r).toEqual({
        costMicros: 1_058_505n,
        priceSource: 'default',
        // cache_write is null in the tier and in the base: null stays null.
        prices: { input: 5_000_000n, output: 22_500_000n, cacheRead: 500_000n, cacheWrite: null },
        tierMinContextTokens: 272_000,
      });
    });

    it('cache writes count toward the context, output tokens do not', () => {
      // 271,000 + 1,001 cache writes = 272,001 > 272,000: tier. 271,000 * 5,000,000 =
      // 1,355,000,000,000 -> 1,355,000 (cache write price null counts 0).
      const w = costOf(p, tokens({ input: 271_000n, cacheWrite: 1001n }));
      expect(w.tierMinContextTokens).toBe(272_000);
      expect(w.costMicros).toBe(1_355_000n);
      // 1,000 * 2,500,000 + 1,000,000 * 15,000,000 = 15,002,500,000,000 -> 15,002,500 (base).
      const o = costOf(p, tokens({ input: 1000n, output: 1_000_000n }));
      expect(o.tierMinContextTokens).toBeNull();
      expect(o.costMicros).toBe(15_002_500n);
    });
  });

  it('a null tier price falls back to the base price; the highest exceeded tier wins, in any order', () => {
    const p: PriceForCost = {
      source: 'custom',
      inputPrice: 1_000_000n,
      outputPrice: 2_000_000n,
      cacheReadPrice: 100_000n,
      cacheWritePrice: 1_250_000n,
      tiers: [
        // Deliberately not sorted.
        {
          min_context_tokens: 1000,
          input_price: 2_000_000,
          output_price: null,
          cache_read_price: null,
          cache_write_price: 2_500_000,
        },
        {
          min_context_tokens: 100,
          input_price: 1_500_000,
          output_price: 3_000_000,
          cache_read_price: 150_000,
          cache_write_price: null,
        },
      ],
    };
    // Context 1,000 + 300 + 200 = 1,500 exceeds both: tier 1000. Output and cache read fall back.
    // 1,000 * 2,000,000 = 2,000,000,000; 100 * 2,000,000 (base) = 200,000,000;
    // 300 * 100,000 (base) = 30,000,000; 200 * 2,500,000 = 500,000,000.  2,730,000,000 -> 2,730.
    const high = costOf(p, tokens({ input: 1000n, output: 100n, cacheRead: 300n, cacheWrite: 200n }));
    expect(high).toEqual({
      costMicros: 2730n,
      priceSource: 'custom',
      prices: { input: 2_000_000n, output: 2_000_000n, cacheRead: 100_000n, cacheWrite: 2_500_000n },
      tierMinContextTokens: 1000,
    });
    // Context 400 + 50 + 50 = 500: tier 100. Cache write falls back to 1,250,000.
    // 400 * 1,500,000 = 600,000,000; 10 * 3,000,000 = 30,000,000; 50 * 150,000 = 7,500,000;
    // 50 * 1,250,000 = 62,500,000.  700,000,000 -> 700.
    const mid = costOf(p, tokens({ input: 400n, output: 10n, cacheRead: 50n, cacheWrite: 50n }));
    expect(mid.costMicros).toBe(700n);
    expect(mid.tierMinContextTokens).toBe(100);
    expect(mid.prices.cacheWrite).toBe(1_250_000n);
    // Exactly 1,000: only tier 100 is exceeded. 1,000 * 1,500,000 -> 1,500.
    expect(costOf(p, tokens({ input: 1000n })).costMicros).toBe(1500n);
  });

  it('a custom price reports source custom', () => {
    const p: PriceForCost = {
      source: 'custom',
      inputPrice: 1_000_000n,
      outputPrice: 2_000_000n,
      cacheReadPrice: null,
      cacheWritePrice: null,
      tiers: null,
    };
    // 10 * 1,000,000 + 5 * 2,000,000 = 20,000,000 -> 20.
    const r = costOf(p, tokens({ input: 10n, output: 5n }));
    expect(r.costMicros).toBe(20n);
    expect(r.priceSource).toBe('custom');
  });

  describe('unpriced', () => {
    it('no price row: cost and source null', () => {
      expect(costOf(null, tokens({ input: 10n }))).toEqual({
        costMicros: null,
        priceSource: null,
        prices: { input: null, output: null, cacheRead: null, cacheWrite: null },
        tierMinContextTokens: null,
      });
    });

    it('a row whose four prices are null: cost null, the row found still named', () => {
      const p: PriceForCost = {
        source: 'custom',
        inputPrice: null,
        outputPrice: null,
        cacheReadPrice: null,
        cacheWritePrice: null,
        tiers: null,
      };
      const r = costOf(p, tokens({ input: 10n, output: 10n }));
      expect(r.costMicros).toBeNull();
      expect(r.priceSource).toBe('custom');
      // Zero tokens do not make it priced either.
      expect(costOf(p, tokens({})).costMicros).toBeNull();
    });

    it('a row with no base prices is priced by a tier that applies', () => {
      const p: PriceForCost = {
        source: 'default',
        inputPrice: null,
        outputPrice: null,
        cacheReadPrice: null,
        cacheWritePrice: null,
        tiers: [
          {
            min_context_tokens: 10,
            input_price: 1_000_000,
            output_price: null,
            cache_read_price: null,
            cache_write_price: null,
          },
        ],
      };
      expect(costOf(p, tokens({ input: 10n })).costMicros).toBeNull();
      // 11 * 1,000,000 -> 11.
      expect(costOf(p, tokens({ input: 11n })).costMicros).toBe(11n);
    });
  });

  describe('rounding', () => {
    const p: PriceForCost = {
      source: 'default',
      inputPrice: 75_000n,
      outputPrice: 25_000n,
      cacheReadPrice: null,
      cacheWritePrice: null,
      tiers: null,
    };

    it('a sub-micro cost rounds up to 1', () => {
      // 1 * 75,000 / 10^6 = 0.075 -> 1.
      expect(costOf(p, tokens({ input: 1n })).costMicros).toBe(1n);
    });

    it('an exact micro is not rounded further', () => {
      // 40 * 25,000 = 1,000,000 -> exactly 1; 41 * 25,000 = 1,025,000 -> 2.
      expect(costOf(p, tokens({ output: 40n })).costMicros).toBe(1n);
      expect(costOf(p, tokens({ output: 41n })).costMicros).toBe(2n);
    });

    it('rounds the record once, not each dimension', () => {
      // 1 * 75,000 + 1 * 25,000 = 100,000 -> 1 (per dimension it would be 2).
      expect(costOf(p, tokens({ input: 1n, output: 1n })).costMicros).toBe(1n);
    });

    it('zero tokens cost 0', () => {
      expect(costOf(p, tokens({})).costMicros).toBe(0n);
      expect(costOf(seedPrice('openai', 'gpt-5.4'), tokens({})).costMicros).toBe(0n);
    });
  });

  describe('exact large values', () => {
    const maxPrice = 10n ** 10n; // USD 10,000 per million, the generator's ceiling.

    it('10^12 tokens in every dimension at USD 10,000 per million', () => {
      const p: PriceForCost = {
        source: 'custom',
        inputPrice: maxPrice,
        outputPrice: maxPrice,
        cacheReadPrice: maxPrice,
        cacheWritePrice: maxPrice,
        tiers: null,
      };
      const t = MAX_TOKENS;
      // 4 * 10^12 * 10^10 / 10^6 = 4 * 10^16, written out independently.
      expect(costOf(p, { input: t, output: t, cacheRead: t, cacheWrite: t }).costMicros?.toString()).toBe(
        '40000000000000000',
      );
    });

    it('a value past 2^53 that floats would get wrong', () => {
      const n = MAX_TOKENS - 1n;
      const price = maxPrice - 1n;
      const p: PriceForCost = {
        source: 'custom',
        inputPrice: price,
        outputPrice: null,
        cacheReadPrice: null,
        cacheWritePrice: null,
        tiers: null,
      };
      // (10^12 - 1)(10^10 - 1) = 10^22 - 10^12 - 10^10 + 1; / 10^6 = 10^16 - 10^6 - 10^4 + 10^-6,
      // rounded up: 10,000,000,000,000,000 - 1,000,000 - 10,000 + 1 = 9,999,999,998,990,001.
      const expected = '9999999998990001';
      expect(costOf(p, tokens({ input: n })).costMicros?.toString()).toBe(expected);
      // Floating point cannot even hold the answer, which is why everything is BigInt.
      expect(Math.ceil((Number(n) * Number(price)) / 1e6).toString()).not.toBe(expected);
    });
  });

  it('accepts 10^12 tokens and rejects more, or a negative count, naming the field', () => {
    const p = seedPrice('openai', 'gpt-3.5-turbo');
    expect(costOf(p, tokens({ output: MAX_TOKENS })).costMicros).toBe(1_500_000_000_000n);
    const err = (t: Partial<TokenCounts>): DomainError => {
      try {
        costOf(p, tokens(t));
      } catch (e) {
        return e as DomainError;
      }
      throw new Error('expected a rejection');
    };
    const over = err({ cacheWrite: MAX_TOKENS + 1n });
    expect(over).toBeInstanceOf(DomainError);
    expect(over.code).toBe('invalid_argument');
    expect(over.validations.map((v) => v.field)).toEqual(['cache_write_tokens']);
    expect(err({ input: -1n }).validations.map((v) => v.field)).toEqual(['input_tokens']);
  });

  it('skips a malformed tier instead of throwing on a fraction', () => {
    const p: PriceForCost = {
      source: 'custom',
      inputPrice: 1_000_000n,
      outputPrice: null,
      cacheReadPrice: null,
      cacheWritePrice: null,
      tiers: [
        {
          min_context_tokens: 10,
          input_price: 1.5,
          output_price: null,
          cache_read_price: null,
          cache_write_price: null,
        },
        {
          min_context_tokens: 5,
          input_price: 3_000_000,
          output_price: null,
          cache_read_price: null,
          cache_write_price: null,
        },
      ],
    };
    // The 10-tier is malformed; the 5-tier applies: 20 * 3,000,000 -> 60.
    const r = costOf(p, tokens({ input: 20n }));
    expect(r.tierMinContextTokens).toBe(5);
    expect(r.costMicros).toBe(60n);
  });
});

describe('reservationCost', () => {
  it('puts every input token at the dearest input-side price (Anthropic cache write)', () => {
    const p = seedPrice('anthropic', 'claude-sonnet-4-5');
    // 10,000 * 3,750,000 (cache write > input 3,000,000) = 37,500,000,000;
    // 2,000 * 15,000,000 = 30,000,000,000.  67,500,000,000 -> 67,500.
    const r = reservationCost(p, 10_000n, 2000n);
    expect(r.costMicros).toBe(67_500n);
    // No split of the same limits costs more.
    for (const split of [
      { input: 10_000n, output: 2000n },
      { input: 5000n, cacheRead: 5000n, output: 2000n },
      { cacheRead: 10_000n, output: 2000n },
      { input: 1000n, cacheWrite: 9000n, output: 2000n },
    ]) {
      expect(costOf(p, tokens(split)).costMicros! <= r.costMicros!).toBe(true);
    }
  });

  it('uses the tier that maxInputTokens selects', () => {
    const p = seedPrice('openai', 'gpt-5.4');
    // 272,000: base. 272,000 * 2,500,000 + 1,000 * 15,000,000 = 695,000,000,000 -> 695,000.
    const base = reservationCost(p, 272_000n, 1000n);
    expect(base.costMicros).toBe(695_000n);
    expect(base.tierMinContextTokens).toBeNull();
    // 272,001: tier. 272,001 * 5,000,000 + 1,000 * 22,500,000 = 1,382,505,000,000 -> 1,382,505.
    const tier = reservationCost(p, 272_001n, 1000n);
    expect(tier.costMicros).toBe(1_382_505n);
    expect(tier.tierMinContextTokens).toBe(272_000);
  });

  it('is unpriced without a row, and rejects limits above 10^12', () => {
    expect(reservationCost(null, 10n, 10n).costMicros).toBeNull();
    expect(() => reservationCost(seedPrice('openai', 'gpt-5.4'), 1n, MAX_TOKENS + 1n)).toThrow(DomainError);
  });
});
