import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { childEnvironment } from '@aigov/config';
import { freePort } from '@aigov/testing';

/** The repository root: compiled apps live in dist/ below it. */
export const ROOT = path.resolve(__dirname, '..', '..');

export type AppName = 'budget-api' | 'pricing-worker' | 'membership-listener';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function appMain(app: AppName): string {
  return path.join(ROOT, 'dist', 'apps', app, 'src', 'main.js');
}

export const START_SCRIPT = path.join(ROOT, 'dist', 'scripts', 'start.js');

export function freshDataDir(prefix = 'aigov-test-data-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * One GET without keep-alive; rejects when nothing listens (ECONNREFUSED) or on timeout. The
 * default timeout is generous: a starting app on a loaded machine can take seconds to answer, and
 * waitReady() records a timed-out poll as an observation that some tests reject.
 */
export function httpGet(port: number, urlPath: string, timeoutMs = 10_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface ReadyzBody {
  status: string;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A compiled entry point running as a child process in a process group of its own, so that
 * `kill()` also reaches whatever it started in that group (the launcher's apps; not PostgreSQL or
 * nats-server, which run in sessions of their own).
 */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly started = Date.now();
  private out = '';
  private err = '';
  private exitInfo: ExitInfo | null = null;
  private readonly exitPromise: Promise<ExitInfo>;

  constructor(
    readonly label: string,
    script: string,
    env: Record<string, string | undefined>,
  ) {
    this.child = spawn(process.execPath, ['-r', './scripts/register-paths.js', script], {
      cwd: ROOT,
      env: childEnvironment(env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (d: string) => {
      this.out += d;
    });
    this.child.stderr?.on('data', (d: string) => {
      this.err += d;
    });
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.once('error', () => {
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.label} has no pid (did it spawn?)`);
    return pid;
  }

  stdout(): string {
    return this.out;
  }

  /** stdout and stderr, for assertions on messages and for failure reports. */
  output(): string {
    return `${this.out}${this.err ? `\n[stderr]\n${this.err}` : ''}`;
  }

  exited(): ExitInfo | null {
    return this.exitInfo;
  }

  /** Resolves with the exit, or rejects after `timeoutMs` (the process is left running). */
  async waitForExit(timeoutMs: number): Promise<ExitInfo> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exitPromise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new Error(`${this.label} did not exit within ${timeoutMs} ms; output:\n${this.tail()}`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM to the process itself (not its group): what a supervisor does. */
  terminate(): void {
    if (this.exitInfo === null) this.child.kill('SIGTERM');
  }

  /** Last resort: SIGKILL to the whole process group, then wait for the exit. Never throws. */
  async kill(): Promise<void> {
    const pid = this.child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }
    if (this.exitInfo === null && pid !== undefined) {
      await Promise.race([this.exitPromise, sleep(5_000)]);
    }
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }

  tail(chars = 6_000): string {
    const all = this.output();
    return all.length > chars ? `...${all.slice(-chars)}` : all;
  }

  /**
   * Polls GET /readyz until it answers 200. Every earlier observation must be a 503 or no
   * listener (recorded in `observations`). Fails fast when the process exits.
   */
  async waitReady(port: number, timeoutMs: number, observations: string[] = []): Promise<ReadyzBody> {
    const deadline = Date.now() + timeoutMs;
    let last = 'nothing yet';
    while (Date.now() < deadline) {
      if (this.exitInfo !== null) {
        throw new Error(
          `${this.label} exited (${JSON.stringify(this.exitInfo)}) before ready; output:\n${this.tail()}`,
        );
      }
      try {
        const res = await httpGet(port, '/readyz');
        observations.push(String(res.status));
        if (res.status === 200) return JSON.parse(res.body) as ReadyzBody;
        last = `${res.status} ${res.body}`;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        observations.push(code);
        last = code;
      }
      await sleep(150);
    }
    throw new Error(
      `${this.label} not ready on :${port} within ${timeoutMs} ms (last: ${last}); output:\n${this.tail()}`,
    );
  }
}

/** Every non-empty stdout line as a parsed JSON object; throws naming the first line that is not. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`stdout line is not JSON: ${line}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error(`stdout line is not a JSON object: ${line}`);
    }
    out.push(parsed as Record<string, unknown>);
  }
  return out;
}

/** Overrides for a child's environment: ports, quiet-enough logs, and no inherited app settings. */
export function appEnv(overrides: Record<string, string | undefined>): Record<string, string | undefined> {
  return {
    DATABASE_URL: undefined,
    NATS_URL: undefined,
    NATS_ENABLED: undefined,
    PORT: undefined,
    PRICING_WORKER_PORT: undefined,
    MEMBERSHIP_LISTENER_PORT: undefined,
    DATA_DIR: undefined,
    BUDGET_PERIOD: undefined,
    LOG_LEVEL: 'info',
    ...overrides,
  };
}

/** A compiled app running as a child process, and the port of its HTTP server (/readyz, /metrics). */
export interface AppProcess {
  proc: NodeProcess;
  port: number;
}

/** The variable each app reads its HTTP port from. */
const PORT_VARIABLE: Record<AppName, string> = {
  'budget-api': 'PORT',
  'pricing-worker': 'PRICING_WORKER_PORT',
  'membership-listener': 'MEMBERSHIP_LISTENER_PORT',
};

/**
 * Starts dist/apps/`app` (npm run build first) on a free port, logging warnings and worse, and
 * waits until it is ready; one that is not ready within `readyTimeoutMs` is killed again.
 */
export async function startAppProcess(
  app: AppName,
  label: string,
  env: Record<string, string>,
  readyTimeoutMs: number,
): Promise<AppProcess> {
  const port = await freePort();
  const proc = new NodeProcess(
    label,
    appMain(app),
    appEnv({ [PORT_VARIABLE[app]]: String(port), LOG_LEVEL: 'warn', ...env }),
  );
  try {
    await proc.waitReady(port, readyTimeoutMs);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return { proc, port };
}

/**
 * SIGKILL to the app's process group, then its exit. NodeProcess.kill() alone would leave a
 * timer of its own behind when the exit is not seen at once (Jest then waits for it).
 */
export async function killAppProcess(app: AppProcess): Promise<void> {
  if (app.proc.exited() === null) {
    try {
      process.kill(-app.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await app.proc.waitForExit(30_000);
  }
  await app.proc.kill();
}

/** GET /readyz's status, or 0 when the app does not answer. */
export async function readyStatus(port: number): Promise<number> {
  try {
    return (await httpGet(port, '/readyz', 5_000)).status;
  } catch {
    return 0;
  }
}

/** The sum of one counter over its labels, read from the app's /metrics. */
export async function counterTotal(port: number, name: string): Promise<number> {
  const text = (await httpGet(port, '/metrics')).body;
  let total = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}

/** True while `pid` runs; a zombie (exited, not yet reaped) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/**
 * The local addresses of every TCP socket that `pid` listens on (Linux /proc), e.g.
 * `127.0.0.1:5432` or `[::]:8080`.
 */
export function listeningAddresses(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const [table, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length <= 9 || cols[3] !== '0A' || !inodes.has(cols[9])) continue;
      const [hexIp, hexPort] = cols[1].split(':');
      const port = parseInt(hexPort, 16);
      if (!v6) {
        // Little-endian bytes: 0100007F is 127.0.0.1.
        const ip = (hexIp.match(/../g) ?? []).map((b) => parseInt(b, 16)).reverse();
        out.push(`${ip.join('.')}:${port}`);
      } else {
        out.push(`[${hexIp === '00000000000000000000000000000000' ? '::' : hexIp}]:${port}`);
      }
    }
  }
  return out;
}
