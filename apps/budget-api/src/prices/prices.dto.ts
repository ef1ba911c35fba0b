import { PRICE_SYNC_SOURCES } from '@aigov/contracts';
import type { FieldValidation } from '@aigov/errors';
import {
  IsDefined,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { PageQuery } from '../http/query.dto';
import { CheckDto, ValidateNestedList } from '../http/validators';

/** USD 10,000 per million tokens: the same ceiling as the price seed generator. */
export const MAX_PRICE_MICROS = 10_000_000_000;
export const MAX_TIERS = 20;
/** Token counts above 10^12 are rejected everywhere. */
export const MAX_CONTEXT_TOKENS = 1_000_000_000_000;
export const PRICE_FIELDS = ['input_price', 'output_price', 'cache_read_price', 'cache_write_price'] as const;

const PRICE_RULE = `must be null or an integer from 0 to ${MAX_PRICE_MICROS} (micro-USD per million tokens)`;

/**
 * A price key: required, and either null (unknown) or an integer number of micros per million
 * tokens in range. class-validator runs the decorator applied first (the one nearest the property)
 * first, so the presence and type checks are applied before the range checks.
 */
function Price(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    const name = String(key);
    // null is a valid price ("unknown"); undefined (a missing key) is not.
    ValidateIf((o: Record<string, unknown>) => o[name] !== null)(target, name);
    IsDefined({ message: `is required and ${PRICE_RULE}` })(target, name);
    IsInt({ message: PRICE_RULE })(target, name);
    Min(0, { message: 'must not be negative' })(target, name);
    Max(MAX_PRICE_MICROS, {
      message: `must not exceed ${MAX_PRICE_MICROS} (USD 10,000 per million tokens)`,
    })(target, name);
  };
}

export class PriceTierDto {
  @Max(MAX_CONTEXT_TOKENS, { message: `must not exceed ${MAX_CONTEXT_TOKENS}` })
  @Min(0, { message: 'must not be negative' })
  @IsInt({ message: 'must be an integer number of tokens >= 0' })
  @IsDefined({ message: 'is required and must be an integer number of tokens >= 0' })
  min_context_tokens!: number;

  @Price() input_price!: number | null;
  @Price() output_price!: number | null;
  @Price() cache_read_price!: number | null;
  @Price() cache_write_price!: number | null;
}

/** At least one price is known, and tiers are in strictly increasing order of context size. */
function priceRules(body: PutPriceDto): FieldValidation[] {
  const problems: FieldValidation[] = [];
  if (PRICE_FIELDS.every((f) => body[f] === null)) {
    for (const f of PRICE_FIELDS) {
      problems.push({ field: f, detail: 'at least one of the four prices must not be null' });
    }
  }
  const tiers = body.tiers ?? [];
  for (let i = 1; i < tiers.length; i++) {
    if (tiers[i].min_context_tokens <= tiers[i - 1].min_context_tokens) {
      problems.push({
        field: `tiers[${i}].min_context_tokens`,
        detail: `must be greater than tiers[${i - 1}].min_context_tokens (${tiers[i - 1].min_context_tokens}): tiers are in strictly increasing order`,
      });
    }
  }
  return problems;
}

@CheckDto(priceRules)
export class PutPriceDto {
  @Price() input_price!: number | null;
  @Price() output_price!: number | null;
  @Price() cache_read_price!: number | null;
  @Price() cache_write_price!: number | null;

  @IsOptional()
  @ValidateNestedList(() => PriceTierDto, MAX_TIERS, 'tiers or null')
  tiers?: PriceTierDto[] | null;
}

export class ListPricesQuery extends PageQuery {
  @IsOptional()
  @MaxLength(64, { message: 'must be at most 64 characters' })
  @MinLength(1, { message: 'must not be empty' })
  @IsString({ message: 'must be a single provider id' })
  provider?: string;

  @IsOptional()
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @MinLength(1, { message: 'must not be empty' })
  @IsString({ message: 'must be a single model id' })
  model?: string;

  @IsOptional()
  @IsIn(['default', 'custom'], { message: 'must be default or custom' })
  source?: 'default' | 'custom';
}

/** `GET .../{provider}/{model}/history`: a page, nothing else. */
export class ListPriceChangesQuery extends PageQuery {}

export class SyncPricesDto {
  @IsIn(PRICE_SYNC_SOURCES, { message: `must be one of ${PRICE_SYNC_SOURCES.join(', ')}` })
  @IsDefined({ message: `is required and must be one of ${PRICE_SYNC_SOURCES.join(', ')}` })
  source!: (typeof PRICE_SYNC_SOURCES)[number];
}
