import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CliIo, findRepoRoot, main, SEED_RELATIVE_PATH } from './cli';
import { buildSeed, formatSeed } from './seed';
import { writeSeedAtomically } from './write-seed';

const FIXTURE = path.join(__dirname, '__fixtures__', 'api.small.json');

interface Captured extends CliIo {
  out: string[];
  err: string[];
}

function capture(): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
}

describe('prices:generate cli', () => {
  let dir: string;
  let seedFile: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'aigov-seed-'));
    seedFile = path.join(dir, 'prices.json');
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const generate = (io: Captured, ...extra: string[]): Promise<number> =>
    main(['--url', FIXTURE, '--providers', 'anthropic,openai', '--out', seedFile, ...extra], io);

  it('writes the formatted seed and prints a per-provider summary', async () => {
    const io = capture();
    await expect(generate(io)).resolves.toBe(0);
    const expected = formatSeed(
      buildSeed(JSON.parse(readFileSync(FIXTURE, 'utf8')) as unknown, ['anthropic', 'openai']),
    );
    expect(readFileSync(seedFile, 'utf8')).toBe(expected);
    expect(io.out.join('\n')).toContain('12 rows (anthropic 6, openai 6)');
    expect(io.err).toEqual([]);
    expect(readdirSync(dir)).toEqual(['prices.json']);
  });

  it('accepts --flag=value and file: URLs', async () => {
    const io = capture();
    const code = await main(
      [`--url=${pathToFileURL(FIXTURE).href}`, '--providers=openai', `--out=${seedFile}`],
      io,
    );
    expect(code).toBe(0);
    const rows = JSON.parse(readFileSync(seedFile, 'utf8')) as { provider: string }[];
    expect(rows).toHaveLength(6);
    expect(rows.every((r) => r.provider === 'openai')).toBe(true);
  });

  it('produces byte-identical files on two runs', async () => {
    await generate(capture());
    const first = readFileSync(seedFile);
    const io = capture();
    await expect(generate(io)).resolves.toBe(0);
    expect(readFileSync(seedFile).equals(first)).toBe(true);
    expect(io.out.join('\n')).toContain('unchanged');
  });

  it('--check passes on a fresh file and fails after the file is modified', async () => {
    await expect(generate(capture())).resolves.toBe(0);
    const fresh = capture();
    await expect(generate(fresh, '--check')).resolves.toBe(0);
    expect(fresh.out.join('\n')).toContain('up to date');

    const original = readFileSync(seedFile, 'utf8');
    writeFileSync(seedFile, original.replace('3000000', '3000001'));
    const stale = capture();
    await expect(generate(stale, '--check')).resolves.toBe(1);
    expect(stale.err.join('\n')).toContain('differs');
    // --check never writes.
    expect(readFileSync(seedFile, 'utf8')).not.toBe(original);
  });

  it('--check fails when the seed file does not exist, and creates nothing', async () => {
    const io = capture();
    await expect(generate(io, '--check')).resolves.toBe(1);
    expect(io.err.join('\n')).toContain('does not exist');
    expect(readdirSync(dir)).toEqual([]);
  });

  it.each([
    ['a missing provider', FIXTURE, 'anthropic,nope', 'provider "nope" is not in the catalogue'],
    ['an unreadable catalogue', '/nonexistent/api.json', 'anthropic', '/nonexistent/api.json'],
  ])('leaves the old file byte-for-byte intact on %s', async (_name, url, providers, message) => {
    const old = Buffer.from('old seed, not even JSON\n');
    writeFileSync(seedFile, old);
    const io = capture();
    await expect(main(['--url', url, '--providers', providers, '--out', seedFile], io)).resolves.toBe(1);
    expect(readFileSync(seedFile).equals(old)).toBe(true);
    expect(io.err).toHaveLength(1);
    expect(io.err[0]).toMatch(/^prices:generate: error: /);
    expect(io.err[0]).toContain(message);
    expect(readdirSync(dir)).toEqual(['prices.json']);
  });

  it('leaves the old file intact when a price is above the limit', async () => {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ p: { models: { m: { cost: { input: 20_000 } } } } }));
    writeFileSync(seedFile, '[]\n');
    const io = capture();
    await expect(main(['--url', bad, '--providers', 'p', '--out', seedFile], io)).resolves.toBe(1);
    expect(readFileSync(seedFile, 'utf8')).toBe('[]\n');
    expect(io.err[0]).toContain('p/m');
  });

  it.each([
    [['--bogus']],
    [['--url']],
    [['--url', '--check']],
    [['--check=yes']],
    [['--providers', ',']],
    [['positional']],
    [['--out', 'a', '--out', 'b']],
  ])('exits 2 with usage for %p', async (argv) => {
    const io = capture();
    await expect(main(argv, io)).resolves.toBe(2);
    expect(io.err.join('\n')).toContain('Usage:');
    expect(io.out).toEqual([]);
  });

  it('prints usage for --help', async () => {
    const io = capture();
    await expect(main(['--help'], io)).resolves.toBe(0);
    expect(io.out.join('\n')).toContain('Usage:');
  });

  it('defaults --out to the committed seed under the repository root', () => {
    const root = findRepoRoot();
    expect(readFileSync(path.join(root, 'package.json'), 'utf8')).toContain('"name": "aigov"');
    expect(path.join(root, SEED_RELATIVE_PATH)).toBe(
      path.resolve(__dirname, '..', '..', 'seed', 'prices.json'),
    );
  });
});

describe('writeSeedAtomically', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'aigov-write-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('replaces the file and leaves no temp files behind', async () => {
    const file = path.join(dir, 'prices.json');
    writeFileSync(file, 'old');
    await writeSeedAtomically(file, 'new content\n');
    expect(readFileSync(file, 'utf8')).toBe('new content\n');
    await writeSeedAtomically(file, 'newer\n');
    expect(readFileSync(file, 'utf8')).toBe('newer\n');
    expect(readdirSync(dir)).toEqual(['prices.json']);
  });

  it('fails without leaving a temp file when the target cannot be replaced', async () => {
    // A directory in the way makes rename fail after the temp file was written.
    const file = path.join(dir, 'prices.json');
    writeFileSync(path.join(dir, 'keep'), 'x');
    mkdirSync(path.join(file, 'inner'), { recursive: true });
    await expect(writeSeedAtomically(file, 'content')).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(['keep', 'prices.json']);
  });

  it('fails when the directory does not exist', async () => {
    await expect(writeSeedAtomically(path.join(dir, 'missing', 'prices.json'), 'x')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual([]);
  });
});
