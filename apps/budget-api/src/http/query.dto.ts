import { Transform } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

/** Query strings arrive as text: only plain digit strings become numbers, the rest fails IsInt. */
export const toStrictInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;

export class PageQuery {
  @IsOptional()
  @Transform(toStrictInt)
  @IsInt({ message: 'must be an integer between 1 and 1000' })
  @Min(1, { message: 'must be an integer between 1 and 1000' })
  @Max(1000, { message: 'must be an integer between 1 and 1000' })
  limit?: number;

  @IsOptional()
  @Transform(toStrictInt)
  @IsInt({ message: 'must be an integer >= 0' })
  @Min(0, { message: 'must be an integer >= 0' })
  offset?: number;
}

export function page(q: PageQuery): { limit: number; offset: number } {
  return { limit: q.limit ?? 100, offset: q.offset ?? 0 };
}
