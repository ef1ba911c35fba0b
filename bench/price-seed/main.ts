// `npm run bench:price-seed`: times the three ways of applying the price seed (single jsonb
// statement, per-row loop, UNNEST arrays) against real PostgreSQL, for the
// committed anthropic+openai seed and for a seed of every models.dev provider. It prints numbers
// and never judges them; it exits non-zero only when the approaches disagree or something fails.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  createDataSource,
  initializeDataSource,
  redactUrl,
  runMigrationsLocked,
  type SeedApplyCounts,
} from '@aigov/db';
import type { DataSource, QueryRunner } from 'typeorm';
import { fetchCatalogue } from '../../apps/pricing-worker/src/generator/fetch-catalogue';
import { buildSeed, formatSeed } from '../../apps/pricing-worker/src/generator/seed';
import { APPROACHES, parseSeedRows, singleStatement, type Approach } from './approaches';

const USAGE = [
  'Usage: npm run bench:price-seed -- [--database-url <url>] [--fixture <api.json>]',
  '  --database-url  PostgreSQL server to create a throw-away database on',
  '                  (default postgres://postgres@127.0.0.1:5432/postgres)',
  '  --fixture       models.dev api.json used for the all-provider seed',
  '                  (default test/fixtures/models-dev/api.json, a copy of the shared snapshot)',
].join('\n');

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const SMALL_SEED_PATH = path.join('apps', 'pricing-worker', 'seed', 'prices.json');
const WARMUP_RUNS = 2;

type SeedSize = 'small' | 'large';
type Scenario = 'cold' | 'warm';

interface Seed {
  label: string;
  size: SeedSize;
  json: string;
  rows: number;
}

/** Measured runs per seed size (after the warm-up runs). */
type Iterations = Record<SeedSize, number>;
const POSTGRES_ITERATIONS: Iterations = { small: 15, large: 7 };

interface Measurement {
  database: string;
  seed: Seed;
  scenario: Scenario;
  approach: Approach;
  samplesNs: bigint[];
}

class CorrectnessError extends Error {
  constructor(message: string) {
    super(`correctness mismatch: ${message}`);
    this.name = 'CorrectnessError';
  }
}

interface CliOptions {
  databaseUrl: string;
  fixture?: string;
  help: boolean;
}

class UsageError extends Error {}

function parseCli(argv: string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        'database-url': { type: 'string' },
        fixture: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values } = parsed;
  return {
    databaseUrl: values['database-url'] ?? DEFAULT_DATABASE_URL,
    fixture: values.fixture,
    help: values.help,
  };
}

/** The directory holding package.json: the same answer from bench/ under src or dist/. */
function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
}

function log(line: string): void {
  // Progress goes to stderr so stdout holds only the report.
  process.stderr.write(`${line}\n`);
}

async function loadSeeds(repoRoot: string, fixture: string): Promise<Seed[]> {
  const smallJson = await fs.promises.readFile(path.join(repoRoot, SMALL_SEED_PATH), 'utf8');
  const catalogue = await fetchCatalogue(fixture);
  if (typeof catalogue !== 'object' || catalogue === null || Array.isArray(catalogue)) {
    throw new Error(`${fixture} is not an object of providers`);
  }
  // formatSeed gives the same text the generator would commit, so approach 1 gets real input.
  const largeJson = formatSeed(buildSeed(catalogue, Object.keys(catalogue)));
  return [
    { label: 'anthropic+openai', size: 'small', json: smallJson, rows: parseSeedRows(smallJson).length },
    { label: 'all providers', size: 'large', json: largeJson, rows: parseSeedRows(largeJson).length },
  ];
}

/**
 * Fingerprint of what the seed left in the table. COLLATE "C" so that it does not depend on the
 * server's default collation.
 */
const CONTENTS_SQL = `
SELECT count(*)::int AS n,
       md5(string_agg(row_to_json(t)::text, ',' ORDER BY provider COLLATE "C", model COLLATE "C")) AS md5
  FROM (SELECT provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers
          FROM ai_model_prices) t`;

async function verifyContents(
  qr: QueryRunner,
  seed: Seed,
  reference: Map<string, string>,
  where: string,
): Promise<void> {
  const [{ n, md5 }] = (await qr.query(CONTENTS_SQL)) as { n: number; md5: string | null }[];
  if (n !== seed.rows) throw new CorrectnessError(`${where}: table has ${n} rows, seed has ${seed.rows}`);
  const expected = reference.get(seed.label);
  if (expected === undefined) {
    reference.set(seed.label, md5 ?? '');
  } else if (md5 !== expected) {
    throw new CorrectnessError(`${where}: table fingerprint ${md5 ?? 'null'} differs from ${expected}`);
  }
}

function verifyCounts(counts: SeedApplyCounts, seed: Seed, scenario: Scenario, where: string): void {
  // Cold: every row is new. Warm: the IS DISTINCT FROM guard must leave every row alone.
  const expected =
    scenario === 'cold'
      ? { total: seed.rows, inserted: seed.rows, updated: 0 }
      : { total: seed.rows, inserted: 0, updated: 0 };
  if (
    counts.total !== expected.total ||
    counts.inserted !== expected.inserted ||
    counts.updated !== expected.updated
  ) {
    throw new CorrectnessError(
      `${where}: counts ${JSON.stringify(counts)}, expected ${JSON.stringify(expected)} for a ${scenario} run`,
    );
  }
}

async function timedApply(
  qr: QueryRunner,
  approach: Approach,
  seedJson: string,
): Promise<{ ns: bigint; counts: SeedApplyCounts }> {
  // JS preparation is inside the timed region: at startup the seed is text either way.
  const started = process.hrtime.bigint();
  const counts = await approach.prepare(seedJson)(qr);
  return { ns: process.hrtime.bigint() - started, counts };
}

/** Rotates the approach order each round so none always runs right after the heavy loop. */
function rotated<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

async function benchDatabase(
  database: string,
  ds: DataSource,
  seeds: Seed[],
  iterations: Iterations,
  reference: Map<string, string>,
): Promise<Measurement[]> {
  const measurements: Measurement[] = [];
  // One pinned connection for everything, as the worker's startup apply would use.
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    for (const seed of seeds) {
      for (const scenario of ['cold', 'warm'] as const) {
        const runs = WARMUP_RUNS + iterations[seed.size];
        log(
          `${database}: ${seed.label} (${seed.rows} rows), ${scenario}, ${runs} rounds of ${APPROACHES.length} approaches`,
        );
        if (scenario === 'warm') {
          // Warm means the table already holds exactly this seed.
          await qr.query('TRUNCATE ai_model_prices');
          await singleStatement.prepare(seed.json)(qr);
        }
        const samples = new Map<Approach, bigint[]>(APPROACHES.map((a) => [a, []]));
        for (let round = 0; round < runs; round += 1) {
          for (const approach of rotated(APPROACHES, round)) {
            if (scenario === 'cold') await qr.query('TRUNCATE ai_model_prices');
            const { ns, counts } = await timedApply(qr, approach, seed.json);
            const where = `${database}, ${seed.label}, ${scenario}, ${approach.name}, round ${round + 1}`;
            verifyCounts(counts, seed, scenario, where);
            await verifyContents(qr, seed, reference, where);
            if (round >= WARMUP_RUNS) samples.get(approach)?.push(ns);
          }
        }
        for (const approach of APPROACHES) {
          measurements.push({ database, seed, scenario, approach, samplesNs: samples.get(approach) ?? [] });
        }
      }
    }
  } finally {
    await qr.release();
  }
  return measurements;
}

/** Runs cleanup without letting its failure hide the error that got us here. */
async function cleanup(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    process.exitCode = 1;
    log(`cleanup failed (${what}): ${(err as Error).message}`);
  }
}

async function serverLabel(ds: DataSource, product: string): Promise<string> {
  const [{ server_version: version }] = await ds.query<{ server_version: string }[]>('SHOW server_version');
  return `${product} ${version.split(' ')[0]}`;
}

/** Migrates a fresh database at `url`, runs the suite on it, and always closes the pool. */
async function benchUrl(
  url: string,
  product: string,
  seeds: Seed[],
  iterations: Iterations,
  reference: Map<string, string>,
): Promise<Measurement[]> {
  const ds = createDataSource({ url, poolSize: 2, applicationName: 'aigov-bench-price-seed' });
  await initializeDataSource(ds, product);
  try {
    await runMigrationsLocked(ds);
    return await benchDatabase(await serverLabel(ds, product), ds, seeds, iterations, reference);
  } finally {
    await cleanup(`closing ${product} connections`, () => ds.destroy());
  }
}

async function benchPostgres(
  adminUrl: string,
  seeds: Seed[],
  reference: Map<string, string>,
): Promise<Measurement[]> {
  const admin = createDataSource({ url: adminUrl, poolSize: 1, applicationName: 'aigov-bench-price-seed' });
  await initializeDataSource(admin, 'PostgreSQL');
  // Random hex only, so it is safe to splice into CREATE/DROP DATABASE (no parameters there).
  const dbName = `aigov_bench_${randomBytes(6).toString('hex')}`;
  try {
    await admin.query(`CREATE DATABASE ${dbName}`);
    log(`created database ${dbName} on ${redactUrl(adminUrl)}`);
    try {
      const url = new URL(adminUrl);
      url.pathname = `/${dbName}`;
      return await benchUrl(url.toString(), 'PostgreSQL', seeds, POSTGRES_ITERATIONS, reference);
    } finally {
      // FORCE in case a connection lingers after an error; PostgreSQL 13+.
      await cleanup(`dropping ${dbName}`, async () => {
        await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        log(`dropped database ${dbName}`);
      });
    }
  } finally {
    await cleanup('closing the admin connection', () => admin.destroy());
  }
}

function median(samples: bigint[]): bigint {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2n;
}

// Durations, not money: converting nanoseconds to fractional milliseconds is fine.
function ms(ns: bigint): string {
  return (Number(ns) / 1e6).toFixed(2);
}

function ratioText(approach: Approach, value: bigint, baseline: bigint): string {
  if (approach === singleStatement) return '1.00x (baseline)';
  const ratio = Number(value) / Number(baseline);
  const shown = ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2);
  // Below half a percent either way the word would only describe rounding noise.
  if (Math.abs(ratio - 1) < 0.005) return `${shown}x`;
  return ratio > 1 ? `${shown}x slower` : `${shown}x (faster)`;
}

function renderTable(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Median of the JS-only part (parse + flatten) that approaches 2 and 3 pay before any SQL. */
function jsPrepMedian(approach: Approach, seed: Seed): bigint {
  const samples: bigint[] = [];
  for (let i = 0; i < WARMUP_RUNS + 15; i += 1) {
    const started = process.hrtime.bigint();
    approach.prepare(seed.json);
    if (i >= WARMUP_RUNS) samples.push(process.hrtime.bigint() - started);
  }
  return median(samples);
}

/** warm median / cold median per database, seed and one-statement approach. */
function warmColdLines(measurements: Measurement[]): string[] {
  const lines: string[] = [];
  for (const warm of measurements) {
    if (warm.scenario !== 'warm' || warm.approach.statementCount(2) !== 1) continue;
    const cold = measurements.find(
      (m) =>
        m.scenario === 'cold' &&
        m.database === warm.database &&
        m.seed === warm.seed &&
        m.approach === warm.approach,
    );
    if (!cold) continue;
    const w = median(warm.samplesNs);
    const c = median(cold.samplesNs);
    lines.push(
      `  ${warm.database}, ${warm.seed.label} (${warm.seed.rows}), ${warm.approach.name}: warm ${ms(w)} ms / cold ${ms(c)} ms = ${(Number(w) / Number(c)).toFixed(2)}`,
    );
  }
  return lines;
}

function report(measurements: Measurement[], seeds: Seed[]): string {
  const rows = measurements.map((m) => {
    const baseline = measurements.find(
      (b) =>
        b.database === m.database &&
        b.seed === m.seed &&
        b.scenario === m.scenario &&
        b.approach === singleStatement,
    );
    const value = median(m.samplesNs);
    return [
      m.database,
      `${m.seed.label} (${m.seed.rows})`,
      m.scenario,
      m.approach.name,
      String(m.approach.statementCount(m.seed.rows)),
      String(m.samplesNs.length),
      ms(value),
      ms(m.samplesNs.reduce((a, b) => (b < a ? b : a))),
      ms(m.samplesNs.reduce((a, b) => (b > a ? b : a))),
      baseline ? ratioText(m.approach, value, median(baseline.samplesNs)) : '',
    ];
  });
  const table = renderTable(
    [
      'database',
      'seed (rows)',
      'scenario',
      'approach',
      'statements',
      'n',
      'median ms',
      'min ms',
      'max ms',
      'vs single',
    ],
    rows,
    new Set([4, 5, 6, 7, 8]),
  );
  const prep = seeds.map((seed) => {
    const parts = APPROACHES.filter((a) => a !== singleStatement).map(
      (a) => `${a.name} ${ms(jsPrepMedian(a, seed))} ms`,
    );
    return `  ${seed.label} (${seed.rows} rows): ${parts.join(', ')}`;
  });
  const cpus = os.cpus();
  return [
    `price seed apply benchmark: node ${process.version}, ${cpus.length} CPU(s) (${cpus[0]?.model ?? 'unknown'})`,
    `warm-up runs discarded: ${WARMUP_RUNS}; cold = table truncated before each run (all inserts),`,
    'warm = table already holds the same seed (all unchanged); times include JS-side preparation.',
    'statements: single statement 1 (the Step 3 one too), per-row loop N+2 (BEGIN, N INSERTs, COMMIT),',
    'unnest arrays 1. Only the production single statement writes the sync audit entry.',
    '',
    table,
    '',
    'Re-apply of an unchanged seed against the cold apply, same run (goal for production: at most 0.50):',
    ...warmColdLines(measurements),
    '',
    'JS-side preparation alone (parse + flatten, median, included in the times above):',
    ...prep,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseCli(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const repoRoot = findRepoRoot(__dirname);
  const fixture = options.fixture
    ? path.resolve(options.fixture)
    : path.resolve(repoRoot, 'test', 'fixtures', 'models-dev', 'api.json');
  const seeds = await loadSeeds(repoRoot, fixture);
  // Seed label -> fingerprint of the table it produced; every approach must match it.
  const reference = new Map<string, string>();
  const measurements = await benchPostgres(options.databaseUrl, seeds, reference);
  process.stdout.write(report(measurements, seeds));
}

main().catch((err: unknown) => {
  process.exitCode = 1;
  if (err instanceof CorrectnessError) log(`FAILED: ${err.message}`);
  else if (err instanceof UsageError) log(`${err.message}\n${USAGE}`);
  else log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
