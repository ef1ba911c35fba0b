import { connect } from '@nats-io/transport-node';

/**
 * The floor of NATS request-reply on this machine: a process of its own that answers every
 * request on a subject (queue group, like the budget-api) with a fixed reply the size of a budget
 * check's, after decoding the request. No framework, no validation, no database. The bench runs
 * it as a contender so that the transport's own cost is measured beside aigov and the baseline.
 *
 *   node dist/bench/enforcement/echo-responder.js <nats url> <subject>
 *
 * Prints "ready" once subscribed; exits on SIGTERM after draining.
 */
async function main(): Promise<void> {
  const [url, subject] = process.argv.slice(2);
  if (!url || !subject) throw new Error('usage: echo-responder <nats url> <subject>');
  const nc = await connect({ servers: url, name: 'aigov-bench-echo' });
  const reply = new TextEncoder().encode(
    JSON.stringify({
      ok: true,
      data: {
        allowed: true,
        limit_source: 'group',
        spend_limit_micros: 1_000_000_000_000,
        spent_micros: 0,
        held_micros: 0,
        remaining_micros: 1_000_000_000_000,
        effective_group_id: '00000000-0000-4000-8000-000000000000',
        period_start: '2026-12-01T00:00:00.000Z',
        period_end: '2027-01-01T00:00:00.000Z',
      },
    }),
  );
  nc.subscribe(subject, {
    queue: 'bench-echo',
    callback: (err, msg) => {
      if (err) return;
      JSON.parse(new TextDecoder().decode(msg.data));
      msg.respond(reply);
    },
  });
  await nc.flush();
  process.once('SIGTERM', () => {
    void nc.drain().then(() => process.exit(0));
  });
  console.log('ready');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
