import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { childEnvironment, ConfigError, loadConfig, redactCredentials, type AppConfig } from '@aigov/config';
// Straight from the files, not the libraries' indexes: those pull in TypeORM and Nest, which
// would keep ~50 MB resident in a process that only supervises.
import { claimEmbeddedCluster, startEmbeddedCluster, type EmbeddedCluster } from '../libs/db/src/embedded';
import { createLogger, type Logger } from '../libs/observability/src/logger';
import { portHolder, waitForOrphanedApps } from './port-holder';

/**
 * `npm start`: the whole system on one machine in one command. With DATABASE_URL unset, the
 * embedded PostgreSQL cluster of DATA_DIR (started, or adopted when an earlier launcher was
 * killed), NATS from NATS_URL or a nats-server started for the session, then the three apps as
 * child processes (each applies pending migrations as it starts). SIGINT/SIGTERM stops
 * everything in order: the apps, then nats-server, then PostgreSQL.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const APPS = [
  { name: 'pricing-worker', portOf: (c: AppConfig) => c.pricingWorkerPort },
  { name: 'budget-api', portOf: (c: AppConfig) => c.port },
  { name: 'membership-listener', portOf: (c: AppConfig) => c.membershipListenerPort },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Preloaded into every app: it shuts the app down when this launcher dies, even by SIGKILL. */
const EXIT_WITH_LAUNCHER = path.join(ROOT, 'scripts', 'exit-with-launcher.js');

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

  // Set only once this launcher owns the cluster (see claimEmbeddedCluster): then it stops it.
  let embedded: EmbeddedCluster | null = null;
  let releaseClaim: (() => Promise<void>) | null = null;
  // Kept so that a signal arriving while the server is still starting can wait for it and stop it.
  let embeddedStarting: Promise<unknown> | null = null;
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
    if (embeddedStarting) await embeddedStarting;
    if (embedded) {
      log.info({ postgresPid: embedded.pid }, 'stopping the embedded PostgreSQL');
      await releaseClaim?.();
      await embedded.stop().catch((err: Error) => log.error({ err }, 'the embedded PostgreSQL did not stop'));
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    // A second `npm start` fails here at once, before it touches the database.
    for (const app of APPS) {
      const port = app.portOf(config);
      await waitForOrphanedApps(port, (m) => log.info(m));
      const holder = await portHolder(port);
      if (holder) {
        throw new Error(
          `port ${port} (${app.name}) is already in use by ${holder.pid ? `pid ${holder.pid}` : 'another process'}` +
            `${holder.launcherPid ? ` started by \`npm start\` pid ${holder.launcherPid}` : ''} (${holder.command}): ` +
            'stop that one first, or choose other ports (PORT, PRICING_WORKER_PORT, MEMBERSHIP_LISTENER_PORT)',
        );
      }
    }
    let databaseUrl = config.databaseUrl;
    if (databaseUrl === null) {
      const starting = (async () => {
        const cluster = await startEmbeddedCluster(config.dataDir, { log: (m) => log.info(m) });
        const claim = await claimEmbeddedCluster(cluster.url, `aigov-start pid ${process.pid}`);
        if (!claim.owner) {
          throw new Error(
            `the embedded PostgreSQL in ${config.dataDir} is already used by ${claim.heldBy}: stop that one first, or set another DATA_DIR`,
          );
        }
        // From here on this launcher stops the server, also one it adopted from a killed launcher.
        embedded = cluster;
        releaseClaim = claim.release;
        if (cluster.adopted) {
          log.info({ postgresPid: cluster.pid }, 'adopted the embedded PostgreSQL left running');
        }
        return cluster.url;
      })();
      embeddedStarting = starting.catch(() => undefined);
      databaseUrl = await starting;
      if (stopping) return;
    }
    // Each app applies pending migrations at start, under the advisory lock: one of them migrates.
    const nats = await ensureNats(config, log);
    natsChild = nats.child;

    // On the embedded database the apps find the cluster through DATA_DIR themselves (as one
    // started alone would), so they know it is the embedded one and keep fewer idle connections.
    const env = childEnvironment({
      DATABASE_URL: config.databaseUrl === null ? undefined : databaseUrl,
      NATS_ENABLED: String(nats.enabled),
    });
    for (const app of APPS) {
      const main = path.join(ROOT, 'dist', 'apps', app.name, 'src', 'main.js');
      // FSTWRN004: the API replaces Nest's Fastify error handler on purpose (see http/setup.ts).
      const args = [
        '--disable-warning=FSTWRN004',
        // A 2 MB young generation instead of 16 MB: about 12 MB less resident per app, for
        // more frequent (cheap) scavenges; the one-machine default aims at 600 MB in all.
        '--max-semi-space-size=2',
        '-r',
        path.join(ROOT, 'scripts', 'register-paths.js'),
        '-r',
        EXIT_WITH_LAUNCHER,
        main,
      ];
      // fd 3: a pipe whose far end only this process holds; the app sees it close when we die.
      const child = spawn(process.execPath, args, {
        env,
        stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
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
    const notReady = APPS.filter((_a, i) => !ready[i]).map((a) => `${a.name} :${a.portOf(config)}`);
    if (notReady.length > 0) {
      throw new Error(`not ready (GET /readyz never answered 200): ${notReady.join(', ')}`);
    }
    const where = APPS.map((a) => `${a.name} :${a.portOf(config)}`).join(', ');
    log.info(
      {
        database: config.databaseUrl
          ? 'DATABASE_URL'
          : `embedded PostgreSQL in ${config.dataDir}/postgres (pid ${(embedded as EmbeddedCluster | null)?.pid})`,
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
