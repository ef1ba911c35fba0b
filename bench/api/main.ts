import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'pg';
import { GROUP_WITH_BUDGET_SQL, KEY_PRINCIPAL_SQL } from '@aigov/db';
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
 * connections, 10 s after a warm-up) on the real budget-api and, in the same run, on minimal
 * Fastify + pg handlers doing the same queries without Nest, auth rules or validation. Three
 * rounds (the servers in rotated order each round) because the machine's load moves absolute
 * figures a lot: each round prints requests/s, p50 and p99 and the ratios measured in that round,
 * and the summary gives the median ratio. Numbers, not assertions.
 *
 *   npm run bench:api [-- --duration 10 --connections 50 --rounds 3 --database-url postgres://...]
 *                     [--profile <dir>]   (runs every server with node --cpu-prof into <dir>/<server>;
 *                                          summarise with dist/bench/api/profile-summary.js)
 */

const DURATION = Number(arg('duration', '10'));
const CONNECTIONS = Number(arg('connections', '50'));
const ADMIN_URL = arg('database-url', 'postgres://postgres@127.0.0.1:5432/postgres');
const ROUNDS = Number(arg('rounds', '3'));
const PROFILE_DIR = arg('profile', '');

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc (Linux). CPU per request
 * is the figure that survives a shared, loaded machine: requests/s moves with the neighbours'
 * load, the work each request costs the server does not. Null where /proc is missing.
 */
function cpuMs(pid: number | undefined): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), counted after the command name here.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
const CLOCK_TICKS = 100;

interface Result {
  cpuUsPerRequest: number | null;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, token: string, duration: number, pid?: number): Promise<Result> {
  const cpuBefore = cpuMs(pid);
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    duration,
    headers: { authorization: `Bearer ${token}` },
  });
  const cpuAfter = cpuMs(pid);
  return {
    cpuUsPerRequest:
      cpuBefore === null || cpuAfter === null || r.requests.total === 0
        ? null
        : ((cpuAfter - cpuBefore) * 1000) / r.requests.total,
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
    const { child: api, base } = await startBudgetApi(dbUrl, {
      nodeArgs: PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(PROFILE_DIR, 'aigov')}`] : [],
      // DATABASE_POOL_SIZE is split between the statement pool (reads outside transactions)
      // and TypeORM's: 20 gives the reads the same 10 connections the baselines have.
      env: { DATABASE_POOL_SIZE: '20' },
    });
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
        [
          ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(PROFILE_DIR, mode)}`] : []),
          path.join(ROOT, 'dist', 'bench', 'api', 'baseline-server.js'),
          String(port),
          dbUrl,
          mode,
          // The statements themselves, so the same-SQL baseline cannot drift from libs/db.
          JSON.stringify({ principal: KEY_PRINCIPAL_SQL, groupWithBudget: GROUP_WITH_BUDGET_SQL }),
        ],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      children.push(child);
      await waitFor(`http://127.0.0.1:${port}/`, child);
      return { port, pid: child.pid };
    };
    const naive = await startBaseline('naive');
    const sameSql = await startBaseline('same');

    const target = (port: number) => `http://127.0.0.1:${port}/api/v2/groups/${group}/ai/budget`;
    const servers = [
      { name: 'aigov budget-api (Nest)', port: apiPort, pid: api.pid },
      { name: 'baseline: 3 plain queries', port: naive.port, pid: naive.pid },
      { name: "baseline: aigov's 2 prepared", port: sameSql.port, pid: sameSql.pid },
    ];
    console.log(
      `${ROUNDS} rounds; each server gets a 3 s warm-up then ${DURATION} s with ${CONNECTIONS} connections`,
    );
    const header = `${'server'.padEnd(28)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(7)} ${'CPU us/req'.padStart(10)}`;
    const row = (name: string, r: Result) =>
      `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(8)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${String(r.errors + r.non2xx).padStart(7)} ${(r.cpuUsPerRequest?.toFixed(0) ?? '-').padStart(10)}`;
    const vsNaive: number[] = [];
    const vsSame: number[] = [];
    const cpuVsSame: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Rotated so no server always runs first (or right after the heaviest one).
      const order = [...servers.slice(round % 3), ...servers.slice(0, round % 3)];
      const results = new Map<string, Result>();
      for (const s of order) {
        await load(target(s.port), token, 3);
        results.set(s.name, await load(target(s.port), token, DURATION, s.pid));
      }
      const [real, bare, same] = servers.map((s) => results.get(s.name)!);
      console.log(`\nround ${round + 1} (order: ${order.map((s) => s.name.split(' ')[0]).join(', ')})`);
      console.log(header);
      for (const s of servers) console.log(row(s.name, results.get(s.name)!));
      vsNaive.push(real.rps / bare.rps);
      vsSame.push(real.rps / same.rps);
      if (real.cpuUsPerRequest && same.cpuUsPerRequest)
        cpuVsSame.push(same.cpuUsPerRequest / real.cpuUsPerRequest);
      console.log(
        `aigov / naive: ${(real.rps / bare.rps).toFixed(2)}x; aigov / same SQL: ${(real.rps / same.rps).toFixed(2)}x the requests/s (p99 ${(real.p99 / Math.max(same.p99, 0.001)).toFixed(2)}x)`,
      );
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
    console.log(`\naigov vs naive Fastify + pg: median ${median(vsNaive).toFixed(2)}x (${list(vsNaive)})`);
    console.log(
      `aigov vs the same SQL on bare Fastify + pg (the cost of Nest, auth, validation, logs, metrics): median ${median(vsSame).toFixed(2)}x (${list(vsSame)})`,
    );
    if (cpuVsSame.length > 0)
      console.log(
        `server CPU per request, same-SQL baseline / aigov: median ${median(cpuVsSame).toFixed(2)}x (${list(cpuVsSame)})`,
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
