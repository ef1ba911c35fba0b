import { occurredAtProblem, periodOf, systemClock, type BudgetPeriod } from './period';

const at = (iso: string) => new Date(iso);

/** The period as ISO strings, easier to read in a failure. */
function period(kind: BudgetPeriod, iso: string) {
  const p = periodOf(kind, at(iso));
  return { start: p.start.toISOString(), end: p.end.toISOString(), startDate: p.startDate };
}

describe('periodOf', () => {
  describe('month', () => {
    it('the last millisecond of a month belongs to it, the next one to the next month', () => {
      expect(period('month', '2026-03-31T23:59:59.999Z')).toEqual({
        start: '2026-03-01T00:00:00.000Z',
        end: '2026-04-01T00:00:00.000Z',
        startDate: '2026-03-01',
      });
      expect(period('month', '2026-04-01T00:00:00.000Z')).toEqual({
        start: '2026-04-01T00:00:00.000Z',
        end: '2026-05-01T00:00:00.000Z',
        startDate: '2026-04-01',
      });
    });

    it('December ends at January 1 of the next year', () => {
      expect(period('month', '2026-12-31T23:59:59.999Z')).toEqual({
        start: '2026-12-01T00:00:00.000Z',
        end: '2027-01-01T00:00:00.000Z',
        startDate: '2026-12-01',
      });
    });

    it('February has 29 days in a leap year and 28 otherwise', () => {
      expect(period('month', '2028-02-29T12:00:00.000Z')).toEqual({
        start: '2028-02-01T00:00:00.000Z',
        end: '2028-03-01T00:00:00.000Z',
        startDate: '2028-02-01',
      });
      expect(period('month', '2027-03-01T00:00:00.000Z').startDate).toBe('2027-03-01');
      expect(period('month', '2027-02-28T23:59:59.999Z').end).toBe('2027-03-01T00:00:00.000Z');
    });

    it('uses UTC whatever the offset the instant was written with', () => {
      // 2026-03-31T23:30 at -02:00 is April 1 in UTC.
      expect(period('month', '2026-03-31T23:30:00-02:00').startDate).toBe('2026-04-01');
    });
  });

  describe('week (starts Monday)', () => {
    it('a Sunday 23:59:59.999 belongs to the week of the previous Monday', () => {
      // 2026-12-06 is a Sunday, 2026-11-30 a Monday.
      expect(period('week', '2026-12-06T23:59:59.999Z')).toEqual({
        start: '2026-11-30T00:00:00.000Z',
        end: '2026-12-07T00:00:00.000Z',
        startDate: '2026-11-30',
      });
      expect(period('week', '2026-12-07T00:00:00.000Z').startDate).toBe('2026-12-07');
    });

    it('a Monday at midnight starts its own week', () => {
      expect(period('week', '2026-11-30T00:00:00.000Z').startDate).toBe('2026-11-30');
      expect(period('week', '2026-11-29T23:59:59.999Z').startDate).toBe('2026-11-23');
    });

    it('crosses the year boundary', () => {
      // 2027-01-01 is a Friday: its week started on Monday 2026-12-28 and ends 2027-01-04.
      expect(period('week', '2027-01-01T08:00:00.000Z')).toEqual({
        start: '2026-12-28T00:00:00.000Z',
        end: '2027-01-04T00:00:00.000Z',
        startDate: '2026-12-28',
      });
      expect(period('week', '2027-01-03T23:59:59.999Z').startDate).toBe('2026-12-28');
      expect(period('week', '2027-01-04T00:00:00.000Z').startDate).toBe('2027-01-04');
    });

    it('every instant of a week maps to the same Monday', () => {
      const monday = Date.UTC(2028, 1, 28); // Monday, across the leap day 2028-02-29.
      for (let h = 0; h < 7 * 24; h++) {
        const p = periodOf('week', new Date(monday + h * 3_600_000));
        expect(p.startDate).toBe('2028-02-28');
        expect(p.end.toISOString()).toBe('2028-03-06T00:00:00.000Z');
      }
    });
  });

  describe('day', () => {
    it('is the UTC calendar day, end exclusive', () => {
      expect(period('day', '2028-02-29T23:59:59.999Z')).toEqual({
        start: '2028-02-29T00:00:00.000Z',
        end: '2028-03-01T00:00:00.000Z',
        startDate: '2028-02-29',
      });
      expect(period('day', '2028-03-01T00:00:00.000Z').startDate).toBe('2028-03-01');
    });
  });

  it('rejects an invalid date', () => {
    expect(() => periodOf('day', new Date('nope'))).toThrow(RangeError);
  });
});

describe('occurredAtProblem', () => {
  const now = at('2026-12-02T12:00:00.000Z');
  const ms = (delta: number) => new Date(now.getTime() + delta);
  const DAY = 86_400_000;

  it('accepts now and both edges exactly', () => {
    expect(occurredAtProblem(now, now)).toBeNull();
    expect(occurredAtProblem(now, ms(-35 * DAY))).toBeNull();
    expect(occurredAtProblem(now, at('2026-10-28T12:00:00.000Z'))).toBeNull(); // same, spelled out
    expect(occurredAtProblem(now, ms(5 * 60_000))).toBeNull();
  });

  it('rejects a millisecond past either edge, naming the rule', () => {
    expect(occurredAtProblem(now, ms(-35 * DAY - 1))).toBe(
      'occurred_at must lie within 35 days before and 5 minutes after now; it is older than 35 days.',
    );
    expect(occurredAtProblem(now, ms(5 * 60_000 + 1))).toBe(
      'occurred_at must lie within 35 days before and 5 minutes after now; it is more than 5 minutes in the future.',
    );
  });

  it('rejects an invalid date', () => {
    expect(occurredAtProblem(now, new Date('nope'))).toMatch(/occurred_at must be a valid/);
  });
});

describe('systemClock', () => {
  it('reads the real time', () => {
    const before = Date.now();
    const t = systemClock.now().getTime();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});
