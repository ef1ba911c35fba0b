import { q, type Db, type Page } from './types';

/**
 * A list's `count` is exact up to this many rows; above it the count stops there and says so
 * (`countCapped`). Counting every matching row of a large table (a million audit entries, an
 * organization of 100,000 members) costs more than the page itself; counting up to the cap costs
 * about a millisecond (docs/decisions/list-counts.md).
 */
export const COUNT_CAP = 10_000;

export interface Counted {
  count: number;
  /** true: there are more than `count` (= COUNT_CAP) matching rows. */
  countCapped: boolean;
}

/**
 * The count that goes with a page. `fromWhere` is the list query's `FROM ... WHERE ...` (without
 * ORDER BY or LIMIT) and `params` its parameters. A page that is neither empty nor full already
 * tells the total, so no second statement is needed then.
 */
export async function countFor(
  db: Db,
  page: Page,
  rowsOnPage: number,
  fromWhere: string,
  params: unknown[],
): Promise<Counted> {
  if (rowsOnPage > 0 && rowsOnPage < page.limit) return exact(page.offset + rowsOnPage);
  const rows = await q<{ n: number }[]>(
    db,
    `SELECT count(*)::int AS n FROM (SELECT 1 ${fromWhere} LIMIT ${COUNT_CAP + 1}) capped`,
    params,
  );
  return rows[0].n > COUNT_CAP ? { count: COUNT_CAP, countCapped: true } : exact(rows[0].n);
}

const exact = (count: number): Counted => ({ count, countCapped: false });
