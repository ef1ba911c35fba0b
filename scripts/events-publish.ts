import { describeNatsSettings } from '@aigov/config';
import { IDENTITY_SUBJECT_LIST, cloudEvent } from '@aigov/contracts';
import { jetstream } from '@nats-io/jetstream';
import { scriptNats, stdio, type Io } from './script-nats';

/**
 * npm run events:publish -- <subject> '<json data>'
 * Publishes one identity event through JetStream, wrapped in a CloudEvent (fresh id, time now,
 * source aigov/events-publish), with the apps' NATS settings, and prints where it was stored.
 * Exit 0 when JetStream stored it; 1 when it did not or NATS is unreachable; 2 on usage.
 */
export const SOURCE = 'aigov/events-publish';
const USAGE =
  "usage: npm run events:publish -- <subject> '<json data>'\n" +
  `subjects: ${IDENTITY_SUBJECT_LIST.join(', ')}`;

export async function main(
  args: string[],
  env?: Record<string, string | undefined>,
  io: Io = stdio,
): Promise<number> {
  if (args.length !== 2) {
    io.err(USAGE);
    return 2;
  }
  const [subject, text] = args;
  if (!(IDENTITY_SUBJECT_LIST as readonly string[]).includes(subject)) {
    io.err(`Unknown subject "${subject}".\n${USAGE}`);
    return 2;
  }
  let data: unknown;
  try {
    data = JSON.parse(text) as unknown;
  } catch (err) {
    io.err(`The data is not JSON: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    io.err(`The data must be a JSON object like '{"user_id": "..."}'.\n${USAGE}`);
    return 2;
  }
  const connected = await scriptNats(
    env,
    'aigov-events-publish',
    'there is no NATS to publish identity events on.',
    io,
  );
  if (typeof connected === 'number') return connected;
  const { config, nc } = connected;
  const where = describeNatsSettings(config.nats);
  try {
    const event = cloudEvent(subject, SOURCE, data);
    const ack = await jetstream(nc).publish(subject, JSON.stringify(event));
    io.out(`published ${subject} id ${event.id} to stream ${ack.stream} seq ${ack.seq}`);
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string | number };
    if (
      /no responders|503|jetstream is not enabled/i.test(`${e.message} ${e.code ?? ''}`) ||
      e.name === 'NoRespondersError'
    ) {
      io.err(
        `No JetStream stream stores ${subject} at ${where}: start the membership listener once ` +
          '(it creates the IDENTITY stream), or check that JetStream is enabled (nats-server -js).',
      );
    } else {
      io.err(`Publishing ${subject} failed at ${where}: ${e.message}`);
    }
    return 1;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`events:publish failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
