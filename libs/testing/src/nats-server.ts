import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, portAnswers } from './ports';
import { childEnvironment, testSettings } from '../../config/src/config';

export interface TestNatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function findBinary(): string {
  const configured = testSettings().natsServerBinary;
  if (configured) return configured;
  for (const candidate of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(
    'nats-server not found (apt-get install nats-server); the NATS tests run against a real one',
  );
}

/**
 * A real nats-server with JetStream, private to one test file: fixed subjects such as
 * pricing.sync cannot leak between test files running in parallel. `config` is the text of a
 * nats-server configuration file (users, permissions, TLS) used beside the command-line
 * listener, `env` what it reads with `$NAME`; `tls` makes the URL tls:// (the readiness probe
 * is a TCP connect either way).
 */
export async function startNatsServer(
  opts: { port?: number; config?: string; tls?: boolean; env?: Record<string, string> } = {},
): Promise<TestNatsServer> {
  const port = opts.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir];
  if (opts.config !== undefined) {
    const file = path.join(dir, 'nats-server.conf');
    fs.writeFileSync(file, opts.config);
    args.push('-c', file);
  }
  let stderr = '';
  // A configuration may read values (passwords) from the server's environment: `$NAME`.
  const child = spawn(findBinary(), args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: childEnvironment(opts.env ?? {}),
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4_000);
  });
  // Generous: on a loaded 2-core machine the binary alone can take seconds to start.
  const deadline = Date.now() + 30_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`nats-server did not start within 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `${opts.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`,
    port,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      child.stderr?.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
