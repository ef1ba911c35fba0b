import { randomUUID } from 'node:crypto';
import { stdio, type Io } from './script-nats';

/**
 * npm run example:gateway -- --token <ai-gateway or owner token> --user <user id> [--url http://127.0.0.1:8080]
 *   [--provider anthropic --model claude-sonnet-4-5]
 *
 * What an AI gateway does around one LLM call (docs/gateway-integration.md), over aigov's HTTP API:
 * 1. check: may this user spend at all?
 * 2. reserve: hold the most the request can cost (token form), before calling the model;
 * 3. (the model is called here; this example pretends it answered with some tokens);
 * 4. record the usage with the reservation id: the hold becomes the real cost;
 * 5. a second reservation that is not used is released.
 * Each step prints aigov's reply. Safe to run repeatedly (new request ids each time).
 */
const USAGE =
  'usage: gateway-example.js --token <token> --user <user id> [--url http://127.0.0.1:8080] [--provider p --model m]';

interface Options {
  url: string;
  token: string;
  user: string;
  provider: string;
  model: string;
}

function parseArgs(argv: string[]): Options | null {
  const o: Partial<Options> = {
    url: 'http://127.0.0.1:8080',
    provider: 'anthropic',
    model: 'claude-sonnet-4-5',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') as keyof Options;
    const value = argv[i + 1];
    if (!['url', 'token', 'user', 'provider', 'model'].includes(key) || value === undefined) return null;
    o[key] = value;
  }
  return o.token && o.user ? (o as Options) : null;
}

export async function main(argv: string[], io: Io): Promise<number> {
  const o = parseArgs(argv);
  if (!o) {
    io.err(USAGE);
    return 2;
  }
  const call = async (path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${o.url}/api/v2${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const reply = { status: res.status, body: await res.json() };
    io.out(`POST ${path} -> ${res.status} ${JSON.stringify(reply.body)}`);
    return reply;
  };

  const check = await call('/ai/budget/check', { user_id: o.user });
  if (check.status !== 200) return 1;
  if (!(check.body as { allowed: boolean }).allowed) {
    io.out('the gateway refuses the request: the user may not spend now');
    return 0;
  }

  const requestId = `example-${randomUUID()}`;
  const reserve = await call('/ai/budget/reserve', {
    request_id: requestId,
    user_id: o.user,
    provider: o.provider,
    model: o.model,
    max_input_tokens: 20_000,
    max_output_tokens: 2_000,
    ttl_seconds: 120,
  });
  const held = reserve.body as { allowed?: boolean; reservation_id?: string };
  if (reserve.status !== 200 || !held.allowed) {
    io.out('the gateway refuses the request: the reservation was not granted');
    return 0;
  }

  // Here the gateway calls the model. Pretend it used these tokens:
  await call('/ai/usage', {
    request_id: requestId,
    user_id: o.user,
    provider: o.provider,
    model: o.model,
    input_tokens: 12_345,
    output_tokens: 678,
    cache_read_tokens: 4_000,
    reservation_id: held.reservation_id,
  });

  const unused = await call('/ai/budget/reserve', {
    request_id: `example-${randomUUID()}`,
    user_id: o.user,
    amount_micros: 10_000,
  });
  const unusedId = (unused.body as { reservation_id?: string }).reservation_id;
  if (unusedId) await call('/ai/budget/release', { reservation_id: unusedId });

  await call('/ai/budget/check', { user_id: o.user });
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2), stdio).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`example:gateway failed: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
