import { describeNatsSettings } from '@aigov/config';
import { PRICE_SYNC_SOURCES, SUBJECTS } from '@aigov/contracts';
import { scriptNats, stdio } from './script-nats';

/**
 * npm run prices:sync -- embedded|upstream
 * Asks a running pricing worker to sync the price book over NATS (`pricing.sync`), with the same
 * NATS settings as the apps (NATS_URL, NATS_CREDS, NATS_TOKEN, NATS_TLS_*), and prints its reply.
 * Exit 0 when the worker answered ok; 1 on an error reply, no reply or no connection; 2 on usage.
 */
const USAGE = `usage: npm run prices:sync -- ${PRICE_SYNC_SOURCES.join('|')}`;

interface RequestErrorLike {
  name?: string;
  message?: string;
  isNoResponders?: () => boolean;
  cause?: unknown;
}

async function main(args: string[]): Promise<number> {
  const source = args[0];
  if (args.length !== 1 || !(PRICE_SYNC_SOURCES as readonly string[]).includes(source)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const connected = await scriptNats(
    undefined,
    'aigov-prices-sync',
    'there is no NATS to send pricing.sync on.',
    stdio,
  );
  if (typeof connected === 'number') return connected;
  const { config, nc } = connected;
  const timeout = config.priceSyncTimeoutMs;
  try {
    const reply = await nc.request(SUBJECTS.pricingSync, JSON.stringify({ source }), { timeout });
    const text = reply.string();
    const parsed = parseReply(text);
    process.stdout.write(`${parsed === null ? text : JSON.stringify(parsed, null, 2)}\n`);
    if (parsed?.ok === true) return 0;
    const code = typeof parsed?.error?.code === 'string' ? parsed.error.code : 'unknown';
    const message = typeof parsed?.error?.message === 'string' ? parsed.error.message : 'unreadable reply';
    process.stderr.write(`Price sync failed (${code}): ${message}\n`);
    return 1;
  } catch (err) {
    process.stderr.write(`${explain(err as RequestErrorLike, timeout, describeNatsSettings(config.nats))}\n`);
    return 1;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

interface Envelope {
  ok?: unknown;
  error?: { code?: unknown; message?: unknown };
}

function parseReply(text: string): Envelope | null {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null ? value : null;
  } catch {
    return null;
  }
}

function explain(e: RequestErrorLike, timeout: number, where: string): string {
  const cause = (e.cause ?? {}) as RequestErrorLike;
  if (e.isNoResponders?.() || cause.name === 'NoRespondersError') {
    return `No pricing worker answered pricing.sync at ${where}: is the pricing worker running (npm start)?`;
  }
  if (/permission/i.test(`${e.message ?? ''} ${cause.message ?? ''}`)) {
    return (
      `NATS refused it at ${where}: ${e.message ?? ''}. This user needs permission to publish ` +
      'pricing.sync and to subscribe to _INBOX.> (see docs/nats-security.md).'
    );
  }
  if (e.name === 'TimeoutError' || cause.name === 'TimeoutError') {
    return `No answer to pricing.sync within ${timeout} ms (PRICE_SYNC_TIMEOUT_MS) at ${where}.`;
  }
  return `pricing.sync failed at ${where}: ${e.message ?? 'unknown error'}`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`prices:sync failed: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
