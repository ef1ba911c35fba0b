import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildSeed, formatSeed, SeedRow, SeedValidationError, usdPerMillionToMicros } from './seed';

// A pretty-printed copy of the shared models.dev api.small.json (deep-equal to it).
const SMALL_FIXTURE = path.join(__dirname, '__fixtures__', 'api.small.json');

function loadSmall(): unknown {
  return JSON.parse(readFileSync(SMALL_FIXTURE, 'utf8')) as unknown;
}

function catalogue(provider: string, models: Record<string, unknown>): Record<string, unknown> {
  return { [provider]: { id: provider, name: provider, models } };
}

function row(partial: Partial<SeedRow> & Pick<SeedRow, 'provider' | 'model'>): SeedRow {
  return {
    input_price: null,
    output_price: null,
    cache_read_price: null,
    cache_write_price: null,
    tiers: null,
    ...partial,
  };
}

function seedError(fn: () => unknown): SeedValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SeedValidationError);
    return err as SeedValidationError;
  }
  throw new Error('expected a SeedValidationError');
}

describe('usdPerMillionToMicros', () => {
  it.each([
    [4.1, 4_100_000],
    [0.075, 75_000],
    [0.30000000000000004, 300_000],
    [3, 3_000_000],
    [0, 0],
    [0.0000005, 1],
    [0.0000004, 0],
    [1e-7, 0],
    [0.0000015, 2],
    [0.0000025, 3],
    [0.00000049999, 0],
    [0.25, 250_000],
    [22.5, 22_500_000],
    [3.75, 3_750_000],
    [0.03, 30_000],
    [10_000, 10_000_000_000],
    [1.5e21, 1.5e27],
    [5e-324, 0],
    [-0, 0],
    [-4.1, -4_100_000],
    [-0.0000005, -1],
  ])('%p USD per million is %p micros', (usd, micros) => {
    expect(Object.is(usdPerMillionToMicros(usd), micros)).toBe(true);
  });

  it('never truncates a price that is just below its decimal value in binary', () => {
    // 4.1, 0.29 and 1.1 are stored as doubles slightly below the decimal; naive math truncates them.
    for (const [usd, micros] of [
      [0.29, 290_000],
      [1.1, 1_100_000],
      [2.3, 2_300_000],
      [0.57, 570_000],
      [8.2, 8_200_000],
    ]) {
      expect(usdPerMillionToMicros(usd)).toBe(micros);
    }
  });

  it('matches exact decimal rounding for many prices with up to 6 decimals', () => {
    for (let cents = 0; cents < 100_000; cents += 7) {
      const text = `${Math.floor(cents / 1000)}.${String(cents % 1000).padStart(3, '0')}123`;
      const expected = Number(text.replace('.', ''));
      expect(usdPerMillionToMicros(Number(text))).toBe(expected);
    }
  });

  it('rejects non-finite input', () => {
    expect(() => usdPerMillionToMicros(Number.NaN)).toThrow(RangeError);
    expect(() => usdPerMillionToMicros(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('buildSeed over api.small.json', () => {
  const rows = buildSeed(loadSmall(), ['anthropic', 'openai']);
  const find = (provider: string, model: string): SeedRow | undefined =>
    rows.find((r) => r.provider === provider && r.model === model);

  it('keeps every priced model and skips the one without a cost block', () => {
    expect(rows.map((r) => `${r.provider}/${r.model}`)).toEqual([
      'anthropic/claude-3-haiku-20240307',
      'anthropic/claude-haiku-4-5',
      'anthropic/claude-opus-4-6',
      'anthropic/claude-sonnet-4-5',
      'anthropic/fixture-cache-read-no-write',
      'anthropic/fixture-free',
      'openai/fixture-cache-read-no-write',
      'openai/fixture-free',
      'openai/gpt-4o-mini',
      'openai/gpt-5.4',
      'openai/o1-pro',
      'openai/text-embedding-3-small',
    ]);
    expect(find('anthropic', 'fixture-no-cost')).toBeUndefined();
    expect(find('openai', 'fixture-no-cost')).toBeUndefined();
  });

  it('gives the fixture-* entries exactly', () => {
    for (const provider of ['anthropic', 'openai']) {
      expect(find(provider, 'fixture-free')).toEqual(
        row({ provider, model: 'fixture-free', input_price: 0, output_price: 0 }),
      );
    }
    expect(find('anthropic', 'fixture-cache-read-no-write')).toEqual(
      row({
        provider: 'anthropic',
        model: 'fixture-cache-read-no-write',
        input_price: 3_000_000,
        output_price: 15_000_000,
        cache_read_price: 300_000,
      }),
    );
    expect(find('openai', 'fixture-cache-read-no-write')).toEqual(
      row({
        provider: 'openai',
        model: 'fixture-cache-read-no-write',
        input_price: 2_500_000,
        output_price: 10_000_000,
        cache_read_price: 1_250_000,
      }),
    );
  });

  it('converts the real models', () => {
    expect(find('anthropic', 'claude-sonnet-4-5')).toEqual(
      row({
        provider: 'anthropic',
        model: 'claude-sonnet-4-5',
        input_price: 3_000_000,
        output_price: 15_000_000,
        cache_read_price: 300_000,
        cache_write_price: 3_750_000,
      }),
    );
    expect(find('anthropic', 'claude-3-haiku-20240307')).toEqual(
      row({
        provider: 'anthropic',
        model: 'claude-3-haiku-20240307',
        input_price: 250_000,
        output_price: 1_250_000,
        cache_read_price: 30_000,
        cache_write_price: 300_000,
      }),
    );
    expect(find('openai', 'gpt-4o-mini')).toEqual(
      row({
        provider: 'openai',
        model: 'gpt-4o-mini',
        input_price: 150_000,
        output_price: 600_000,
        cache_read_price: 75_000,
      }),
    );
    expect(find('openai', 'text-embedding-3-small')).toEqual(
      row({ provider: 'openai', model: 'text-embedding-3-small', input_price: 20_000, output_price: 0 }),
    );
  });

  it('maps gpt-5.4 cost.tiers and ignores context_over_200k', () => {
    expect(find('openai', 'gpt-5.4')).toEqual(
      row({
        provider: 'openai',
        model: 'gpt-5.4',
        input_price: 2_500_000,
        output_price: 15_000_000,
        cache_read_price: 250_000,
        tiers: [
          {
            min_context_tokens: 272_000,
            input_price: 5_000_000,
            output_price: 22_500_000,
            cache_read_price: 500_000,
            cache_write_price: null,
          },
        ],
      }),
    );
  });

  it('keeps only the configured providers', () => {
    const only = buildSeed(loadSmall(), ['openai']);
    expect(new Set(only.map((r) => r.provider))).toEqual(new Set(['openai']));
    expect(only).toHaveLength(6);
  });

  it('gives byte-identical output when run twice, whatever the provider order', () => {
    const first = formatSeed(buildSeed(loadSmall(), ['anthropic', 'openai']));
    const second = formatSeed(buildSeed(loadSmall(), ['openai', 'anthropic', 'openai']));
    expect(second).toBe(first);
  });
});

describe('buildSeed rules', () => {
  it('treats a missing key and null as null, and keeps 0', () => {
    const rows = buildSeed(catalogue('p', { m: { cost: { input: 0, output: null, cache_read: 1 } } }), ['p']);
    expect(rows).toEqual([row({ provider: 'p', model: 'm', input_price: 0, cache_read_price: 1_000_000 })]);
  });

  it('uses the key in models as the model id', () => {
    const rows = buildSeed(catalogue('p', { 'key-id': { id: 'other-id', cost: { input: 1 } } }), ['p']);
    expect(rows[0].model).toBe('key-id');
  });

  it('fails naming a configured provider that is missing', () => {
    const err = seedError(() => buildSeed(loadSmall(), ['anthropic', 'foo']));
    expect(err.message).toContain('provider "foo" is not in the catalogue');
  });

  it('fails when no row has a price', () => {
    const cat = catalogue('p', {
      none: {},
      nulls: { cost: { input: null, output: null } },
      tiersOnly: { cost: { tiers: [{ input: 1, tier: { type: 'context', size: 1000 } }] } },
    });
    expect(seedError(() => buildSeed(cat, ['p'])).message).toContain('no priced models');
  });

  it('skips a model whose only prices are in tiers', () => {
    const cat = catalogue('p', {
      priced: { cost: { input: 1 } },
      tiersOnly: { cost: { tiers: [{ input: 1, tier: { type: 'context', size: 1000 } }] } },
    });
    expect(buildSeed(cat, ['p']).map((r) => r.model)).toEqual(['priced']);
  });

  it('fails naming provider, model, key and value for a price above USD 10,000 per million', () => {
    const cat = catalogue('p', {
      ok: { cost: { input: 10_000 } },
      big: { cost: { input: 1, output: 10_000.01 } },
    });
    const message = seedError(() => buildSeed(cat, ['p'])).message;
    expect(message).toContain('p/big');
    expect(message).toContain('output');
    expect(message).toContain('10000.01');
  });

  it('counts a price that only rounds above the limit as too large', () => {
    const cat = catalogue('p', { m: { cost: { input: 10_000.0000005 } } });
    expect(seedError(() => buildSeed(cat, ['p'])).message).toContain('p/m');
  });

  it('applies the limit inside tiers too', () => {
    const cat = catalogue('p', {
      m: { cost: { input: 1, tiers: [{ input: 20_000, tier: { type: 'context', size: 5 } }] } },
    });
    const message = seedError(() => buildSeed(cat, ['p'])).message;
    expect(message).toContain('p/m');
    expect(message).toContain('tiers[0].input');
    expect(message).toContain('20000');
  });

  it('turns a negative price into null with a warning', () => {
    const warnings: string[] = [];
    const rows = buildSeed(catalogue('p', { m: { cost: { input: -1, output: 2 } } }), ['p'], (w) =>
      warnings.push(w),
    );
    expect(rows).toEqual([row({ provider: 'p', model: 'm', output_price: 2_000_000 })]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('p/m');
    expect(warnings[0]).toContain('input');
  });

  it.each([['3'], [true], [{}], [[1]]])('turns the non-number %p into null with a warning', (bad) => {
    const warnings: string[] = [];
    const rows = buildSeed(catalogue('p', { m: { cost: { input: 1, cache_write: bad } } }), ['p'], (w) =>
      warnings.push(w),
    );
    expect(rows).toEqual([row({ provider: 'p', model: 'm', input_price: 1_000_000 })]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('p/m');
    expect(warnings[0]).toContain('cache_write');
  });

  it('turns NaN into null with a warning', () => {
    const warnings: string[] = [];
    const rows = buildSeed(catalogue('p', { m: { cost: { input: Number.NaN, output: 1 } } }), ['p'], (w) =>
      warnings.push(w),
    );
    expect(rows[0].input_price).toBeNull();
    expect(warnings).toEqual([expect.stringContaining('p/m cost.input')]);
  });

  it('skips a model whose only price was invalid', () => {
    const warnings: string[] = [];
    const cat = catalogue('p', { a: { cost: { input: 1 } }, bad: { cost: { input: -5 } } });
    expect(buildSeed(cat, ['p'], (w) => warnings.push(w)).map((r) => r.model)).toEqual(['a']);
    expect(warnings).toHaveLength(1);
  });

  it('ignores context_over_200k, reasoning and audio prices', () => {
    const cost = {
      input: 1,
      context_over_200k: { input: 2 },
      reasoning: 3,
      input_audio: 4,
      output_audio: 5,
    };
    const warnings: string[] = [];
    expect(buildSeed(catalogue('p', { m: { cost } }), ['p'], (w) => warnings.push(w))).toEqual([
      row({ provider: 'p', model: 'm', input_price: 1_000_000 }),
    ]);
    expect(warnings).toEqual([]);
  });

  it('sorts tiers by size, drops bad sizes with a warning, and converts tier prices', () => {
    const warnings: string[] = [];
    const tiers = [
      { input: 3, cache_write: 0.3, tier: { type: 'context', size: 500_000 } },
      { input: 2, output: -1, tier: { type: 'context', size: 100_000 } },
      { input: 9, tier: { type: 'context', size: 1.5 } },
      { input: 9, tier: { type: 'context', size: -1 } },
      { input: 9, tier: { type: 'context', size: '1000' } },
      { input: 9, tier: { type: 'context' } },
      { input: 9 },
      'not a tier',
      { input: 0, tier: { type: 'context', size: 0 } },
    ];
    const rows = buildSeed(catalogue('p', { m: { cost: { input: 1, tiers } } }), ['p'], (w) =>
      warnings.push(w),
    );
    expect(rows[0].tiers).toEqual([
      {
        min_context_tokens: 0,
        input_price: 0,
        output_price: null,
        cache_read_price: null,
        cache_write_price: null,
      },
      {
        min_context_tokens: 100_000,
        input_price: 2_000_000,
        output_price: null,
        cache_read_price: null,
        cache_write_price: null,
      },
      {
        min_context_tokens: 500_000,
        input_price: 3_000_000,
        output_price: null,
        cache_read_price: null,
        cache_write_price: 300_000,
      },
    ]);
    // One for the negative tier price, six for the dropped tiers.
    expect(warnings).toHaveLength(7);
    expect(warnings.every((w) => w.includes('p/m'))).toBe(true);
  });

  it('gives null tiers for an empty array or when every tier is dropped', () => {
    const cat = catalogue('p', {
      empty: { cost: { input: 1, tiers: [] } },
      dropped: { cost: { input: 1, tiers: [{ input: 2, tier: { type: 'context', size: -5 } }] } },
    });
    expect(buildSeed(cat, ['p'], () => undefined).map((r) => r.tiers)).toEqual([null, null]);
  });

  it('sorts by provider then model in code-unit order, not locale order', () => {
    const cat = {
      ...catalogue('zeta', { b: { cost: { input: 1 } }, a: { cost: { input: 1 } } }),
      ...catalogue('Alpha', { x: { cost: { input: 1 } } }),
      ...catalogue('alpha', {
        'b-model': { cost: { input: 1 } },
        B: { cost: { input: 1 } },
        a: { cost: { input: 1 } },
        'a.1': { cost: { input: 1 } },
        'a-1': { cost: { input: 1 } },
        é: { cost: { input: 1 } },
        z: { cost: { input: 1 } },
      }),
    };
    const rows = buildSeed(cat, ['zeta', 'alpha', 'Alpha']);
    expect(rows.map((r) => `${r.provider}/${r.model}`)).toEqual([
      'Alpha/x',
      'alpha/B',
      'alpha/a',
      'alpha/a-1',
      'alpha/a.1',
      'alpha/b-model',
      'alpha/z',
      'alpha/é',
      'zeta/a',
      'zeta/b',
    ]);
  });

  it('rejects a catalogue that is not an object of providers', () => {
    for (const bad of [null, [], 'x', 3]) {
      expect(seedError(() => buildSeed(bad, ['p'])).message).toContain('catalogue');
    }
  });

  it('names the path when a provider has no models object', () => {
    expect(seedError(() => buildSeed({ p: { id: 'p' } }, ['p'])).message).toContain('"p".models');
    expect(seedError(() => buildSeed({ p: { models: [] } }, ['p'])).message).toContain('"p".models');
    expect(seedError(() => buildSeed({ p: 'x' }, ['p'])).message).toContain('"p".models');
  });

  it('does not read inherited properties as providers', () => {
    expect(seedError(() => buildSeed({}, ['constructor'])).message).toContain(
      'provider "constructor" is not in the catalogue',
    );
  });
});

describe('formatSeed', () => {
  it('writes the keys in the documented order with 2-space indent and a trailing newline', () => {
    const shuffled = {
      tiers: [
        {
          cache_write_price: null,
          output_price: 2,
          min_context_tokens: 10,
          input_price: 1,
          cache_read_price: null,
        },
      ],
      cache_write_price: null,
      model: 'm',
      output_price: 0,
      provider: 'p',
      input_price: 5,
      cache_read_price: null,
      extra: 'dropped',
    } as SeedRow;
    const text = formatSeed([shuffled]);
    expect(text).toBe(
      [
        '[',
        '  {',
        '    "provider": "p",',
        '    "model": "m",',
        '    "input_price": 5,',
        '    "output_price": 0,',
        '    "cache_read_price": null,',
        '    "cache_write_price": null,',
        '    "tiers": [',
        '      {',
        '        "min_context_tokens": 10,',
        '        "input_price": 1,',
        '        "output_price": 2,',
        '        "cache_read_price": null,',
        '        "cache_write_price": null',
        '      }',
        '    ]',
        '  }',
        ']',
        '',
      ].join('\n'),
    );
  });
});
