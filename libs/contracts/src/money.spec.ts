import { formatUsd, moneyDiff } from './money';

describe('formatUsd', () => {
  it.each([
    [500_000_000n, '$500.00'],
    [9n, '$0.000009'],
    [0n, '$0.00'],
    [1_500_000n, '$1.50'],
    [1_234_567n, '$1.234567'],
    [1_230_000n, '$1.23'],
    [1_234_500n, '$1.2345'],
    [1_000_000_000_000n, '$1000000.00'],
    [-2_500_000n, '-$2.50'],
  ])('%p micros is %s', (micros, text) => {
    expect(formatUsd(micros)).toBe(text);
  });

  it('puts dollars next to micros, and keeps null', () => {
    expect(moneyDiff(75_000n)).toEqual({ usd: '$0.075', micros: 75_000 });
    expect(moneyDiff(null)).toBeNull();
  });
});
