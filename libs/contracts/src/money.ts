/**
 * Money is integer micro-USD (1 USD = 1,000,000 micros) everywhere. These helpers only format it
 * for people (audit diffs): "$500.00", "$0.000009", "$1,234.5" is never produced.
 */
export function formatUsd(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const dollars = abs / 1_000_000n;
  let fraction = (abs % 1_000_000n).toString().padStart(6, '0');
  while (fraction.length > 2 && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  return `${negative ? '-' : ''}$${dollars.toString()}.${fraction}`;
}

/** An amount for an audit diff: dollars for people next to the exact micros. */
export function moneyDiff(micros: bigint | null): { usd: string; micros: number } | null {
  if (micros === null) return null;
  return { usd: formatUsd(micros), micros: Number(micros) };
}
