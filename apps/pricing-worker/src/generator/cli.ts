// `npm run prices:generate`: regenerates the committed price seed from models.dev
// (README: the price book seed). `--check` turns it into a CI guard that the seed is current.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { loadConfig } from '@aigov/config';
import { errorCode, errorMessage } from './error-info';
import { fetchCatalogue } from './fetch-catalogue';
import { buildSeed, formatSeed, type SeedRow } from './seed';
import { writeSeedAtomically } from './write-seed';

export const USAGE = [
  'Usage: npm run prices:generate -- [--url <url|path>] [--providers a,b] [--out <file>] [--check]',
  '  --url        models.dev api.json URL, file: URL or path (default: MODELS_DEV_URL)',
  '  --providers  comma-separated provider ids to keep (default: PRICE_PROVIDERS)',
  '  --out        seed file to write (default: apps/pricing-worker/seed/prices.json)',
  '  --check      write nothing; exit 1 when the seed file differs from what would be generated',
].join('\n');

export const SEED_RELATIVE_PATH = path.join('apps', 'pricing-worker', 'seed', 'prices.json');

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const processIo: CliIo = {
  stdout: (line) => process.stdout.write(line + '\n'),
  stderr: (line) => process.stderr.write(line + '\n'),
};

interface CliOptions {
  url?: string;
  providers?: string[];
  out?: string;
  check: boolean;
  help: boolean;
}

class UsageError extends Error {}

const VALUE_FLAGS = new Set(['--url', '--providers', '--out']);

function parseProviders(value: string): string[] {
  const providers = [...new Set(value.split(',').map((p) => p.trim()))].filter((p) => p !== '');
  if (providers.length === 0) throw new UsageError('--providers needs at least one provider id');
  return providers;
}

function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { check: false, help: false };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    let value = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    if (flag === '--help' || flag === '-h') {
      options.help = true;
      continue;
    }
    if (flag !== '--check' && !VALUE_FLAGS.has(flag)) {
      throw new UsageError(flag.startsWith('-') ? `unknown flag ${flag}` : `unexpected argument "${arg}"`);
    }
    // A repeated flag is almost always a scripting mistake; refuse rather than pick one.
    if (seen.has(flag)) throw new UsageError(`${flag} given more than once`);
    seen.add(flag);
    if (flag === '--check') {
      if (value !== undefined) throw new UsageError('--check takes no value');
      options.check = true;
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      value = next;
      i++;
    }
    if (value.trim() === '') throw new UsageError(`${flag} needs a non-empty value`);
    if (flag === '--url') options.url = value.trim();
    else if (flag === '--out') options.out = value;
    else options.providers = parseProviders(value);
  }
  return options;
}

/** The repository root: the nearest directory above this file that holds package.json. */
export function findRepoRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json found above ${start}`);
    dir = parent;
  }
}

async function readExisting(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return null;
    throw err;
  }
}

function countByProvider(rows: SeedRow[]): string {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.provider, (counts.get(row.provider) ?? 0) + 1);
  return [...counts].map(([provider, n]) => `${provider} ${n}`).join(', ');
}

function oneLine(err: unknown): string {
  return errorMessage(err).replace(/\s*\n\s*/g, ' ');
}

/** Runs the generator and returns the process exit code: 0 ok, 1 failure or stale seed, 2 usage. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  let options: CliOptions;
  try {
    options = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`prices:generate: ${err.message}`);
    io.stderr(USAGE);
    return 2;
  }
  if (options.help) {
    io.stdout(USAGE);
    return 0;
  }

  try {
    // Config is read only when a flag leaves a gap, so explicit flags work even with a bad env.
    const config = options.url === undefined || options.providers === undefined ? loadConfig() : undefined;
    const url = options.url ?? config?.modelsDevUrl ?? '';
    const providers = options.providers ?? config?.priceProviders ?? [];
    const out = path.resolve(options.out ?? path.join(findRepoRoot(), SEED_RELATIVE_PATH));

    const catalogue = await fetchCatalogue(url);
    const rows = buildSeed(catalogue, providers, (msg) => io.stderr(`prices:generate: warning: ${msg}`));
    const content = formatSeed(rows);
    const existing = await readExisting(out);
    const summary = `${rows.length} rows (${countByProvider(rows)})`;

    if (options.check) {
      if (existing === content) {
        io.stdout(`${out} is up to date: ${summary}`);
        return 0;
      }
      const why = existing === null ? 'does not exist' : 'differs from the generated seed';
      io.stderr(`prices:generate: ${out} ${why}; run npm run prices:generate to update it`);
      return 1;
    }
    if (existing === content) {
      io.stdout(`${out} unchanged: ${summary}`);
      return 0;
    }
    await writeSeedAtomically(out, content);
    io.stdout(`wrote ${out}: ${summary}`);
    return 0;
  } catch (err) {
    io.stderr(`prices:generate: error: ${oneLine(err)}`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    // exitCode rather than exit() so buffered stdout is flushed first.
    process.exitCode = code;
  });
}
