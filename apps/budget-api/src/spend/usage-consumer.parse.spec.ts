import { getMetadataStorage } from 'class-validator';
import { UsageRecord } from '@aigov/contracts';
import {
  QUICK_CHECKED_FIELDS,
  parseUsageMessage,
  parseUsageMessageStrictly,
  quickUsageRecord,
} from './usage-consumer.parse';

const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const RECORD = {
  request_id: 'req-1',
  user_id: USER,
  provider: 'anthropic',
  model: 'claude-x',
  input_tokens: 10,
  output_tokens: 5,
};
const bytes = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('parseUsageMessage', () => {
  it('accepts the plain record and a CloudEvent whose data is the record', () => {
    expect(parseUsageMessage(bytes(RECORD))).toMatchObject({ ok: true, record: RECORD });
    const event = {
      specversion: '1.0',
      id: 'e1',
      source: 'gw',
      type: 'aigov.usage.recorded',
      time: '2026-12-02T10:00:00Z',
      data: { ...RECORD, occurred_at: '2026-12-02T10:00:00Z' },
    };
    expect(parseUsageMessage(bytes(event))).toMatchObject({ ok: true, record: { request_id: 'req-1' } });
  });

  it('refuses what is not JSON, naming why', () => {
    expect(parseUsageMessage(bytes('not json'))).toMatchObject({
      ok: false,
      cause: 'invalid_json',
      errors: [expect.stringMatching(/^payload: must be JSON/)],
      json: undefined,
    });
    expect(parseUsageMessage(Buffer.from([0xff, 0xfe]))).toMatchObject({ ok: false, cause: 'invalid_json' });
  });

  it('refuses invalid records field by field, also inside a CloudEvent', () => {
    const bad = parseUsageMessage(bytes({ ...RECORD, input_tokens: -1, user_id: 'x', extra: true }));
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.cause).toBe('invalid_data');
    expect(bad.errors.join('\n')).toMatch(/extra/);
    const wrapped = parseUsageMessage(
      bytes({ specversion: '1.0', type: 'aigov.usage.recorded', data: { ...RECORD, output_tokens: 1.5 } }),
    );
    expect(wrapped).toMatchObject({
      ok: false,
      cause: 'invalid_data',
      errors: [expect.stringMatching(/^data\.output_tokens: /)],
    });
    expect(
      parseUsageMessage(bytes({ specversion: '1.0', type: 'identity.user.deleted', data: RECORD })),
    ).toMatchObject({
      ok: false,
      errors: ['type: must be "aigov.usage.recorded" when present'],
    });
    expect(parseUsageMessage(bytes([RECORD]))).toMatchObject({ ok: false, cause: 'invalid_data' });
  });
});

describe('the quick check of well-formed records against the DTO', () => {
  const FULL: Record<string, unknown> = {
    ...RECORD,
    cache_read_tokens: 0,
    cache_write_tokens: 1_000_000_000_000,
    occurred_at: '2026-12-02T10:00:00.123+01:00',
    reservation_id: 'A3BB189E-8BF9-3888-9912-ACE4E6543002',
  };
  const VALID: [string, unknown][] = [
    ['the required fields', RECORD],
    ['every field', FULL],
    [
      'zero tokens, -0, 1e12 and 2.0',
      { ...RECORD, input_tokens: -0, output_tokens: 2.0, cache_read_tokens: 1e12 },
    ],
    ['a 255-character request id with inner spaces', { ...RECORD, request_id: `a ${'x'.repeat(252)}b` }],
    ['printable ASCII punctuation in model', { ...RECORD, model: `~!"#$%&'()*+,-./:;<=>?@[\\]^_\`{|}` }],
    ['a 64-character provider', { ...RECORD, provider: `a${'.-_9'.repeat(15)}abc` }],
    [
      'the nil and max uuids',
      {
        ...RECORD,
        user_id: '00000000-0000-0000-0000-000000000000',
        reservation_id: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
      },
    ],
    ['occurred_at in Z with no fraction', { ...RECORD, occurred_at: '2026-02-28T23:59:59Z' }],
    ['occurred_at as a date only', { ...RECORD, occurred_at: '2026-12-02' }],
  ];
  // What the quick check must leave to the full validation: each refused there (or, for
  // non-ASCII text, accepted after NFC normalization), with the same result either way.
  const HOSTILE: [string, unknown][] = [
    ['null', null],
    ['an array', [RECORD]],
    ['a string', 'req'],
    ['a number', 42],
    ['an empty object', {}],
    ['a missing request_id', { ...RECORD, request_id: undefined }],
    ['a missing output_tokens', { ...RECORD, output_tokens: undefined }],
    ['an unknown field', { ...RECORD, extra: 1 }],
    ['a __proto__ key', JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(RECORD).slice(1)}`)],
    ['a constructor key', { ...RECORD, constructor: 'x' }],
    ['null request_id', { ...RECORD, request_id: null }],
    ['empty request_id', { ...RECORD, request_id: '' }],
    ['256-character request_id', { ...RECORD, request_id: 'x'.repeat(256) }],
    ['request_id with a leading space', { ...RECORD, request_id: ' req' }],
    ['request_id with a trailing space', { ...RECORD, request_id: 'req ' }],
    ['request_id with a tab', { ...RECORD, request_id: 'a\tb' }],
    ['request_id with DEL', { ...RECORD, request_id: 'a\u007fb' }],
    ['request_id with NUL', { ...RECORD, request_id: 'a\u0000b' }],
    ['request_id with a lone surrogate', { ...RECORD, request_id: 'a\ud800b' }],
    ['request_id with a zero-width space', { ...RECORD, request_id: 'a\u200bb' }],
    ['request_id with a no-break space at the end', { ...RECORD, request_id: 'ab\u00a0' }],
    ['request_id in decomposed form (NFC changes it)', { ...RECORD, request_id: 'cafe\u0301' }],
    ['request_id of 255 astral characters', { ...RECORD, request_id: '😀'.repeat(255) }],
    ['request_id of 256 astral characters', { ...RECORD, request_id: '😀'.repeat(256) }],
    ['request_id as a number', { ...RECORD, request_id: 7 }],
    ['model as an object', { ...RECORD, model: { a: 1 } }],
    ['model in Cyrillic', { ...RECORD, model: 'сlaude' }],
    ['user_id not a uuid', { ...RECORD, user_id: 'x' }],
    ['user_id of version 9', { ...RECORD, user_id: '3f2504e0-4f89-91d3-9a0c-0305e82c3301' }],
    ['user_id with braces', { ...RECORD, user_id: `{${USER}}` }],
    ['user_id with a newline after it', { ...RECORD, user_id: `${USER}\n` }],
    ['provider in capitals', { ...RECORD, provider: 'Anthropic' }],
    ['provider starting with a dot', { ...RECORD, provider: '.x' }],
    ['provider of 65 characters', { ...RECORD, provider: 'a'.repeat(65) }],
    ['provider with a newline after it', { ...RECORD, provider: 'anthropic\n' }],
    ['negative input_tokens', { ...RECORD, input_tokens: -1 }],
    ['fractional output_tokens', { ...RECORD, output_tokens: 1.5 }],
    ['too many tokens', { ...RECORD, input_tokens: 1e12 + 1 }],
    ['tokens as a string', { ...RECORD, input_tokens: '10' }],
    ['tokens as a bool', { ...RECORD, input_tokens: true }],
    ['null cache_read_tokens', { ...RECORD, cache_read_tokens: null }],
    ['a huge cache_write_tokens', { ...RECORD, cache_write_tokens: 1e300 }],
    ['null occurred_at', { ...RECORD, occurred_at: null }],
    ['occurred_at as a number', { ...RECORD, occurred_at: 1_733_000_000 }],
    ['occurred_at with a space separator', { ...RECORD, occurred_at: '2026-12-02 10:00:00Z' }],
    ['occurred_at on 30 February', { ...RECORD, occurred_at: '2026-02-30T10:00:00Z' }],
    ['occurred_at in words', { ...RECORD, occurred_at: 'yesterday' }],
    ['occurred_at with Arabic digits', { ...RECORD, occurred_at: '٢٠٢٦-12-02T10:00:00Z' }],
    ['reservation_id not a uuid', { ...RECORD, reservation_id: 'r-1' }],
    ['null reservation_id', { ...RECORD, reservation_id: null }],
    ['several problems at once', { ...RECORD, input_tokens: -3, user_id: 'x', colour: 'red' }],
  ];
  const envelope = (data: unknown) => ({ specversion: '1.0', type: 'aigov.usage.recorded', id: 'e', data });
  const both = (v: unknown) => ({
    quick: parseUsageMessage(bytes(v)),
    strict: parseUsageMessageStrictly(bytes(v)),
  });

  it.each(VALID)('accepts %s exactly as the DTO does, bare and in a CloudEvent', (_name, value) => {
    expect(quickUsageRecord(JSON.parse(JSON.stringify(value)))).not.toBeNull();
    for (const v of [value, envelope(value)]) {
      const { quick, strict } = both(v);
      expect(strict.ok).toBe(true);
      expect(quick).toStrictEqual(strict);
      if (quick.ok) expect(quick.record).toBeInstanceOf(UsageRecord);
    }
  });

  it.each(HOSTILE)('leaves %s to the full validation, with the same result and messages', (_name, value) => {
    expect(quickUsageRecord(JSON.parse(JSON.stringify(value) ?? 'null'))).toBeNull();
    for (const v of [value, envelope(value)]) {
      const { quick, strict } = both(v);
      expect(quick).toStrictEqual(strict);
    }
  });

  it('agrees with the full validation on 3,000 random records made of valid and hostile values', () => {
    // Per field: values the DTO accepts, then values it refuses (or accepts only after NFC).
    const choices: Record<string, [unknown[], unknown[]]> = {
      request_id: [
        ['r', 'x'.repeat(255), 'a b'],
        ['x'.repeat(256), '', ' r', 'r\u0007', 'é', 'e\u0301', 3, null],
      ],
      user_id: [
        [USER, USER.toUpperCase()],
        ['x', '', null, `${USER} `],
      ],
      provider: [
        ['anthropic', 'open-ai.v2'],
        ['A', '', '-x', null, 5],
      ],
      model: [
        ['m', 'm m'],
        ['ü', '\u200b', '', 'm ', null],
      ],
      input_tokens: [
        [0, 1, 1e12],
        [1e12 + 1, -1, 0.5, '1', null, Number.MAX_SAFE_INTEGER],
      ],
      output_tokens: [
        [0, 7, -0],
        [2e12, NaN, [], {}],
      ],
      cache_read_tokens: [
        [undefined, 0, 5],
        [-5, null],
      ],
      cache_write_tokens: [
        [undefined, 0],
        [1.25, 'x'],
      ],
      occurred_at: [
        [undefined, '2026-12-02T10:00:00Z', '2026-12-02T10:00:00.5-03:30'],
        ['2026-13-02', '', null],
      ],
      reservation_id: [
        [undefined, USER],
        ['r', null],
      ],
      extra: [[undefined], [1]],
    };
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return Math.floor(seed / 65_536) % n;
    };
    let accepted = 0;
    let quick = 0;
    for (let i = 0; i < 3_000; i++) {
      const value: Record<string, unknown> = {};
      for (const [field, [good, bad]] of Object.entries(choices)) {
        const pool = rnd(10) < 8 ? good : bad;
        value[field] = pool[rnd(pool.length)];
      }
      const body = i % 2 === 0 ? value : envelope(value);
      const result = both(body);
      expect(result.quick).toStrictEqual(result.strict);
      if (result.strict.ok) accepted++;
      if (quickUsageRecord(JSON.parse(JSON.stringify(value)))) quick++;
    }
    // The draw makes both outcomes common enough to mean something, the quick one included.
    expect(quick).toBeGreaterThan(100);
    expect(accepted).toBeGreaterThanOrEqual(quick);
    expect(accepted).toBeLessThan(2_500);
  });

  it('knows exactly the fields and rules of the UsageRecord DTO (update it with the DTO)', () => {
    const rules = getMetadataStorage()
      .getTargetValidationMetadatas(UsageRecord, '', true, false)
      .map(
        (m) =>
          `${m.propertyName}: ${m.name ?? m.type}${m.constraints?.length ? ` ${JSON.stringify(m.constraints)}` : ''}`,
      )
      .sort();
    expect([...new Set(rules.map((r) => r.split(':')[0]))].sort()).toEqual([...QUICK_CHECKED_FIELDS].sort());
    // The rules the quick check implements; a rule added to the DTO must be added there too.
    expect(rules).toEqual([
      'cache_read_tokens: conditionalValidation [null]',
      'cache_read_tokens: isInt',
      'cache_read_tokens: max [1000000000000]',
      'cache_read_tokens: min [0]',
      'cache_write_tokens: conditionalValidation [null]',
      'cache_write_tokens: isInt',
      'cache_write_tokens: max [1000000000000]',
      'cache_write_tokens: min [0]',
      'input_tokens: isInt',
      'input_tokens: max [1000000000000]',
      'input_tokens: min [0]',
      'model: isModelId',
      'occurred_at: conditionalValidation [null]',
      'occurred_at: isIso8601 [{"strict":true,"strictSeparator":true}]',
      'occurred_at: isString',
      'output_tokens: isInt',
      'output_tokens: max [1000000000000]',
      'output_tokens: min [0]',
      'provider: isProvider',
      'request_id: isRequestId',
      'reservation_id: conditionalValidation [null]',
      'reservation_id: isUuid ["all"]',
      'user_id: isUuid ["all"]',
    ]);
  });
});
