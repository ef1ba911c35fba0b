import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'pg';
import {
  ROOT,
  arg,
  createBenchDatabase,
  firstUser,
  freePort,
  startBudgetApi,
  stop,
  waitFor,
} from '../shared/budget-api';

/**
 * bench/api: load GET /api/v2/groups/{group}/ai/budget with a valid token (autocannon, 50
 * connections, 10 s after a warm-up) on the real budget-api and, in the same run, on a minimal
 * Fastify + pg handler doing the same queries without Nest, auth rules or validation.
 * Prints requests/s, p50 and p99 of both and the ratio. Numbers, not assertions.
 *
 *   npm run bench:api [-- --duration 10 --connections 50 --database-url postgres://...]
 */

const DURATION = Number(arg('duration', '10'));
const CONNECTIONS = Number(arg('connections', '50'));
const ADMIN_URL = arg('database-url', 'postgres://postgres@127.0.0.1:5432/postgres');

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, token: string, duration: number): Promise<Result> {
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    duration,
    headers: { authorization: `Bearer ${token}` },
  });
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

async function main(): Promise<void> {
  const database = await createBenchDatabase(ADMIN_URL, 'aigov_bench_api');
  const dbUrl = database.url;
  const children: ChildProcess[] = [];
  try {
    const { child: api, base } = await startBudgetApi(dbUrl);
    children.push(api);
    const apiPort = Number(new URL(base).port);
    const token = await firstUser(base, 'bench');
    const db = new Client({ connectionString: dbUrl });
    await db.connect();
    const { rows } = await db.query<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    await db.end();
    const group = rows[0].id;
    const put = await fetch(`${base}/api/v2/groups/${group}/ai/budget`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ spend_limit_micros: 500_000_000 }),
    });
    if (put.status !== 200) throw new Error(`PUT budget: ${put.status}`);

    const startBaseline = async (mode: string) => {
      const port = await freePort();
      const child = spawn(
        process.execPath,
        [path.join(ROOT, 'dist', 'bench', 'api', 'baseline-server.js'), String(port), dbUrl, mode],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      children.push(child);
      await waitFor(`http://127.0.0.1:${port}/`, child);
      return port;
    };
    const basePort = await startBaseline('naive');
    const samePort = await startBaseline('same');

    const target = (port: number) => `http://127.0.0.1:${port}/api/v2/groups/${group}/ai/budget`;
    console.log(`warm-up 3 s each, then ${DURATION} s with ${CONNECTIONS} connections`);
    await load(target(apiPort), token, 3);
    const real = await load(target(apiPort), token, DURATION);
    await load(target(basePort), token, 3);
    const bare = await load(target(basePort), token, DURATION);
    await load(target(samePort), token, 3);
    const same = await load(target(samePort), token, DURATION);

    const row = (name: string, r: Result) =>
      `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(8)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${String(r.errors + r.non2xx).padStart(7)}`;
    console.log(
      `${'server'.padEnd(28)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(7)}`,
    );
    console.log(row('aigov budget-api (Nest)', real));
    console.log(row('baseline: 3 plain queries', bare));
    console.log(row("baseline: aigov's 2 prepared", same));
    const ratio = (a: Result, b: Result) =>
      `${(a.rps / b.rps).toFixed(2)}x the requests/s, p99 ${(a.p99 / Math.max(b.p99, 0.001)).toFixed(2)}x`;
    console.log(`aigov vs naive Fastify + pg: ${ratio(real, bare)}`);
    console.log(
      `aigov vs the same SQL on bare Fastify + pg (the cost of Nest, auth, validation, logs, metrics): ${ratio(real, same)}`,
    );
  } finally {
    await Promise.all(children.map(stop));
    await database.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
