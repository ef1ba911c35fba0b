import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/**
 * The embedded default database: PGlite in DATA_DIR, served over the PostgreSQL wire protocol
 * by exactly one hosting process (pglite-socket's `pglite-server`), so every app connects the
 * ordinary way. PGlite has no lock of its own and two openers silently lose writes, so the host
 * is elected through a lock file created with O_EXCL; the file names the host's pid and port.
 * Whoever starts first hosts; later starters connect to the port in the lock file.
 */

export interface EmbeddedDatabase {
  url: string;
  /** True when this process started the host and so must stop it. */
  owned: boolean;
  stop(): Promise<void>;
}

interface LockContent {
  ownerPid: number;
  hostPid: number | null;
  port: number | null;
}

const LOCK_FILE = 'embedded-postgres.lock';
/** Must cover the sum of all clients' pools (the socket server's default is 1). */
export const EMBEDDED_MAX_CONNECTIONS = 100;

function isAlive(pid: number | null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(file: string): LockContent | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockContent;
  } catch {
    return null;
  }
}

/**
 * Creates the lock atomically and complete: the content is written to a private file first and
 * then hard-linked to the lock's name, which fails with EEXIST when another process holds it.
 * (open(O_EXCL) then write would let a reader see an empty lock and take it for stale.)
 */
function tryCreateLock(file: string, content: LockContent): boolean {
  const tmp = `${file}.${process.pid}.${Date.now()}.new`;
  fs.writeFileSync(tmp, JSON.stringify(content));
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Removes a lock judged stale, but only the very lock that was judged: it is first renamed to a
 * private name (atomic), and put back if it turns out to be a newer one another starter created
 * in between. Returns whether a stale lock was removed.
 */
function removeStaleLock(file: string, judged: LockContent | null): boolean {
  const aside = `${file}.${process.pid}.${Date.now()}.stale`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return false; // someone else removed it first
  }
  const taken = readLock(aside);
  if (JSON.stringify(taken) !== JSON.stringify(judged)) {
    try {
      fs.linkSync(aside, file);
    } catch {
      // a third starter created a lock meanwhile; it stands
    }
    fs.rmSync(aside, { force: true });
    return false;
  }
  fs.rmSync(aside, { force: true });
  return true;
}

function lockAgeMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}

function writeLock(file: string, content: LockContent): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(content));
  fs.renameSync(tmp, file);
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

async function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function urlFor(port: number): string {
  return `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`;
}

function serverScript(): string {
  // The package exports only its entry points; the CLI sits beside the main one in dist/.
  return path.join(path.dirname(require.resolve('@electric-sql/pglite-socket')), 'scripts', 'server.js');
}

/**
 * Connects to the embedded database in `dataDir`, hosting it first when no live host exists.
 * Throws with a clear message when the host cannot be started within `timeoutMs`.
 */
export async function openEmbeddedDatabase(
  dataDir: string,
  opts: { timeoutMs?: number; log?: (msg: string) => void } = {},
): Promise<EmbeddedDatabase> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const log = opts.log ?? (() => undefined);
  fs.mkdirSync(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, LOCK_FILE);
  const deadline = Date.now() + timeoutMs;

  while (Date.now() < deadline) {
    if (tryCreateLock(lockFile, { ownerPid: process.pid, hostPid: null, port: null })) {
      try {
        return await hostEmbedded(dataDir, lockFile, deadline, log);
      } catch (err) {
        fs.rmSync(lockFile, { force: true });
        throw err;
      }
    }
    const lock = readLock(lockFile);
    if (lock?.port && lock.hostPid && isAlive(lock.hostPid) && (await portAnswers(lock.port))) {
      if (!isAlive(lock.ownerPid)) {
        // The host outlived the process that started it (killed with SIGKILL): adopt it, so
        // that it is stopped with us instead of running on forever.
        log(`adopting the embedded database left by pid ${lock.ownerPid} (host pid ${lock.hostPid})`);
        writeLock(lockFile, { ownerPid: process.pid, hostPid: lock.hostPid, port: lock.port });
        return {
          url: urlFor(lock.port),
          owned: true,
          stop: () => stopHost(lock.hostPid as number, lockFile),
        };
      }
      log(`using the embedded database hosted by pid ${lock.hostPid} on port ${lock.port}`);
      return { url: urlFor(lock.port), owned: false, stop: async () => undefined };
    }
    // An unreadable lock is only stale once it is old: other versions of this code, or a crash
    // mid-write, may leave it empty for a moment while its starter is alive.
    const starting = lock ? !lock.port && isAlive(lock.ownerPid) : lockAgeMs(lockFile) < 10_000;
    const hosting = lock?.port && isAlive(lock.hostPid);
    if (!starting && !hosting) {
      // Stale: the process that held it is gone. Remove it and race for it again.
      if (removeStaleLock(lockFile, lock))
        log(`removed a stale embedded-database lock (${JSON.stringify(lock)})`);
      continue;
    }
    await sleep(100);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for the embedded database in ${dataDir}`);
}

/** Stops a host we did not spawn ourselves (adopted), then releases the lock. */
async function stopHost(pid: number, lockFile: string): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  const lock = readLock(lockFile);
  if (lock?.ownerPid === process.pid) fs.rmSync(lockFile, { force: true });
}

async function hostEmbedded(
  dataDir: string,
  lockFile: string,
  deadline: number,
  log: (msg: string) => void,
): Promise<EmbeddedDatabase> {
  const port = await freePort();
  const dbDir = path.join(dataDir, 'pglite');
  log(`starting the embedded PostgreSQL (PGlite) in ${dbDir} on 127.0.0.1:${port}`);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      serverScript(),
      `--db=${dbDir}`,
      `--port=${port}`,
      '--host=127.0.0.1',
      `--max-connections=${EMBEDDED_MAX_CONNECTIONS}`,
      // The list-indexes migration creates trigram indexes for the users search.
      '--extensions=pg_trgm',
    ],
    // Its own process group: a terminal's Ctrl-C reaches the apps, which shut down first, and
    // not the database under them; the owner stops it after (stop() below).
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  // Published at once (not when the port answers): a lock naming a live host is never stale.
  writeLock(lockFile, { ownerPid: process.pid, hostPid: child.pid ?? null, port });
  // If this process dies without stop() (a failed startup calling process.exit), the host
  // goes too instead of running on as an orphan.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  // Held in an object: the exit handler sets it asynchronously, which flow analysis cannot see.
  const state: { exited: number | null } = { exited: null };
  child.once('exit', (code) => {
    state.exited = code ?? -1;
  });
  const fail = (why: string): never => {
    fs.rmSync(lockFile, { force: true });
    process.removeListener('exit', killOnExit);
    child.kill('SIGKILL');
    throw new Error(
      `The embedded PostgreSQL (PGlite) in ${dbDir} did not start: ${why}${stderr ? `\n${stderr}` : ''}`,
    );
  };
  while (!(await portAnswers(port))) {
    if (state.exited !== null) fail(`pglite-server exited with code ${state.exited}`);
    if (Date.now() > deadline) fail('timed out');
    await sleep(50);
  }
  return {
    url: urlFor(port),
    owned: true,
    stop: async () => {
      process.removeListener('exit', killOnExit);
      if (state.exited === null) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await gone;
        clearTimeout(t);
      }
      const lock = readLock(lockFile);
      if (lock?.ownerPid === process.pid) fs.rmSync(lockFile, { force: true });
    },
  };
}
