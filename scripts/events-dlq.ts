import { describeNatsSettings } from '@aigov/config';
import {
  DLQ_STREAM,
  IDENTITY_DLQ_SUBJECT,
  originalPayload,
  parseDeadLetter,
  type NatsConnection,
} from '@aigov/contracts';
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { scriptNats, stdio, type Io } from './script-nats';

/**
 * npm run events:dlq -- list [--limit N]
 * npm run events:dlq -- replay [--seq N]
 * Lists the identity dead letters kept in the DLQ stream (oldest first), or publishes the original
 * event of one (or every) dead letter again on its original subject and then deletes that dead
 * letter. Exit 0 on success; 1 on a NATS problem or a dead letter that could not be replayed; 2 on usage.
 */
const USAGE = 'usage: npm run events:dlq -- list [--limit N] | replay [--seq N]';

type Command = { kind: 'list'; limit: number } | { kind: 'replay'; seq: number | null };

function parseArgs(args: string[]): Command | null {
  const [command, flag, value, ...rest] = args;
  if (rest.length > 0) return null;
  const positive = (v: string | undefined): number | null =>
    v !== undefined && /^\d{1,15}$/.test(v) && Number(v) > 0 ? Number(v) : null;
  if (command === 'list') {
    if (flag === undefined) return { kind: 'list', limit: 100 };
    const limit = flag === '--limit' ? positive(value) : null;
    return limit === null ? null : { kind: 'list', limit };
  }
  if (command === 'replay') {
    if (flag === undefined) return { kind: 'replay', seq: null };
    const seq = flag === '--seq' ? positive(value) : null;
    return seq === null ? null : { kind: 'replay', seq };
  }
  return null;
}

export async function main(
  args: string[],
  env?: Record<string, string | undefined>,
  io: Io = stdio,
): Promise<number> {
  const command = parseArgs(args);
  if (!command) {
    io.err(USAGE);
    return 2;
  }
  const connected = await scriptNats(env, 'aigov-events-dlq', 'there is no NATS, hence no dead letters.', io);
  if (typeof connected === 'number') return connected;
  const { config, nc } = connected;
  try {
    return command.kind === 'list' ? await list(nc, command.limit, io) : await replay(nc, command.seq, io);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      io.err(
        `There is no ${DLQ_STREAM} stream at ${describeNatsSettings(config.nats)}: nothing was dead-lettered yet.`,
      );
      return 1;
    }
    io.err(`events:dlq failed at ${describeNatsSettings(config.nats)}: ${(err as Error).message}`);
    return 1;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The stored identity dead letters, oldest first (deleted sequence numbers are skipped). */
async function* deadLetters(nc: NatsConnection, only: number | null) {
  const jsm = await jetstreamManager(nc);
  const state = (await jsm.streams.info(DLQ_STREAM)).state;
  const first = only ?? state.first_seq;
  const last = only ?? state.last_seq;
  for (let seq = first; seq <= last && state.messages > 0; seq++) {
    const stored = await jsm.streams.getMessage(DLQ_STREAM, { seq }).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
      throw err;
    });
    if (!stored || stored.subject !== IDENTITY_DLQ_SUBJECT) continue;
    yield { stored, letter: parseDeadLetter(stored.data), jsm };
  }
}

async function list(nc: NatsConnection, limit: number, io: Io): Promise<number> {
  const rows: string[] = [];
  for await (const { stored, letter } of deadLetters(nc, null)) {
    const event = letter?.event as { id?: unknown } | undefined;
    const id = typeof event?.id === 'string' ? event.id : '-';
    rows.push(
      [
        stored.seq,
        stored.time.toISOString(),
        letter?.reason ?? 'unreadable',
        letter?.subject ?? '-',
        id,
      ].join('\t'),
    );
    if (rows.length >= limit) break;
  }
  io.out(['seq', 'time', 'reason', 'subject', 'event_id'].join('\t'));
  for (const row of rows) io.out(row);
  io.err(`${rows.length} dead letter${rows.length === 1 ? '' : 's'}`);
  return 0;
}

async function replay(nc: NatsConnection, seq: number | null, io: Io): Promise<number> {
  const js = jetstream(nc);
  let replayed = 0;
  let failed = 0;
  for await (const { stored, letter, jsm } of deadLetters(nc, seq)) {
    if (!letter) {
      io.err(`DLQ seq ${stored.seq}: not a dead letter this tool can read; left in place`);
      failed++;
      continue;
    }
    try {
      const ack = await js.publish(letter.subject, originalPayload(letter));
      await jsm.streams.deleteMessage(DLQ_STREAM, stored.seq);
      io.out(`replayed DLQ seq ${stored.seq} to ${letter.subject} (stream ${ack.stream} seq ${ack.seq})`);
      replayed++;
    } catch (err) {
      io.err(`DLQ seq ${stored.seq}: replay failed: ${(err as Error).message}; left in place`);
      failed++;
    }
  }
  if (seq !== null && replayed + failed === 0) {
    io.err(`There is no identity dead letter with DLQ seq ${seq}.`);
    return 1;
  }
  io.err(`${replayed} replayed${failed > 0 ? `, ${failed} failed` : ''}`);
  return failed > 0 ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`events:dlq failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
