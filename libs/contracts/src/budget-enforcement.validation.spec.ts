import 'reflect-metadata';
import { BudgetCheckRequest, BudgetReleaseRequest, BudgetReserveRequest } from './budget-enforcement';
import { budgetRequestFastPathAccepts, validateBudgetRequest } from './budget-enforcement.validation';
import { validateStrict } from './dto-validation';

const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const DTOS: (new () => object)[] = [BudgetCheckRequest, BudgetReserveRequest, BudgetReleaseRequest];

/** Values each field is tried with: valid, at the bounds, just past them, wrong types, hostile text. */
const VALUES: unknown[] = [
  undefined,
  null,
  true,
  0,
  -0,
  1,
  -1,
  0.5,
  10_000,
  86_400,
  86_401,
  1_000_000_000_000,
  1_000_000_000_001,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  1e300,
  '10000',
  '',
  ' ',
  'a',
  'openai',
  'OpenAI',
  'open ai',
  '-openai',
  'x'.repeat(64),
  'x'.repeat(65),
  'gpt-4o',
  'claude-3.5 sonnet',
  ' gpt',
  'gpt ',
  'gpt\t',
  'a\u0000b',
  'a\u007fb',
  'a\u200bb',
  'caf\u0065\u0301',
  'café',
  '\ud800',
  'r'.repeat(255),
  'r'.repeat(256),
  'é'.repeat(255),
  '😀'.repeat(200),
  USER,
  USER.toUpperCase(),
  '3f2504e0-4f89-01d3-9a0c-0305e82c3301',
  '3f2504e0-4f89-41d3-7a0c-0305e82c3301',
  '3f2504e0-4f89-41d3-9a0c-0305e82c330',
  ` ${USER}`,
  '00000000-0000-0000-0000-000000000000',
  'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  [],
  [USER],
  {},
  { user_id: USER },
];

const FIELDS = [
  'user_id',
  'amount_micros',
  'request_id',
  'provider',
  'model',
  'max_input_tokens',
  'max_output_tokens',
  'ttl_seconds',
  'reservation_id',
];

const VALID: Record<string, unknown>[] = [
  { user_id: USER },
  { user_id: USER, amount_micros: 10_000 },
  { request_id: 'req-1', user_id: USER, amount_micros: 0 },
  {
    request_id: 'req 2',
    user_id: USER,
    provider: 'openai',
    model: 'gpt-4o',
    max_input_tokens: 100,
    max_output_tokens: 1_000_000_000_000,
    ttl_seconds: 60,
  },
  { reservation_id: USER },
];

/** Whole payloads that are not objects of fields, or that carry hostile keys. */
const HOSTILE: unknown[] = [
  undefined,
  null,
  0,
  'text',
  [],
  [{ user_id: USER }],
  { user_id: USER, extra: 1 },
  JSON.parse(`{"user_id":"${USER}","__proto__":{"amount_micros":1}}`) as unknown,
  JSON.parse(`{"user_id":"${USER}","constructor":1}`) as unknown,
  JSON.parse(`{"user_id":"${USER}","toString":"x"}`) as unknown,
  JSON.parse(`{"user_id":"${USER}","hasOwnProperty":1}`) as unknown,
  { user_id: USER, 'amount_micros\u0000': 1 },
  { user_id: USER, '\ud800': 1 },
  { user_id: USER, amount_micros: { $gt: 0 } },
  Object.assign(Object.create({ inherited: 1 }) as object, { user_id: USER }),
  Object.assign(Object.create(null) as object, { user_id: USER }),
];

/** Every payload: each valid one, then each with one field set to each value, then the hostile ones. */
function payloads(): unknown[] {
  const out: unknown[] = [...VALID, ...HOSTILE];
  for (const base of VALID) {
    for (const field of FIELDS) {
      for (const value of VALUES) {
        const p: Record<string, unknown> = { ...base };
        if (value === undefined) delete p[field];
        else p[field] = value;
        out.push(p);
      }
    }
  }
  return out;
}

/** A deep copy (validateStrict normalizes strings in place, so each side gets its own). */
function copy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(copy);
  const out = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
  for (const k of Object.keys(value)) out[k] = copy((value as Record<string, unknown>)[k]);
  return out;
}

const describeValue = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (x === undefined ? '<undefined>' : x)) ?? String(v);

describe('validateBudgetRequest answers exactly as validateStrict against the DTO', () => {
  const all = payloads();

  it.each(DTOS.map((d) => [d.name, d] as [string, new () => object]))(
    '%s: same result on every payload',
    (_name, dto) => {
      let fast = 0;
      let fellBack = 0;
      for (const p of all) {
        const expected = validateStrict(dto, copy(p), '');
        const got = validateBudgetRequest(dto, copy(p));
        if (budgetRequestFastPathAccepts(dto, copy(p))) fast++;
        else fellBack++;
        try {
          expect(got.ok).toBe(expected.ok);
          if (got.ok && expected.ok) {
            expect(Object.getPrototypeOf(got.value)).toBe(dto.prototype);
            expect({ ...got.value }).toEqual({ ...expected.value });
            expect(Object.keys(got.value)).toEqual(Object.keys(expected.value));
          } else {
            expect(got).toEqual(expected);
          }
        } catch (err) {
          throw new Error(`payload ${describeValue(p)}: ${(err as Error).message}`, { cause: err });
        }
      }
      // Both paths were really taken.
      expect(fast).toBeGreaterThan(5);
      expect(fellBack).toBeGreaterThan(100);
    },
  );

  it('takes the fast path only for payloads the DTO accepts', () => {
    for (const dto of DTOS) {
      for (const p of all) {
        if (budgetRequestFastPathAccepts(dto, copy(p))) {
          expect([describeValue(p), validateStrict(dto, copy(p), '').ok]).toEqual([describeValue(p), true]);
        }
      }
    }
  });

  it('takes the fast path for the common well-formed requests', () => {
    expect(budgetRequestFastPathAccepts(BudgetCheckRequest, { user_id: USER, amount_micros: 10_000 })).toBe(
      true,
    );
    expect(budgetRequestFastPathAccepts(BudgetReserveRequest, VALID[3])).toBe(true);
    expect(budgetRequestFastPathAccepts(BudgetReleaseRequest, { reservation_id: USER })).toBe(true);
  });

  it('names the field and the rule of a refused payload, as the DTO does', () => {
    expect(validateBudgetRequest(BudgetCheckRequest, { user_id: 'nope', amount_micros: -1 })).toEqual({
      ok: false,
      problems: [
        { field: 'user_id', detail: 'must be a uuid' },
        { field: 'amount_micros', detail: 'must not be negative' },
      ],
    });
    expect(validateBudgetRequest(BudgetReleaseRequest, { reservation_id: USER, x: 1 })).toEqual({
      ok: false,
      problems: [{ field: 'x', detail: expect.any(String) as string }],
    });
  });

  it('returns what the full path returns for text that NFC changes (the full path normalizes it)', () => {
    const decomposed = 'caf\u0065\u0301';
    const r = validateBudgetRequest(BudgetReserveRequest, {
      request_id: decomposed,
      user_id: USER,
      amount_micros: 1,
    });
    expect(r.ok && r.value.request_id).toBe('café');
  });
});
