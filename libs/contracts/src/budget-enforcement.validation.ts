import {
  BudgetCheckRequest,
  BudgetReleaseRequest,
  BudgetReserveRequest,
  MAX_RESERVATION_TTL_SECONDS,
  MAX_TOKEN_COUNT,
} from './budget-enforcement';
import { validateStrict, type StrictResult } from './dto-validation';

/**
 * The validation of the budget requests (check, reserve, release) on the hot path: a request
 * that is plainly well-formed (known fields only, ASCII strings of the right shape, integers in
 * range) is accepted by a few comparisons; anything else goes to `validateStrict` against the
 * class-validator DTO, which stays the definition of the payload and gives the error messages.
 *
 * The fast path may send to the full validator more than it needs to, never less: it accepts a
 * subset of what the DTO accepts, and returns what validateStrict would (a DTO instance with the
 * same fields; its strings are ASCII, which NFC normalization leaves as they are).
 * budget-enforcement.validation.spec.ts holds the two to the same answers on a table of valid
 * and hostile payloads.
 */

// validator's isUUID 'all' (class-validator's @IsUUID('all')).
const UUID =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/i;
/**
 * A request id or model id (1 to 255 characters, no control or format characters, no
 * surrounding space) restricted to printable ASCII; other ids take the full path.
 */
const ASCII_ID = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;
const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;

type Check = (value: unknown) => boolean;

const uuid: Check = (v) => typeof v === 'string' && UUID.test(v);
const asciiId: Check = (v) => typeof v === 'string' && ASCII_ID.test(v);
const provider: Check = (v) => typeof v === 'string' && PROVIDER.test(v);
const intIn =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const micros = intIn(0, Number.MAX_SAFE_INTEGER);
const tokens = intIn(0, MAX_TOKEN_COUNT);
const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined || check(v);

/** Per field: the check of a plainly valid value (absent allowed for optional fields). */
type Shape = Record<string, Check>;

const SHAPES = new Map<new () => object, Shape>([
  [BudgetCheckRequest, { user_id: uuid, amount_micros: optional(micros) }],
  [
    BudgetReserveRequest,
    {
      request_id: asciiId,
      user_id: uuid,
      amount_micros: optional(micros),
      provider: optional(provider),
      model: optional(asciiId),
      max_input_tokens: optional(tokens),
      max_output_tokens: optional(tokens),
      ttl_seconds: optional(intIn(1, MAX_RESERVATION_TTL_SECONDS)),
    },
  ],
  [BudgetReleaseRequest, { reservation_id: uuid }],
]);

/** True when `input` is a plain JSON object of `shape`'s fields only, each plainly valid. */
function wellFormed(shape: Shape, input: unknown): input is Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return false;
  const record = input as Record<string, unknown>;
  for (const key in record) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) return false;
    const check = Object.prototype.hasOwnProperty.call(shape, key) ? shape[key] : undefined;
    if (check === undefined) return false;
  }
  for (const key in shape) if (!shape[key](record[key])) return false;
  return true;
}

/**
 * A budget check, reserve or release request as its DTO, or the problems with it, exactly as
 * `validateStrict(dto, input, '')` answers.
 */
export function validateBudgetRequest<T extends object>(dto: new () => T, input: unknown): StrictResult<T> {
  const shape = SHAPES.get(dto);
  if (shape && wellFormed(shape, input)) {
    return { ok: true, value: Object.assign(Object.create(dto.prototype as object) as T, input) };
  }
  return validateStrict(dto, input, '');
}

/** For the tests: whether the fast path alone accepts `input`. */
export function budgetRequestFastPathAccepts(dto: new () => object, input: unknown): boolean {
  const shape = SHAPES.get(dto);
  return shape !== undefined && wellFormed(shape, input);
}
