import type { BudgetPeriod } from '@aigov/config';

// Budget periods and the occurred_at window (CONTRACT 7). UTC calendar only: a period must be the
// same for every process and every database session, whatever their time zone.

export type { BudgetPeriod };

export interface Period {
  /** Inclusive. */
  start: Date;
  /** Exclusive: the start of the next period. */
  end: Date;
  /** `YYYY-MM-DD` of start (UTC): the `period_start date` key of ai_spend_counters. */
  startDate: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A usage record may be this old (CONTRACT 7), so last month's usage can still land. */
export const OCCURRED_AT_MAX_AGE_MS = 35 * DAY_MS;
/** ...and this far in the future, to absorb clock skew between the gateway and us. */
export const OCCURRED_AT_MAX_AHEAD_MS = 5 * 60 * 1000;

/** The period containing `instant`. Weeks start on Monday (ISO 8601). */
export function periodOf(kind: BudgetPeriod, instant: Date): Period {
  const t = instant.getTime();
  if (Number.isNaN(t)) throw new RangeError('periodOf: invalid date');
  const y = instant.getUTCFullYear();
  const m = instant.getUTCMonth();
  const d = instant.getUTCDate();
  let start: number;
  let end: number;
  switch (kind) {
    case 'month':
      start = Date.UTC(y, m, 1);
      end = Date.UTC(y, m + 1, 1); // Date.UTC carries month 12 into January of y + 1.
      break;
    case 'week': {
      // getUTCDay: Sunday = 0. Days since Monday: Monday 0 ... Sunday 6.
      const sinceMonday = (instant.getUTCDay() + 6) % 7;
      start = Date.UTC(y, m, d - sinceMonday); // Date.UTC carries day <= 0 into earlier months.
      end = Date.UTC(y, m, d - sinceMonday + 7);
      break;
    }
    case 'day':
      start = Date.UTC(y, m, d);
      end = Date.UTC(y, m, d + 1);
      break;
  }
  const startDate = new Date(start);
  return { start: startDate, end: new Date(end), startDate: startDate.toISOString().slice(0, 10) };
}

/**
 * Why `occurredAt` may not be recorded at `now`, or null when it lies within
 * [now - 35 days, now + 5 minutes], both ends included. The message states the rule for a 400.
 */
export function occurredAtProblem(now: Date, occurredAt: Date): string | null {
  const t = occurredAt.getTime();
  if (Number.isNaN(t)) return 'occurred_at must be a valid RFC 3339 timestamp.';
  const rule = 'occurred_at must lie within 35 days before and 5 minutes after now';
  if (t < now.getTime() - OCCURRED_AT_MAX_AGE_MS) return `${rule}; it is older than 35 days.`;
  if (t > now.getTime() + OCCURRED_AT_MAX_AHEAD_MS) {
    return `${rule}; it is more than 5 minutes in the future.`;
  }
  return null;
}

/** The source of "now" for services, so tests can pin periods and the occurred_at window. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
