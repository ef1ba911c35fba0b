import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { childEnvironment, ConfigError, loadConfig, redactCredentials, type AppConfig } from '@aigov/config';
import {
  createDataSource,
  initializeDataSource,
  openEmbeddedDatabase,
  runMigrationsLocked,
  type EmbeddedDatabase,
} from '@aigov/db';
import { createLogger, type Logger } from '@aigov/observability';

/**
 * `npm start`: the whole system on one machine in one command. The embedded database when
 * DATABASE_URL is unset (this process hosts it, so the apps connect the ordinary way),
 * migrations once up front, NATS from NATS_URL or a nats-server started for the session, then
 * the three apps as child processes. SIGINT/SIGTERM stops everything in order.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const APPS = [
  { name: 'pricing-worker', portOf: (c: AppConfig) => c.pricingWorkerPort },
  { name: 'budget-api', portOf: (c: AppConfig) => c.port },
  { name: 'membership-listener', portOf: (c: AppConfig) => c.membershipListenerPort },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function answers(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

function natsEndpoint(url: string): { host: string; port: number } {
  const u = new URL(url.split(',')[0].trim());
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 4222) };
}

function findOnPath(bin: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** NATS for the session: the configured one, else one we start, else none (said loudly). */
async function ensureNats(
  config: AppConfig,
  log: Logger,
): Promise<{ enabled: boolean; child: ChildProcess | null }> {
  if (!config.natsEnabled) {
    log.warn('NATS_ENABLED=false: running without NATS (no pricing.sync, no identity events)');
    return { enabled: false, child: null };
  }
  const { host, port } = natsEndpoint(config.natsUrl);
  if (await answers(host, port)) return { enabled: true, child: null };
  const binary =
    findOnPath('nats-server') ?? (fs.existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null);
  if (!binary) {
    log.warn(
      `Nothing answers at NATS_URL=${redactCredentials(config.natsUrl)} and no nats-server is installed: running WITHOUT NATS ` +
        '(no pricing.sync, no identity events, budget checks over HTTP only). Install it with: ' +
        'sudo apt-get install nats-server  (then npm start again)',
    );
    return { enabled: false, child: null };
  }
  const storeDir = path.join(config.dataDir, 'nats');
  fs.mkdirSync(storeDir, { recursive: true });
  log.info({ binary, host, port, storeDir }, 'starting nats-server (JetStream) for this session');
  // Own process group: Ctrl-C reaches the apps first; this stops nats-server after them.
  const child = spawn(binary, ['-a', host, '-p', String(port), '-js', '-sd', storeDir], {
    stdio: 'ignore',
    detached: true,
  });
  for (let i = 0; i < 100; i++) {
    if (await answers(host, port)) return { enabled: true, child };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`nats-server (${binary}) did not start on ${host}:${port}`);
}

async function migrate(url: string, log: Logger): Promise<void> {
  const ds = createDataSource({ url, poolSize: 1, applicationName: 'aigov-start' });
  await initializeDataSource(ds, 'the database');
  try {
    const applied = await runMigrationsLocked(ds);
    log.info({ applied }, applied.length ? 'migrations applied' : 'database schema up to date');
  } finally {
    await ds.destroy();
  }
}

async function waitReady(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  return false;
}

async function main(): Promise<void> {
  let config: AppConfig;
  let log = createLogger('aigov', 'info');
  try {
    config = loadConfig();
  } catch (err) {
    log.fatal(err instanceof ConfigError ? err.message : String(err));
    process.exit(1);
  }
  log = createLogger('aigov', config.logLevel);

  let embedded: EmbeddedDatabase | null = null;
  // Kept so that a signal arriving while the host is still starting can wait for it and stop it.
  let embeddedStarting: Promise<EmbeddedDatabase | null> | null = null;
  let natsChild: ChildProcess | null = null;
  const children = new Map<string, ChildProcess>();
  let stopping = false;

  const stopAll = async (code: number): Promise<never> => {
    if (stopping) return new Promise<never>(() => undefined);
    stopping = true;
    log.info('stopping aigov');
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    if (natsChild && natsChild.exitCode === null) {
      const gone = new Promise((r) => natsChild?.once('exit', r));
      natsChild.kill('SIGTERM');
      await gone;
    }
    if (!embedded && embeddedStarting) embedded = await embeddedStarting;
    if (embedded) await embedded.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    let databaseUrl = config.databaseUrl;
    if (databaseUrl === null) {
      const opening = openEmbeddedDatabase(config.dataDir, { log: (m) => log.info(m) });
      embeddedStarting = opening.catch(() => null);
      embedded = await opening;
      databaseUrl = embedded.url;
      if (stopping) return;
    }
    await migrate(databaseUrl, log);
    const nats = await ensureNats(config, log);
    natsChild = nats.child;

    const env = childEnvironment({ DATABASE_URL: databaseUrl, NATS_ENABLED: String(nats.enabled) });
    for (const app of APPS) {
      const main = path.join(ROOT, 'dist', 'apps', app.name, 'src', 'main.js');
      // FSTWRN004: the API replaces Nest's Fastify error handler on purpose (see http/setup.ts).
      const args = [
        '--disable-warning=FSTWRN004',
        '-r',
        path.join(ROOT, 'scripts', 'register-paths.js'),
        main,
      ];
      const child = spawn(process.execPath, args, {
        env,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.set(app.name, child);
      child.once('exit', (code, signal) => {
        if (stopping) return;
        log.error({ app: app.name, code, signal }, `${app.name} exited unexpectedly; stopping the rest`);
        void stopAll(1);
      });
    }
    const ready = await Promise.all(
      APPS.map((a) => waitReady(a.portOf(config), children.get(a.name)!, 120_000)),
    );
    if (stopping) return;
    const where = APPS.map((a, i) => `${a.name} :${a.portOf(config)}${ready[i] ? '' : ' (NOT ready)'}`).join(
      ', ',
    );
    log.info(
      {
        database: config.databaseUrl ? 'DATABASE_URL' : `embedded PGlite in ${config.dataDir}`,
        nats: nats.enabled ? redactCredentials(config.natsUrl) : 'off',
      },
      `aigov is up: API http://127.0.0.1:${config.port}/api/v2 (health /healthz, /readyz, /metrics); ${where}`,
    );
  } catch (err) {
    log.fatal({ err }, `aigov failed to start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

void main();
