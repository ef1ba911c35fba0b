import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Client, Pool } from 'pg';
import { BUDGET_SUBJECTS, USAGE_CONSUMER, USAGE_STREAM, cloudEvent } from '@aigov/contracts';
import {
  SpendRepository,
  UPSERT_DEFAULT_PRICES_SQL,
  createDataSource,
  initializeDataSource,
} from '@aigov/db';
import { ROOT, arg, createBenchDatabase, firstUser, startBudgetApi, stop } from '../shared/budget-api';
import { cpuSeconds, migrateDatabase, startEchoResponder, startNatsServer } from '../shared/services';

/**
 * bench/enforcement: the budget enforcement path of the budget-api (CONTRACT 4.3, 2.5, 7) under
 * load, against a bare `pg` Pool doing the least SQL that could decide the same thing, in the
 * same run on the same database.
 *
 * Seed (SQL, after the first user made the default organization): `--users` members of it, 10
 * budgeted groups. 90% of the users are in large-budget groups (10^12 micros) and every 20th of
 * them also has a large override; 10% are only in a limited group (`--limited-micros`), so they
 * run out during the reservation phases and their reservations are then denied. The price book
 * gets the committed seed (apps/pricing-worker/seed/prices.json) as the pricing worker would
 * apply it.
 *
 * Rounds (`--rounds`, the contenders in rotated order each round), each contender a warm-up then
 * `--duration` seconds with `--clients` concurrent clients in this process, closed loop:
 * - check over NATS (`aigov.budget.check`), over HTTP (`POST /api/v2/ai/budget/check`, owner
 *   token), and the baseline: one indexed SELECT of the counter row by (user_id, period_start);
 * - reserve over NATS (`aigov.budget.reserve`), over HTTP, and the baseline: one atomic
 *   conditional UPDATE of the counter row (`held += amount WHERE spent + held + amount <= limit`).
 *   Reservations use the amount form, distinct request ids, random users.
 * The baseline works on counter rows of a period of its own (2000-01-01), removed before the
 * reconciliation, so it neither sees nor changes the service's counters.
 *
 * Then: check over NATS at a fixed offered load (`--rate` requests/s for `--rate-seconds`, open
 * loop: each request leaves at its scheduled time whatever the previous ones do, latency counted
 * from that scheduled time; beside it the server-side service time from the budget-api's
 * `aigov_budget_request_duration_seconds` histogram, read from /metrics before and after, with
 * its event loop delay and GC time over the phase); usage ingestion: `--usage` records published to
 * `aigov.usage.recorded` on JetStream (distinct request ids, `--usage-users` users, priced models of
 * the seed), timed until all are in ai_usage, their total cost compared with the one computed
 * here, and the counters reconciled with the ledger (SpendRepository.listCounterDifferences).
 *
 * Before the rounds, the database transactions each kind of request costs are counted with
 * PostgreSQL's statistics (`--statement-sample` requests per contender, 10 s pauses for the counts).
 *
 * Parts whose route, handler or consumer is missing are reported "not available"; the rest runs.
 * Prints numbers and ratios (and the CPU each request cost every process), asserts no timing.
 *
 *   npm run bench:enforcement [-- --duration 10 --warmup 2 --clients 50 --rounds 3 --users 1000
 *     --rate 1000 --rate-seconds 10 --usage 20000 --usage-users 300
 *     --usage-format bare|cloudevent --statement-sample 1000 --cpu-prof <dir>
 *     --parts statements,rounds,rate,usage --contenders nats,http,sql,echo --kinds check,reserve
 *     --database-url postgres://...]
 */

const DURATION = Number(arg('duration', '10'));
const WARMUP = Number(arg('warmup', '2'));
const CLIENTS = Number(arg('clients', '50'));
const ROUNDS = Number(arg('rounds', '3'));
const USERS = Number(arg('users', '1000'));
const RATE = Number(arg('rate', '1000'));
const RATE_SECONDS = Number(arg('rate-seconds', '10'));
const USAGE = Number(arg('usage', '20000'));
const USAGE_USERS = Math.min(Number(arg('usage-users', '300')), USERS);
/** How usage records travel: the record as plain JSON (CONTRACT 4.3), or in a CloudEvents envelope. */
const USAGE_FORMAT = arg('usage-format', 'bare');
/** Which parts run (all by default): a subset makes a quick measurement of one figure. */
const PARTS = new Set(arg('parts', 'statements,rounds,rate,usage').split(','));
/** Which contenders and kinds the rounds run (all by default), e.g. for a profile of one of them. */
const ONLY_CONTENDERS = new Set(arg('contenders', 'nats,http,sql,echo').split(','));
const ONLY_KINDS = new Set(arg('kinds', 'check,reserve').split(','));
const ADMIN_URL = arg('database-url', 'postgres://postgres@127.0.0.1:5432/postgres');
/** A directory: the budget-api runs with node --cpu-prof there (summarise with bench/api/profile-summary). */
const CPU_PROFILE_DIR = arg('cpu-prof', '');
/** Statement pool of the budget-api: DATABASE_POOL_SIZE 20 gives it 10, as many as the baseline's. */
const API_POOL_SIZE = '20';
const BASELINE_POOL = 10;
const LIMITED_MICROS = BigInt(arg('limited-micros', '200000'));
const LARGE_MICROS = 1_000_000_000_000n;
const RESERVE_MICROS = 10_000;
const CHECK_MICROS = 10_000;
const BASELINE_PERIOD = '2000-01-01';
const GROUPS = 10;
const GOAL_RATIO = 0.5;
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * A backend that goes idle less than a second after its last statistics report keeps its counts
 * until PGSTAT_IDLE_INTERVAL (10 s) has passed (PostgreSQL 15): the wait before reading them.
 */
const STATS_SETTLE_MS = 11_000;
/** Requests per contender of the statement count. */
const STATEMENT_SAMPLE = Number(arg('statement-sample', '1000'));
const SEED_FILE = path.join(ROOT, 'apps', 'pricing-worker', 'seed', 'prices.json');
/** Distinct request ids across runs on the same database are not needed, but cost nothing. */
const RUN = randomBytes(3).toString('hex');

// ---------------------------------------------------------------------------------------------
// Small helpers

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const loadAvg = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The uuid PostgreSQL makes of md5(text)::uuid, so seeds and requests name the same rows. */
const uid = (text: string): string => {
  const h = createHash('md5').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const sqlUid = (expr: string) => `md5(${expr})::uuid`;
/**
 * Version 4 shaped (the API's validator refuses other version and variant digits), from md5 so
 * that every run seeds and asks for the same ids; $1 of the seed statements holds them in order.
 */
const userId = (u: number) => {
  const h = uid(`bench-user-${u}`);
  return `${h.slice(0, 14)}4${h.slice(15, 19)}${'89ab'[parseInt(h[19], 16) % 4]}${h.slice(20)}`;
};
const USER_IDS = Array.from({ length: USERS }, (_, k) => userId(k + 1));
/** Every 10th user is only in the limited group (group 0); the others in two large ones. */
const isLimited = (u: number) => u % 10 === 0;
const limitOf = (u: number): bigint => (isLimited(u) ? LIMITED_MICROS : LARGE_MICROS);

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Seed

/** Seed statements; `ids` is user number i and its id, from $1 (the user ids in order). */
function seedSql(org: string): [string, string][] {
  const ids = 'unnest($1::uuid[]) WITH ORDINALITY AS t(id, i)';
  const g = (expr: string) => sqlUid(`'bench-group-' || ${expr}`);
  return [
    [
      `${USERS} users`,
      `INSERT INTO users (id, username, email, name)
       SELECT id, 'bench-' || lpad(i::text, 6, '0'), 'bench-' || i || '@example.com', 'Bench ' || i FROM ${ids}`,
    ],
    [
      'all members of the default organization',
      `INSERT INTO organization_members (organization_id, user_id)
       SELECT '${org}', id FROM ${ids}`,
    ],
    [
      `${GROUPS} groups`,
      `INSERT INTO groups (id, organization_id, name)
       SELECT ${g('k')}, '${org}', 'bench-group-' || k FROM generate_series(0, ${GROUPS - 1}) k`,
    ],
    [
      'group budgets (group 0 limited, the others large)',
      `INSERT INTO group_ai_budgets (group_id, spend_limit_micros)
       SELECT ${g('k')}, CASE WHEN k = 0 THEN ${LIMITED_MICROS} ELSE ${LARGE_MICROS} - k END
         FROM generate_series(0, ${GROUPS - 1}) k`,
    ],
    [
      'group members (limited users in group 0 only, the others in two large groups)',
      `INSERT INTO group_members (group_id, user_id)
       SELECT ${g('0')}, id FROM ${ids} WHERE i % 10 = 0
       UNION ALL
       SELECT ${g('(1 + i % 9)')}, id FROM ${ids} WHERE i % 10 <> 0
       UNION ALL
       SELECT ${g('(1 + (i + 4) % 9)')}, id FROM ${ids} WHERE i % 10 <> 0`,
    ],
    [
      'a large override for every 20th unlimited user',
      `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros)
       SELECT id, ${g('(1 + i % 9)')}, ${LARGE_MICROS} FROM ${ids} WHERE i % 20 = 1`,
    ],
    [
      `baseline counter rows (period ${BASELINE_PERIOD})`,
      `INSERT INTO ai_spend_counters (user_id, period_start)
       SELECT id, '${BASELINE_PERIOD}' FROM ${ids}`,
    ],
  ];
}

interface SeedPrice {
  provider: string;
  model: string;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
  tiers: unknown;
}

/** Priced models without tiers, so the cost of a record is the plain formula of CONTRACT 7. */
function usageModels(seed: SeedPrice[]): SeedPrice[] {
  const priced = seed.filter((p) => p.tiers === null && p.input_price !== null && p.output_price !== null);
  const pick = (provider: string) => priced.filter((p) => p.provider === provider).slice(0, 4);
  return [...pick('anthropic'), ...pick('openai')];
}

/** cost = ceil((input * input_price + output * output_price) / 10^6), in BigInt. */
function costOf(p: SeedPrice, input: number, output: number): bigint {
  const raw = BigInt(input) * BigInt(p.input_price ?? 0) + BigInt(output) * BigInt(p.output_price ?? 0);
  return (raw + 999_999n) / 1_000_000n;
}

// ---------------------------------------------------------------------------------------------
// Load generation

type Outcome = 'granted' | 'denied' | 'error';

interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  granted: number;
  denied: number;
  errors: number;
  firstError: string | null;
  /** CPU microseconds per request of this process, the budget-api, nats-server and PostgreSQL. */
  cpu: { client: number; api: number; nats: number; pg: number };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Processes {
  apiPid: number;
  natsPid: number;
  /** PostgreSQL backends serving the bench database (sampled before and after). */
  pgPids: () => Promise<number[]>;
  /** Transactions committed and rolled back in the bench database so far. */
  xacts: () => Promise<{ commit: number; rollback: number }>;
}

async function cpuSnapshot(procs: Processes): Promise<{
  client: number;
  api: number;
  nats: number;
  pg: Map<number, number>;
}> {
  const c = process.cpuUsage();
  const pg = new Map<number, number>();
  for (const pid of await procs.pgPids()) pg.set(pid, cpuSeconds(pid));
  return {
    client: (c.user + c.system) / 1e6,
    api: cpuSeconds(procs.apiPid),
    nats: cpuSeconds(procs.natsPid),
    pg,
  };
}

async function cpuPerRequest(
  procs: Processes,
  before: Awaited<ReturnType<typeof cpuSnapshot>>,
  requests: number,
): Promise<LoadResult['cpu']> {
  const after = await cpuSnapshot(procs);
  let pg = 0;
  // Backends that appeared during the run count from 0.
  for (const [pid, s] of after.pg) pg += s - (before.pg.get(pid) ?? 0);
  const per = (s: number) => (requests > 0 ? (s * 1e6) / requests : NaN);
  return {
    client: per(after.client - before.client),
    api: per(after.api - before.api),
    nats: per(after.nats - before.nats),
    pg: per(pg),
  };
}

/** `clients` loops, each sending its next request when the previous one is answered. */
async function closedLoop(
  op: (i: number) => Promise<Outcome>,
  seconds: number,
  procs: Processes | null,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  let granted = 0;
  let denied = 0;
  let errors = 0;
  let firstError: string | null = null;
  const before = procs ? await cpuSnapshot(procs) : null;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const i = next++;
      const s = performance.now();
      let o: Outcome;
      try {
        o = await op(i);
      } catch (err) {
        o = 'error';
        firstError ??= errorText(err);
      }
      latencies.push(performance.now() - s);
      if (o === 'granted') granted++;
      else if (o === 'denied') denied++;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    seconds: elapsed,
    rps: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    granted,
    denied,
    errors,
    firstError,
    cpu:
      procs && before
        ? await cpuPerRequest(procs, before, latencies.length)
        : { client: NaN, api: NaN, nats: NaN, pg: NaN },
  };
}

/**
 * Open loop: request i leaves at t0 + i / rate whatever became of the earlier ones. Latency is
 * counted from the scheduled time (so a stall of the sender or the server shows, instead of
 * quietly lowering the offered load), and also from the actual send.
 */
async function openLoop(
  op: (i: number) => Promise<Outcome>,
  rate: number,
  seconds: number,
  procs: Processes,
): Promise<{
  sent: number;
  seconds: number;
  fromSchedule: Float64Array;
  fromSend: Float64Array;
  errors: number;
  firstError: string | null;
  maxLagMs: number;
  cpu: LoadResult['cpu'];
}> {
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const fromSchedule = new Float64Array(total);
  const fromSend = new Float64Array(total);
  let errors = 0;
  let firstError: string | null = null;
  let maxLag = 0;
  const pending: Promise<void>[] = [];
  const before = await cpuSnapshot(procs);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    while (sent < total && t0 + sent * interval <= now) {
      const i = sent++;
      const scheduled = t0 + i * interval;
      const at = performance.now();
      maxLag = Math.max(maxLag, at - scheduled);
      pending.push(
        op(i)
          .catch((err: unknown): Outcome => {
            firstError ??= errorText(err);
            return 'error';
          })
          .then((o) => {
            const end = performance.now();
            fromSchedule[i] = end - scheduled;
            fromSend[i] = end - at;
            if (o === 'error') errors++;
          }),
      );
    }
    await sleep(1);
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  return {
    sent: total,
    seconds: elapsed,
    fromSchedule: fromSchedule.sort(),
    fromSend: fromSend.sort(),
    errors,
    firstError,
    maxLagMs: maxLag,
    cpu: await cpuPerRequest(procs, before, total),
  };
}

// ---------------------------------------------------------------------------------------------
// Server-side service time (the budget-api's histogram on /metrics)

const SERVICE_TIME_METRIC = 'aigov_budget_request_duration_seconds';

/** The budget-api's /metrics text ('' when it does not answer). */
async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`).catch(() => null);
  return res && res.status === 200 ? res.text() : '';
}

/** The sum of the samples of `name` (all label sets) in a /metrics text. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/**
 * What else the budget-api says about the phase: its event loop's worst delay (prom-client
 * resets that histogram at each scrape, so the second scrape covers the phase alone) and the
 * time it spent in garbage collection.
 */
const PROM_LAG_RESOLUTION_S = 0.01;
function runtimeSummary(before: string, after: string): string {
  if (!after) return '';
  const ms = (x: number) => (x * 1000).toFixed(1);
  const gc =
    metricSum(after, 'aigov_nodejs_gc_duration_seconds_sum') -
    metricSum(before, 'aigov_nodejs_gc_duration_seconds_sum');
  const gcCount =
    metricSum(after, 'aigov_nodejs_gc_duration_seconds_count') -
    metricSum(before, 'aigov_nodejs_gc_duration_seconds_count');
  // prom-client samples with a 10 ms timer and records whole intervals: the delay is the excess.
  const late = (name: string) => ms(Math.max(0, metricSum(after, name) - PROM_LAG_RESOLUTION_S));
  return (
    `; budget-api event loop delay p99 ${late('aigov_nodejs_eventloop_lag_p99_seconds')} ms, ` +
    `max ${late('aigov_nodejs_eventloop_lag_max_seconds')} ms; GC ${ms(gc)} ms in ${fmt(gcCount)} pauses`
  );
}

/** Cumulative counts per upper bound (seconds) of the NATS check's service-time histogram; null when absent. */
function serviceTimeBuckets(text: string): Map<number, number> | null {
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${SERVICE_TIME_METRIC}_bucket{`)) continue;
    if (!line.includes('transport="nats"') || !line.includes(`subject="${BUDGET_SUBJECTS.check}"`)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le) buckets.set(le === '+Inf' ? Infinity : Number(le), Number(line.split(' ').pop()));
  }
  return buckets.size > 0 ? buckets : null;
}

/**
 * The q-quantile of the requests between two readings of the histogram, interpolated linearly
 * within its bucket (as PromQL's histogram_quantile), in milliseconds; negative (minus the
 * largest finite bound) when it lies beyond the largest finite bucket.
 */
function histogramQuantile(delta: [number, number][], q: number): number {
  const total = delta[delta.length - 1][1];
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of delta) {
    if (count >= rank) {
      // Past the largest finite bucket: only a lower bound is known.
      if (le === Infinity) return -lower * 1000;
      return (lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1)) * 1000;
    }
    lower = le;
    below = count;
  }
  return NaN;
}

function serviceTimeSummary(before: Map<number, number> | null, after: Map<number, number> | null): string {
  if (!after) return `server-side service time not available (no ${SERVICE_TIME_METRIC} on /metrics)`;
  const delta = [...after]
    .sort((a, b) => a[0] - b[0])
    .map(([le, n]): [number, number] => [le, n - (before?.get(le) ?? 0)]);
  const total = delta[delta.length - 1][1];
  if (total === 0) return 'server-side service time: no request observed';
  const q = (x: number) => {
    const ms = histogramQuantile(delta, x);
    return ms < 0 ? `over ${fmt(-ms)}` : ms.toFixed(2);
  };
  return (
    `server-side service time (budget-api histogram, receipt to reply, ${fmt(total)} requests) ` +
    `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`
  );
}

// ---------------------------------------------------------------------------------------------
// Transports

/** The decision in a reply: over NATS bare or in an {ok, data} envelope; over HTTP the body. */
function outcomeOf(reply: unknown): Outcome {
  let r = reply as Record<string, unknown> | null;
  if (r && r.ok === true && typeof r.data === 'object') r = r.data as Record<string, unknown>;
  if (r && typeof r.allowed === 'boolean') return r.allowed ? 'granted' : 'denied';
  throw new Error(`unexpected reply ${JSON.stringify(reply).slice(0, 200)}`);
}

function natsOp(nc: NatsConnection, subject: string, body: (i: number) => object) {
  return async (i: number): Promise<Outcome> => {
    const m = await nc.request(subject, JSON.stringify(body(i)), { timeout: REQUEST_TIMEOUT_MS });
    return outcomeOf(JSON.parse(m.string()));
  };
}

function httpOp(base: string, token: string, route: string, body: (i: number) => object) {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  return async (i: number): Promise<Outcome> => {
    const payload = JSON.stringify(body(i));
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: route,
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            authorization: `Bearer ${token}`,
          },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(payload);
    });
    if (status !== 200) throw new Error(`${route}: HTTP ${status} ${text.slice(0, 200)}`);
    return outcomeOf(JSON.parse(text));
  };
}

/** One request to see whether the route or handler exists; the reason when it does not. */
async function probe(op: (i: number) => Promise<Outcome>): Promise<string | null> {
  try {
    await op(-1);
    return null;
  } catch (err) {
    return errorText(err);
  }
}

// ---------------------------------------------------------------------------------------------

interface Contender {
  key: string;
  label: string;
  op: ((i: number) => Promise<Outcome>) | null;
  missing: string | null;
  /** The processes whose CPU it costs, when the server is not the budget-api. */
  procs?: Processes;
}

function row(label: string, r: LoadResult | null, missing: string | null): string {
  if (!r) return `  ${label.padEnd(30)} not available: ${(missing ?? '?').slice(0, 60)}`;
  const c = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-').padStart(5);
  return (
    `  ${label.padEnd(30)} ${fmt(r.rps).padStart(8)} ${r.p50.toFixed(2).padStart(7)} ${r.p99.toFixed(2).padStart(7)} ` +
    `${fmt(r.granted).padStart(8)} ${fmt(r.denied).padStart(7)} ${fmt(r.errors).padStart(6)}   ` +
    `${c(r.cpu.client)} ${c(r.cpu.api)} ${c(r.cpu.nats)} ${c(r.cpu.pg)}`
  );
}
const HEADER =
  `  ${'contender'.padEnd(30)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ` +
  `${'allowed'.padStart(8)} ${'denied'.padStart(7)} ${'errors'.padStart(6)}   CPU µs/request: client   api  nats    pg`;

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${loadAvg()}, node ${process.version}`,
  );
  console.log(
    `configuration: ${CLIENTS} clients, ${ROUNDS} rounds of ${WARMUP} s warm-up + ${DURATION} s per contender, ` +
      `${fmt(USERS)} users (${fmt(Math.floor(USERS / 10))} limited to ${fmt(Number(LIMITED_MICROS))} micros), ` +
      `open loop ${fmt(RATE)}/s for ${RATE_SECONDS} s, ${fmt(USAGE)} usage records over ${USAGE_USERS} users (${USAGE_FORMAT})`,
  );
  const cleanup: (() => Promise<void>)[] = [];
  const availability: string[] = [];
  try {
    const database = await createBenchDatabase(ADMIN_URL, 'aigov_bench_enf');
    cleanup.push(database.drop);
    migrateDatabase(database.url);

    const db = new Client({ connectionString: database.url, application_name: 'aigov-bench-monitor' });
    await db.connect();
    cleanup.push(() => db.end().catch(() => undefined));
    const seedText = fs.readFileSync(SEED_FILE, 'utf8');
    const seed = JSON.parse(seedText) as SeedPrice[];
    await db.query(UPSERT_DEFAULT_PRICES_SQL, [seedText, 'bench', 'embedded', `bench-${RUN}`]);

    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    // The transport's floor: a bare responder on a subject of its own (bench/enforcement/echo-responder.ts).
    const echo = await startEchoResponder(nats.url, 'bench.echo.check');
    cleanup.push(() => stop(echo));
    const { child: api, base } = await startBudgetApi(database.url, {
      env: { NATS_ENABLED: 'true', NATS_URL: nats.url, DATABASE_POOL_SIZE: API_POOL_SIZE },
      nodeArgs: CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROFILE_DIR)}`] : [],
    });
    cleanup.push(() => stop(api));
    const token = await firstUser(base, 'bench');
    const org = (await db.query<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`))
      .rows[0].id;
    for (const [what, sql] of seedSql(org)) {
      const t0 = performance.now();
      await db.query(sql, sql.includes('$1') ? [USER_IDS] : []);
      console.log(`seeded ${what} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    }
    await db.query('VACUUM ANALYZE');

    const nc = await connect({ servers: nats.url, name: 'aigov-bench-enforcement' });
    cleanup.push(() => nc.drain().catch(() => undefined));
    const pool = new Pool({
      connectionString: database.url,
      max: BASELINE_POOL,
      application_name: 'aigov-bench-baseline',
    });
    cleanup.push(() => pool.end().catch(() => undefined));
    const monitorPid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const procs: Processes = {
      apiPid: api.pid!,
      natsPid: nats.child.pid!,
      pgPids: async () =>
        (
          await db.query<{ pid: number }>(
            'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2',
            [database.name, monitorPid],
          )
        ).rows.map((r) => r.pid),
      xacts: async () => {
        // Without it the statistics snapshot of this connection's transaction would not move.
        await db.query('SELECT pg_stat_clear_snapshot()');
        const r = await db.query<{ c: string; r: string }>(
          'SELECT xact_commit AS c, xact_rollback AS r FROM pg_stat_database WHERE datname = $1',
          [database.name],
        );
        return { commit: Number(r.rows[0].c), rollback: Number(r.rows[0].r) };
      },
    };

    // Requests: random users; reservations with request ids of their own.
    const rnd = random(7);
    const pickUser = () => 1 + Math.floor(rnd() * USERS);
    let reserveSeq = 0;
    const checkBody = () => ({ user_id: USER_IDS[pickUser() - 1], amount_micros: CHECK_MICROS });
    const reserveBody = (prefix: string) => () => ({
      request_id: `bench-${RUN}-${prefix}-${reserveSeq++}`,
      user_id: USER_IDS[pickUser() - 1],
      amount_micros: RESERVE_MICROS,
    });
    const baselineCheck = async (): Promise<Outcome> => {
      const u = pickUser();
      const r = await pool.query<{ spent_micros: string; held_micros: string }>({
        name: 'bench_check',
        text: 'SELECT spent_micros, held_micros FROM ai_spend_counters WHERE user_id = $1 AND period_start = $2',
        values: [USER_IDS[u - 1], BASELINE_PERIOD],
      });
      const c = r.rows[0];
      return c && BigInt(c.spent_micros) + BigInt(c.held_micros) + BigInt(CHECK_MICROS) <= limitOf(u)
        ? 'granted'
        : 'denied';
    };
    const baselineReserve = async (): Promise<Outcome> => {
      const u = pickUser();
      const r = await pool.query({
        name: 'bench_reserve',
        text: `UPDATE ai_spend_counters SET held_micros = held_micros + $3
                WHERE user_id = $1 AND period_start = $2 AND spent_micros + held_micros + $3 <= $4`,
        values: [USER_IDS[u - 1], BASELINE_PERIOD, RESERVE_MICROS, limitOf(u).toString()],
      });
      return r.rowCount === 1 ? 'granted' : 'denied';
    };

    const contenders: Record<'check' | 'reserve', Contender[]> = {
      check: [
        {
          key: 'nats',
          label: 'aigov, NATS',
          op: natsOp(nc, BUDGET_SUBJECTS.check, checkBody),
          missing: null,
        },
        {
          key: 'http',
          label: 'aigov, HTTP',
          op: httpOp(base, token, '/api/v2/ai/budget/check', checkBody),
          missing: null,
        },
        { key: 'sql', label: 'baseline: pg Pool, 1 SELECT', op: baselineCheck, missing: null },
        {
          key: 'echo',
          label: 'NATS echo (no work)',
          op: natsOp(nc, 'bench.echo.check', checkBody),
          missing: null,
          // Its "api" column is the responder's CPU.
          procs: { ...procs, apiPid: echo.pid! },
        },
      ],
      reserve: [
        {
          key: 'nats',
          label: 'aigov, NATS',
          op: natsOp(nc, BUDGET_SUBJECTS.reserve, reserveBody('nats')),
          missing: null,
        },
        {
          key: 'http',
          label: 'aigov, HTTP',
          op: httpOp(base, token, '/api/v2/ai/budget/reserve', reserveBody('http')),
          missing: null,
        },
        { key: 'sql', label: 'baseline: pg Pool, 1 UPDATE', op: baselineReserve, missing: null },
      ],
    };
    console.log('\navailability');
    for (const [kind, list] of Object.entries(contenders)) {
      for (const c of list) {
        c.missing = c.op ? await probe(c.op) : 'no client';
        const line = `${kind} ${c.label}: ${c.missing ? `not available (${c.missing})` : 'ok'}`;
        availability.push(line);
        console.log(`  ${line}`);
      }
    }

    // Statements per request: a fixed number of requests per contender, counted by PostgreSQL.
    // Apart from the timed rounds because its counters need a 10 s pause to be complete.
    const statementLines = PARTS.has('statements') ? await countStatements(contenders, procs) : ['skipped'];
    console.log(
      `\ndatabase transactions per request, ${fmt(STATEMENT_SAMPLE)} requests each (load average ${loadAvg()})`,
    );
    for (const l of statementLines) console.log(`  ${l}`);

    // Closed-loop rounds.
    const results: Record<string, LoadResult[]> = {};
    for (let round = 0; round < (PARTS.has('rounds') ? ROUNDS : 0); round++) {
      for (const kind of ['check', 'reserve'] as const) {
        if (!ONLY_KINDS.has(kind)) continue;
        const list = contenders[kind];
        const order = [...list.slice(round % list.length), ...list.slice(0, round % list.length)];
        const got = new Map<string, LoadResult>();
        for (const c of order) {
          if (c.missing || !c.op || !ONLY_CONTENDERS.has(c.key)) continue;
          await closedLoop(c.op, WARMUP, null);
          const r = await closedLoop(c.op, DURATION, c.procs ?? procs);
          got.set(c.key, r);
          (results[`${kind}/${c.key}`] ??= []).push(r);
          if (r.firstError)
            console.log(`  (${kind} ${c.label}: ${fmt(r.errors)} errors, first: ${r.firstError})`);
        }
        console.log(
          `\nround ${round + 1}, ${kind} (order: ${order.map((c) => c.key).join(', ')}; load average ${loadAvg()})`,
        );
        console.log(HEADER);
        for (const c of list) console.log(row(c.label, got.get(c.key) ?? null, c.missing));
        const sql = got.get('sql');
        for (const key of ['nats', 'http', 'echo']) {
          const r = got.get(key);
          if (r && sql)
            console.log(
              `  ${key === 'echo' ? 'NATS echo' : `aigov ${key.toUpperCase()}`} / baseline: ${(r.rps / sql.rps).toFixed(2)}x the requests/s`,
            );
        }
      }
    }

    // Fixed offered load over NATS.
    let openLine = 'not available';
    const natsCheck = contenders.check[0];
    if (!PARTS.has('rate')) {
      openLine = 'skipped';
    } else if (!natsCheck.missing && natsCheck.op) {
      const metricsBefore = await scrape(base);
      // This process's own stalls delay the sends and the reading of the replies alike.
      const benchLoop = monitorEventLoopDelay({ resolution: 1 });
      benchLoop.enable();
      const r = await openLoop(natsCheck.op, RATE, RATE_SECONDS, procs);
      benchLoop.disable();
      const metricsAfter = await scrape(base);
      const service =
        serviceTimeSummary(serviceTimeBuckets(metricsBefore), serviceTimeBuckets(metricsAfter)) +
        runtimeSummary(metricsBefore, metricsAfter) +
        // Whole 1 ms timer intervals are recorded: the delay is what exceeds 1 ms.
        `; this process's event loop delay p99 ${Math.max(0, benchLoop.percentile(99) / 1e6 - 1).toFixed(1)} ms, ` +
        `max ${Math.max(0, benchLoop.max / 1e6 - 1).toFixed(1)} ms`;
      const p = (a: Float64Array, q: number) => percentile(a, q).toFixed(2);
      openLine =
        `${fmt(r.sent)} checks at ${fmt(RATE)}/s offered (${fmt(r.sent / r.seconds)}/s achieved incl. the tail): ` +
        `latency from the scheduled time p50 ${p(r.fromSchedule, 50)} ms, p99 ${p(r.fromSchedule, 99)} ms, max ${p(r.fromSchedule, 100)} ms; ` +
        `from the send p50 ${p(r.fromSend, 50)} ms, p99 ${p(r.fromSend, 99)} ms; sender at most ${r.maxLagMs.toFixed(1)} ms late; ` +
        `${fmt(r.errors)} errors; CPU µs/request client ${r.cpu.client.toFixed(0)}, api ${r.cpu.api.toFixed(0)}, ` +
        `nats ${r.cpu.nats.toFixed(0)}, pg ${r.cpu.pg.toFixed(0)}; ${service}`;
      if (r.firstError) openLine += ` (first error: ${r.firstError})`;
      // The same rate of the baseline's one SELECT: the tail of a bare database round trip on
      // this machine, which bounds any service that makes one.
      const b = await openLoop(baselineCheck, RATE, RATE_SECONDS, procs);
      openLine +=
        `\n  baseline (one SELECT on the pg Pool) at the same rate: from the send p50 ${p(b.fromSend, 50)} ms, ` +
        `p99 ${p(b.fromSend, 99)} ms, max ${p(b.fromSend, 100)} ms; ${fmt(b.errors)} errors`;
    } else {
      openLine = `not available: ${natsCheck.missing}`;
    }
    console.log(`\nfixed offered load, check over NATS (load average ${loadAvg()})\n  ${openLine}`);

    // The baseline's counter rows go before anything is reconciled.
    await db.query('DELETE FROM ai_spend_counters WHERE period_start = $1', [BASELINE_PERIOD]);

    // Usage ingestion.
    console.log(`\nusage ingestion over JetStream (load average ${loadAvg()})`);
    const usageLine = PARTS.has('usage') ? await ingestUsage(nc, db, procs, usageModels(seed)) : 'skipped';
    console.log(`  ${usageLine}`);

    // Reconciliation of the counters with the ledger and the held reservations.
    const ds = createDataSource({ url: database.url, poolSize: 1, applicationName: 'aigov-bench-reconcile' });
    await initializeDataSource(ds, 'the bench database');
    let reconcileLine: string;
    try {
      const diffs = await new SpendRepository(ds).listCounterDifferences('month');
      reconcileLine =
        diffs.length === 0
          ? 'reconcile: no difference'
          : `reconcile: ${diffs.length} differences, first: ${diffs
              .slice(0, 5)
              .map(
                (d) =>
                  `${d.userId} ${d.periodStart} spent ${d.counterSpentMicros} vs ${d.ledgerSpentMicros}, held ${d.counterHeldMicros} vs ${d.ledgerHeldMicros}`,
              )
              .join('; ')}`;
    } finally {
      await ds.destroy();
    }
    const ledger = (
      await db.query<{ usage: string; held: string; reservations: string }>(
        `SELECT (SELECT count(*) FROM ai_usage) AS usage,
                (SELECT count(*) FROM ai_reservations WHERE status = 'held') AS held,
                (SELECT count(*) FROM ai_reservations) AS reservations`,
      )
    ).rows[0];
    console.log(
      `\n${reconcileLine} (${fmt(Number(ledger.usage))} usage rows, ${fmt(Number(ledger.reservations))} reservations of which ${fmt(Number(ledger.held))} held)`,
    );

    // Summary.
    console.log(`\nsummary (median over ${ROUNDS} rounds; load average now ${loadAvg()})`);
    console.log(HEADER);
    const med = (rs: LoadResult[]): LoadResult => {
      const m = (f: (r: LoadResult) => number) => median(rs.map(f));
      return {
        requests: m((r) => r.requests),
        seconds: m((r) => r.seconds),
        rps: m((r) => r.rps),
        p50: m((r) => r.p50),
        p99: m((r) => r.p99),
        granted: rs.reduce((s, r) => s + r.granted, 0),
        denied: rs.reduce((s, r) => s + r.denied, 0),
        errors: rs.reduce((s, r) => s + r.errors, 0),
        firstError: null,
        cpu: {
          client: m((r) => r.cpu.client),
          api: m((r) => r.cpu.api),
          nats: m((r) => r.cpu.nats),
          pg: m((r) => r.cpu.pg),
        },
      };
    };
    for (const kind of ['check', 'reserve'] as const) {
      console.log(`  ${kind}`);
      for (const c of contenders[kind]) {
        const rs = results[`${kind}/${c.key}`];
        console.log(row(c.label, rs ? med(rs) : null, c.missing));
      }
    }
    console.log('  (allowed, denied and errors are totals over the rounds)');
    console.log('\nratios aigov / baseline (requests/s, per round, median; goal for NATS >= 0.5x)');
    for (const kind of ['check', 'reserve'] as const) {
      const sql = results[`${kind}/sql`];
      for (const key of ['nats', 'http', 'echo']) {
        const rs = results[`${kind}/${key}`];
        if (key === 'echo' && !rs) continue;
        if (!rs || !sql) {
          console.log(`  ${kind} ${key.toUpperCase()}: not available`);
          continue;
        }
        const ratios = rs.map((r, i) => r.rps / sql[i].rps);
        const m = median(ratios);
        const goal =
          key === 'nats'
            ? `; goal ${GOAL_RATIO}x ${m >= GOAL_RATIO ? 'met' : 'NOT met'}`
            : key === 'echo'
              ? ' (the floor of NATS request-reply here: no framework, no database)'
              : '';
        // What the ratio would be if all four processes were CPU bound on a machine of their own.
        const total = (c: LoadResult['cpu']) => c.client + c.api + c.nats + c.pg;
        const cpuRatios = rs.map((r, i) => total(sql[i].cpu) / total(r.cpu));
        console.log(
          `  ${kind} ${key.toUpperCase()}: ${m.toFixed(2)}x (${ratios.map((x) => x.toFixed(2)).join(' / ')})${goal}; ` +
            `CPU per request of all processes, baseline / aigov: ${median(cpuRatios).toFixed(2)}x`,
        );
      }
    }
    console.log('\ndatabase transactions per request (a statement outside a transaction is one)');
    for (const l of statementLines) console.log(`  ${l}`);
    console.log(`  check over NATS at ${fmt(RATE)}/s: ${openLine}`);
    console.log(`  usage ingestion: ${usageLine}`);
    console.log(`  ${reconcileLine}`);
    console.log(`
what bounds each figure
  - One machine of ${os.cpus().length} cores runs the load generator (this process), nats-server, the budget-api
    (one Node event loop) and PostgreSQL, and whatever else is running on it: requests/s is bounded by
    the CPU they share, not by any one of them. CPU µs per request (from /proc) is the figure that moves
    least with the machine's load; the budget-api's own column is what one more core would scale.
  - Latencies are client-side: they include this process's event loop, which also runs ${CLIENTS} clients.
  - The baseline runs no Nest, validation, authentication (HTTP), JSON replies or budget resolution: its
    check reads one counter row by primary key and decides with a limit known to the client; its reserve
    is one UPDATE of an existing row, no reservation row, no idempotency. Its ratio is the price of all that.
  - The budget-api reads through ${BASELINE_POOL} statement-pool connections (DATABASE_POOL_SIZE ${API_POOL_SIZE}); the
    baseline pool has ${BASELINE_POOL}.
  - Every reservation (aigov's, granted or not, and the baseline's UPDATE) is a commit with
    synchronous_commit on: WAL flushes bound the reserve figures more than the check figures.
  - Usage ingestion runs with the budget-api serving nothing else; its rate includes publishing (same process).
  - docs/benchmarks/enforcement.md has the figures of earlier runs and how to read them.`);
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch((err: unknown) => console.error(err));
  }
}

/**
 * Transactions (commits and rollbacks) the bench database sees per request, for each available
 * contender: `STATEMENT_SAMPLE` requests, then the wait that lets every backend report its counts,
 * less what the database does meanwhile without requests (the app's sweeper and outbox polls,
 * measured over one idle window first).
 */
async function countStatements(
  contenders: Record<'check' | 'reserve', Contender[]>,
  procs: Processes,
): Promise<string[]> {
  await sleep(STATS_SETTLE_MS);
  const idle0 = await procs.xacts();
  const t0 = performance.now();
  await sleep(STATS_SETTLE_MS);
  const idle1 = await procs.xacts();
  const idlePerMs =
    (idle1.commit + idle1.rollback - idle0.commit - idle0.rollback) / (performance.now() - t0);
  const lines = [`idle: ${(idlePerMs * 1000).toFixed(1)} transactions/s (subtracted below)`];
  for (const kind of ['check', 'reserve'] as const) {
    for (const c of contenders[kind]) {
      if (c.missing || !c.op) {
        lines.push(`${kind} ${c.label}: not available`);
        continue;
      }
      const op = c.op;
      const before = await procs.xacts();
      const start = performance.now();
      let next = 0;
      let errors = 0;
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (next < STATEMENT_SAMPLE) {
            next++;
            if ((await op(next).catch((): Outcome => 'error')) === 'error') errors++;
          }
        }),
      );
      await sleep(STATS_SETTLE_MS);
      const after = await procs.xacts();
      const idle = idlePerMs * (performance.now() - start);
      const all = after.commit + after.rollback - before.commit - before.rollback - idle;
      lines.push(
        `${kind} ${c.label}: ${(all / STATEMENT_SAMPLE).toFixed(2)} ` +
          `(of which rolled back ${((after.rollback - before.rollback) / STATEMENT_SAMPLE).toFixed(2)}; ` +
          `${fmt(STATEMENT_SAMPLE)} requests, ${errors} errors)`,
      );
    }
  }
  return lines;
}

/** Publishes the usage records, waits until all are in ai_usage, checks their total cost. */
async function ingestUsage(
  nc: NatsConnection,
  db: Client,
  procs: Processes,
  models: SeedPrice[],
): Promise<string> {
  const jsm: JetStreamManager = await jetstreamManager(nc);
  // The consumer creates its stream when it starts; wait a little in case it is still starting.
  let missing: string | null = 'unknown';
  for (let i = 0; i < 50 && missing; i++) {
    try {
      await jsm.streams.info(USAGE_STREAM);
      await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
      missing = null;
    } catch (err) {
      missing = errorText(err);
      await sleep(100);
    }
  }
  if (missing) return `not available (stream ${USAGE_STREAM} / consumer ${USAGE_CONSUMER}: ${missing})`;
  if (models.length === 0) return 'not available (no priced model without tiers in the seed)';

  const rnd = random(11);
  let expected = 0n;
  const bodies: string[] = [];
  for (let i = 0; i < USAGE; i++) {
    const model = models[i % models.length];
    const input = 100 + Math.floor(rnd() * 4000);
    const output = 10 + Math.floor(rnd() * 1000);
    expected += costOf(model, input, output);
    const record = {
      request_id: `bench-usage-${RUN}-${i}`,
      // Users 1..USAGE_USERS, limited ones included (usage is recorded whatever the limit).
      user_id: USER_IDS[i % USAGE_USERS],
      provider: model.provider,
      model: model.model,
      input_tokens: input,
      output_tokens: output,
    };
    bodies.push(
      JSON.stringify(
        USAGE_FORMAT === 'bare'
          ? record
          : cloudEvent(BUDGET_SUBJECTS.usageRecorded, 'aigov/bench-enforcement', record),
      ),
    );
  }
  const count = async () =>
    Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM ai_usage')).rows[0].n);
  const before = await count();
  const js = jetstream(nc);
  const cpu0 = await cpuSnapshot(procs);
  const t0 = performance.now();
  let published = -1;
  let next = 0;
  // 64 publishes in flight hide the round trip of each acknowledgement.
  const publisher = Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < bodies.length) await js.publish(BUDGET_SUBJECTS.usageRecorded, bodies[next++]);
    }),
  ).then(() => {
    published = performance.now() - t0;
  });
  let n: number;
  let lastProgress = performance.now();
  let last = 0;
  for (;;) {
    n = (await count()) - before;
    const now = performance.now();
    if (n !== last) {
      last = n;
      lastProgress = now;
    }
    if (n >= USAGE || now - lastProgress > 30_000) break;
    await sleep(100);
  }
  const ms = performance.now() - t0;
  await publisher;
  const cpu = await cpuPerRequest(procs, cpu0, Math.max(n, 1));
  const total = BigInt(
    (
      await db.query<{ s: string | null }>(
        `SELECT sum(cost_micros)::text AS s FROM ai_usage WHERE request_id LIKE $1`,
        [`bench-usage-${RUN}-%`],
      )
    ).rows[0].s ?? '0',
  );
  const info = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER).catch(() => null);
  const consumer = info
    ? `; consumer: ${fmt(info.num_pending)} pending, ${fmt(info.num_ack_pending)} unacknowledged, ${fmt(info.num_redelivered)} redelivered`
    : '';
  const head =
    n >= USAGE
      ? `${fmt(USAGE)} records in ai_usage ${(ms / 1000).toFixed(2)} s after the first publish: ${fmt(USAGE / (ms / 1000))} records/s`
      : `only ${fmt(n)} of ${fmt(USAGE)} records in ai_usage (no progress for 30 s, ${(ms / 1000).toFixed(1)} s after the first publish)`;
  return (
    `${head} (publishing took ${(published / 1000).toFixed(2)} s); cost total ${total} micros, ` +
    `${total === expected ? 'as computed here' : `computed here ${expected}: DIFFERENT`}; ` +
    `CPU µs/record client ${cpu.client.toFixed(0)}, api ${cpu.api.toFixed(0)}, nats ${cpu.nats.toFixed(0)}, pg ${cpu.pg.toFixed(0)}${consumer}`
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
