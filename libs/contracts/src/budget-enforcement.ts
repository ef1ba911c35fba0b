import { IsInt, IsISO8601, IsString, IsUUID, Max, Min, ValidateBy, ValidateIf } from 'class-validator';
import { identifierProblem } from './text';

/**
 * Budget enforcement (CONTRACT 4.3 and 2.5; docs/gateway-integration.md): the same request and
 * reply bodies over NATS request-reply (queue group budget-api) and over HTTP
 * (`POST /api/v2/ai/budget/{check,reserve,release}`, `POST /api/v2/ai/usage`). Money is integer
 * micros; token counts are integers up to 10^12.
 */
export const BUDGET_SUBJECTS = {
  check: 'aigov.budget.check',
  reserve: 'aigov.budget.reserve',
  release: 'aigov.budget.release',
  threshold: 'aigov.budget.threshold',
  usageRecorded: 'aigov.usage.recorded',
} as const;

/** JetStream names of usage ingestion and threshold events. */
export const USAGE_STREAM = 'AI_USAGE';
export const USAGE_CONSUMER = 'budget-api';
export const USAGE_DLQ_SUBJECT = 'aigov.dlq.usage';
/** Only the threshold subject: a stream over aigov.budget.> would answer the request subjects. */
export const BUDGET_EVENTS_STREAM = 'AI_BUDGET_EVENTS';

export const MAX_TOKEN_COUNT = 1_000_000_000_000;
/** Reservation lifetime: default and bounds, in seconds. */
export const DEFAULT_RESERVATION_TTL_SECONDS = 600;
export const MAX_RESERVATION_TTL_SECONDS = 86_400;

export type DenialReason =
  'limit_reached' | 'insufficient_budget' | 'unpriced_model' | 'user_suspended' | 'unknown_user';

const REQUEST_ID_RULE = 'must be 1 to 255 characters without control characters or surrounding spaces';
const requestIdProblem = (v: unknown): boolean =>
  typeof v === 'string' && [...v].length >= 1 && [...v].length <= 255 && identifierProblem(v) === null;

/** A gateway's request id: the idempotency key of reservations and usage. */
function IsRequestId(): PropertyDecorator {
  return ValidateBy({
    name: 'isRequestId',
    validator: { validate: requestIdProblem, defaultMessage: () => REQUEST_ID_RULE },
  });
}

const MODEL_RULE = 'must be 1 to 255 characters without control characters or surrounding spaces';
function IsModelId(): PropertyDecorator {
  return ValidateBy({
    name: 'isModelId',
    validator: { validate: requestIdProblem, defaultMessage: () => MODEL_RULE },
  });
}

/**
 * An optional field: it may be absent, but a given value is validated, null included (null is
 * refused like any other wrong type; class-validator's IsOptional would let it through).
 */
function Optional(): PropertyDecorator {
  return ValidateIf((_o: object, value: unknown) => value !== undefined);
}

function IsMicrosAmount(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    IsInt({ message: 'must be an integer number of micros' })(target, key);
    Min(0, { message: 'must not be negative' })(target, key);
    Max(Number.MAX_SAFE_INTEGER, { message: `must not exceed ${Number.MAX_SAFE_INTEGER}` })(target, key);
  };
}

function IsTokenCount(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    IsInt({ message: 'must be an integer number of tokens' })(target, key);
    Min(0, { message: 'must not be negative' })(target, key);
    Max(MAX_TOKEN_COUNT, { message: `must not exceed ${MAX_TOKEN_COUNT}` })(target, key);
  };
}

const PROVIDER_RULE =
  'must be 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';
function IsProvider(): PropertyDecorator {
  return ValidateBy({
    name: 'isProvider',
    validator: {
      validate: (v: unknown) => typeof v === 'string' && /^[a-z0-9][a-z0-9._-]{0,63}$/.test(v),
      defaultMessage: () => PROVIDER_RULE,
    },
  });
}

export class BudgetCheckRequest {
  @IsUUID('all', { message: 'must be a uuid' })
  user_id!: string;

  @Optional()
  @IsMicrosAmount()
  amount_micros?: number;
}

/**
 * Either `amount_micros`, or the token form (`provider`, `model`, `max_input_tokens`,
 * `max_output_tokens`) priced at the most such a request can cost. The service checks that
 * exactly one form is given.
 */
export class BudgetReserveRequest {
  @IsRequestId()
  request_id!: string;

  @IsUUID('all', { message: 'must be a uuid' })
  user_id!: string;

  @Optional()
  @IsMicrosAmount()
  amount_micros?: number;

  @Optional()
  @IsProvider()
  provider?: string;

  @Optional()
  @IsModelId()
  model?: string;

  @Optional()
  @IsTokenCount()
  max_input_tokens?: number;

  @Optional()
  @IsTokenCount()
  max_output_tokens?: number;

  @Optional()
  @IsInt({ message: 'must be an integer number of seconds' })
  @Min(1, { message: 'must be at least 1' })
  @Max(MAX_RESERVATION_TTL_SECONDS, { message: `must not exceed ${MAX_RESERVATION_TTL_SECONDS}` })
  ttl_seconds?: number;
}

export class BudgetReleaseRequest {
  @IsUUID('all', { message: 'must be a uuid' })
  reservation_id!: string;
}

/** The body of `aigov.usage.recorded` and of `POST /api/v2/ai/usage`. */
export class UsageRecord {
  @IsRequestId()
  request_id!: string;

  @IsUUID('all', { message: 'must be a uuid' })
  user_id!: string;

  @IsProvider()
  provider!: string;

  @IsModelId()
  model!: string;

  @IsTokenCount()
  input_tokens!: number;

  @IsTokenCount()
  output_tokens!: number;

  @Optional()
  @IsTokenCount()
  cache_read_tokens?: number;

  @Optional()
  @IsTokenCount()
  cache_write_tokens?: number;

  @Optional()
  @IsString({ message: 'must be an RFC 3339 timestamp' })
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'must be an RFC 3339 timestamp' })
  occurred_at?: string;

  @Optional()
  @IsUUID('all', { message: 'must be a uuid' })
  reservation_id?: string;
}

export type LimitSourceName = 'user_override' | 'group';

/** The reply of a check; reserve replies carry these fields too. */
export interface BudgetCheckReply {
  allowed: boolean;
  reason?: DenialReason;
  limit_source: LimitSourceName | null;
  spend_limit_micros: number | null;
  spent_micros: number;
  held_micros: number;
  remaining_micros: number | null;
  effective_group_id: string | null;
  period_start: string;
  period_end: string;
}

export interface BudgetReserveReply extends BudgetCheckReply {
  reservation_id?: string;
  amount_micros: number;
  expires_at?: string;
  /** A replay of a request id granted before: the first reservation, whatever became of it. */
  duplicate?: boolean;
}

export interface BudgetReleaseReply {
  released: boolean;
}

export interface UsageReply {
  request_id: string;
  cost_micros: number | null;
  price_source: 'default' | 'custom' | null;
  effective_group_id: string | null;
  duplicate: boolean;
  reservation_settled: boolean;
}

/** `aigov.budget.threshold`, once per user, period and threshold. */
export interface BudgetThresholdEvent {
  user_id: string;
  effective_group_id: string | null;
  threshold_percent: 85 | 100;
  spent_micros: number;
  spend_limit_micros: number;
  period_start: string;
}
