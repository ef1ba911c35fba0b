import type { FieldValidation } from '@aigov/errors';
import { Transform } from 'class-transformer';
import { IsIn, IsOptional, IsString, MaxLength, MinLength, ValidateBy } from 'class-validator';
import { PageQuery } from '../http/query.dto';
import { CheckDto } from '../http/validators';

export const AUDIT_ACTIONS = ['create', 'write', 'delete'] as const;
/** The resource types audit entries carry (CONTRACT 1.5): a filter on any other matches nothing. */
export const AUDIT_RESOURCE_TYPES = [
  'ai_model_price',
  'ai_model_price_sync',
  'api_key',
  'group',
  'group_ai_budget',
  'group_member',
  'organization',
  'organization_member',
  'user',
  'user_ai_budget_override',
  'user_roles',
] as const;

// RFC 3339 date-time: `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123+02:00`.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;
const RFC3339_RULE = 'must be an RFC 3339 timestamp such as 2024-05-01T00:00:00Z';

/** The instant of an RFC 3339 timestamp, or null when the text is not one (a 30 February included). */
export function parseRfc3339(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const m = RFC3339.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    return null;
  }
  if (m[9] !== undefined && (Number(m[10]) > 23 || Number(m[11]) > 59)) return null;
  const date = new Date(value.toUpperCase());
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * An unencoded `+` in a query string arrives as a space: `since=2024-05-01T00:00:00+02:00` sent
 * as is must not fail, so a space where the offset sign belongs is read as `+`.
 */
const plusFromQuery = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' ? value.replace(/ (\d{2}:\d{2})$/, '+$1') : value;

function IsRfc3339(): PropertyDecorator {
  return ValidateBy({
    name: 'isRfc3339',
    validator: {
      validate: (value: unknown) => parseRfc3339(value) !== null,
      defaultMessage: () => RFC3339_RULE,
    },
  });
}

/** An empty window is a mistake in the request, not an empty answer. */
const windowRule = (q: AuditLogQuery): FieldValidation[] => {
  const since = parseRfc3339(q.since);
  const until = parseRfc3339(q.until);
  return since && until && until < since ? [{ field: 'until', detail: 'must not be before since' }] : [];
};

@CheckDto(windowRule)
export class AuditLogQuery extends PageQuery {
  @IsOptional()
  @IsIn(AUDIT_RESOURCE_TYPES, { message: `must be one of ${AUDIT_RESOURCE_TYPES.join(', ')}` })
  resource_type?: (typeof AUDIT_RESOURCE_TYPES)[number];

  @IsOptional()
  @MaxLength(512, { message: 'must be at most 512 characters' })
  @MinLength(1, { message: 'must not be empty' })
  @IsString({ message: 'must be a single resource id' })
  resource_id?: string;

  @IsOptional()
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @MinLength(1, { message: 'must not be empty' })
  @IsString({ message: 'must be a single username or system actor name' })
  actor?: string;

  @IsOptional()
  @IsIn(AUDIT_ACTIONS, { message: `must be one of ${AUDIT_ACTIONS.join(', ')}` })
  action?: (typeof AUDIT_ACTIONS)[number];

  @IsOptional()
  @IsRfc3339()
  @Transform(plusFromQuery)
  since?: string;

  @IsOptional()
  @IsRfc3339()
  @Transform(plusFromQuery)
  until?: string;
}
