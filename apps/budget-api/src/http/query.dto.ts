import { Transform } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import type { Counted } from '@aigov/db';

/** Query strings arrive as text: only plain digit strings become numbers, the rest fails IsInt. */
export const toStrictInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;

/**
 * The deepest page a list serves. OFFSET reads and discards every row before the page, so an
 * unbounded offset is unbounded work; 100,000 rows still answer in well under a second.
 */
export const MAX_OFFSET = 100_000;
const LIMIT_RULE = 'must be an integer between 1 and 1000';
const OFFSET_RULE = `must be an integer between 0 and ${MAX_OFFSET}`;

export class PageQuery {
  @IsOptional()
  @Transform(toStrictInt)
  @IsInt({ message: LIMIT_RULE })
  @Min(1, { message: LIMIT_RULE })
  @Max(1000, { message: LIMIT_RULE })
  limit?: number;

  @IsOptional()
  @Transform(toStrictInt)
  @IsInt({ message: OFFSET_RULE })
  @Min(0, { message: OFFSET_RULE })
  @Max(MAX_OFFSET, { message: OFFSET_RULE })
  offset?: number;
}

export function page(q: PageQuery): { limit: number; offset: number } {
  return { limit: q.limit ?? 100, offset: q.offset ?? 0 };
}

/**
 * A list body: the items under their key and `count`; `count_capped: true` only when the count
 * stopped at the cap (there are more), so lists below it keep their shape.
 */
export function listBody<K extends string, T>(
  key: K,
  items: T[],
  counted: Counted,
): Record<K, T[]> & { count: number; count_capped?: true } {
  return {
    [key]: items,
    count: counted.count,
    ...(counted.countCapped ? { count_capped: true as const } : {}),
  } as Record<K, T[]> & { count: number; count_capped?: true };
}
