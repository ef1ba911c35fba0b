import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { childEnvironment, loadConfig } from '@aigov/config';
import { connectNats } from '@aigov/contracts';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import {
  addOrganizationMember,
  createTestDatabase,
  freePort,
  insertOrganization,
  insertUser,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aigov/testing';
import { PricingWorkerModule } from '../apps/pricing-worker/src/pricing-worker.module';
import { ApiHarness, World, type Person } from './helpers/api';
import { NodeProcess, ROOT, appEnv, appMain, jsonLines } from './helpers/processes';

// The server configuration documented for operators is the one enforced here, verbatim.
const DOC = fs.readFileSync(path.join(ROOT, 'docs', 'nats-security.md'), 'utf8');
const SERVER_CONFIG = /```conf\n(authorization \{[\s\S]*?)```/.exec(DOC)?.[1] ?? '';

// nats-server parses an environment value like any configuration value: a password that starts
// with digits can be read as a number or a date (seen: "All ISO8601 dates must be in full Zulu
// form"). Letters first keep it a string; docs/nats-security.md says the same to operators.
const secret = (): string => `pw${randomBytes(16).toString('hex')}`;
const PASSWORDS = {
  BUDGET_API_PASSWORD: secret(),
  PRICING_WORKER_PASSWORD: secret(),
  MEMBERSHIP_LISTENER_PASSWORD: secret(),
  IDENTITY_PUBLISHER_PASSWORD: secret(),
  AI_GATEWAY_PASSWORD: secret(),
  PRICE_OPERATOR_PASSWORD: secret(),
};
const PRICES_SYNC_SCRIPT = path.join(ROOT, 'dist', 'scripts', 'prices-sync.js');

interface Worker {
  app: INestApplication;
  metrics: Metrics;
}

async function syncCount(metrics: Metrics): Promise<number> {
  const m = await metrics.registry.getSingleMetric('aigov_price_sync_total')?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

async function startWorker(
  db: TestDatabase,
  natsUrl: string,
  extra: Record<string, string> = {},
): Promise<Worker> {
  const config = loadConfig({ DATABASE_URL: db.url, NATS_URL: natsUrl, DATABASE_POOL_SIZE: '2', ...extra });
  const logger = createLogger('pricing-worker', 'silent');
  const metrics = new Metrics('pricing-worker');
  const app = await startApp({
    name: 'pricing-worker',
    module: PricingWorkerModule.forRoot({ config, logger, metrics, readiness: new Readiness() }),
    port: 0,
    logger,
    metrics,
    nats: { connection: config.nats, queue: 'pricing-worker' },
  });
  return { app, metrics };
}

/** `npm run prices:sync -- <source>` as built (dist), with its own environment. */
async function pricesSync(
  source: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; output: string }> {
  const child = spawn(process.execPath, ['-r', './scripts/register-paths.js', PRICES_SYNC_SCRIPT, source], {
    cwd: ROOT,
    env: childEnvironment({ ...appEnv(env), PRICE_SYNC_TIMEOUT_MS: '5000' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, output: `${stdout}${stderr}` };
}

describe('NATS with users, permissions and TLS (real nats-server enforcing docs/nats-security.md)', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let worker: Worker;
  const url = (user: string, password: string): string => `nats://${user}:${password}@127.0.0.1:${nats.port}`;
  const clients: NatsConnection[] = [];
  async function client(user: string, password: string): Promise<NatsConnection> {
    const nc = await connect({ servers: `127.0.0.1:${nats.port}`, user, pass: password });
    clients.push(nc);
    return nc;
  }

  beforeAll(async () => {
    expect(SERVER_CONFIG).toContain('users: [');
    [nats, db] = await Promise.all([
      startNatsServer({ config: SERVER_CONFIG, env: PASSWORDS }),
      createTestDatabase(),
    ]);
    worker = await startWorker(db, url('pricing-worker', PASSWORDS.PRICING_WORKER_PASSWORD));
  });

  afterAll(async () => {
    for (const nc of clients) await nc.close().catch(() => undefined);
    await worker?.app.close();
    await Promise.all([db?.drop(), nats?.stop()]);
  });

  it('refuses an anonymous client', async () => {
    await expect(connect({ servers: `127.0.0.1:${nats.port}` })).rejects.toThrow(/Authorization/i);
  });

  it('the worker serves pricing.sync to the operator, who may send it', async () => {
    const operator = await client('operator', PASSWORDS.PRICE_OPERATOR_PASSWORD);
    const before = await syncCount(worker.metrics);
    const reply = await operator.request('pricing.sync', JSON.stringify({ source: 'embedded' }), {
      timeout: 30_000,
    });
    expect(JSON.parse(reply.string())).toMatchObject({ ok: true, data: { source: 'embedded', inserted: 0 } });
    expect(await syncCount(worker.metrics)).toBe(before + 1);
  });

  it.each([
    ['the AI gateway', 'ai-gateway', PASSWORDS.AI_GATEWAY_PASSWORD],
    ['the identity system', 'identity', PASSWORDS.IDENTITY_PUBLISHER_PASSWORD],
  ])(
    '%s may not send pricing.sync: no reply, and the worker never sees it',
    async (_name, user, password) => {
      const nc = await client(user, password);
      const before = await syncCount(worker.metrics);
      // The server's permission error ends the request; the timeout is only a loaded machine's
      // ceiling (a timeout instead of the error would fail the match below all the same).
      await expect(
        nc.request('pricing.sync', JSON.stringify({ source: 'embedded' }), { timeout: 15_000 }),
      ).rejects.toThrow(/Permissions Violation for Publish to "pricing.sync"/);
      await nc.flush();
      expect(await syncCount(worker.metrics)).toBe(before);
    },
  );

  it('nobody but the worker may subscribe to pricing.sync (no impersonating the worker)', async () => {
    const nc = await client('operator', PASSWORDS.PRICE_OPERATOR_PASSWORD);
    const sub = nc.subscribe('pricing.sync', { queue: 'pricing-worker' });
    // nats.js ends a refused subscription by resolving `closed` with the server's error.
    const closed = sub.closed.then(
      (v) => (v instanceof Error ? v.message : 'closed without an error'),
      (err: Error) => err.message,
    );
    await nc.flush();
    // The server refuses the subscription; the client ends it with a permission error.
    await expect(closed).resolves.toMatch(/permission/i);
  });

  it('budget-api with its own user relays POST /ai/model-prices/sync to the worker', async () => {
    const api = await ApiHarness.start({
      NATS_ENABLED: 'true',
      NATS_URL: url('budget-api', PASSWORDS.BUDGET_API_PASSWORD),
    });
    try {
      const owner: Person = (await new World(api).bootstrap()).owner;
      const res = await api.request('POST', '/api/v2/ai/model-prices/sync', {
        token: owner.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ source: 'embedded', inserted: 0, updated: 0 });
    } finally {
      await api.close();
    }
  });

  it('budget-api with its own user answers the AI gateway on aigov.budget.*; others may not ask', async () => {
    const api = await ApiHarness.start({
      NATS_ENABLED: 'true',
      NATS_URL: url('budget-api', PASSWORDS.BUDGET_API_PASSWORD),
    });
    try {
      const owner: Person = (await new World(api).bootstrap()).owner;
      const gateway = await client('ai-gateway', PASSWORDS.AI_GATEWAY_PASSWORD);
      const reply = await gateway.request('aigov.budget.check', JSON.stringify({ user_id: owner.id }), {
        timeout: 10_000,
      });
      expect(JSON.parse(reply.string())).toMatchObject({ ok: true, data: { allowed: true } });

      const identity = await client('identity', PASSWORDS.IDENTITY_PUBLISHER_PASSWORD);
      await expect(
        identity.request('aigov.budget.check', JSON.stringify({ user_id: owner.id }), { timeout: 2_000 }),
      ).rejects.toThrow(/permission/i);
    } finally {
      await api.close();
    }
  });

  it('budget-api with its own user records the usage the gateway publishes into AI_USAGE and tells it of thresholds', async () => {
    const api = await ApiHarness.start({
      NATS_ENABLED: 'true',
      NATS_URL: url('budget-api', PASSWORDS.BUDGET_API_PASSWORD),
      THRESHOLD_POLL_MS: '200',
    });
    try {
      await api.pg.query(
        `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
         VALUES ('anthropic', 'claude-nats-security', 'custom', 1000000, 1000000)`,
      );
      const org = await insertOrganization(api.pg);
      await api.pg.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 100)', [
        org.id,
      ]);
      const user = await insertUser(api.pg);
      await addOrganizationMember(api.pg, org.id, user.id);
      const gateway = await client('ai-gateway', PASSWORDS.AI_GATEWAY_PASSWORD);
      const thresholds: unknown[] = [];
      gateway.subscribe('aigov.budget.threshold', {
        callback: (_err, msg) => {
          thresholds.push(msg.json());
        },
      });
      const requestId = `nats-security-${randomBytes(4).toString('hex')}`;
      await jetstream(gateway).publish(
        'aigov.usage.recorded',
        JSON.stringify({
          request_id: requestId,
          user_id: user.id,
          provider: 'anthropic',
          model: 'claude-nats-security',
          input_tokens: 60,
          output_tokens: 40,
        }),
      );
      await waitFor(
        'the usage recorded',
        async () =>
          (await api.pg.query('SELECT 1 FROM ai_usage WHERE request_id = $1', [requestId])).rowCount === 1,
        30_000,
        100,
      );
      await waitFor('both threshold events', () => thresholds.length === 2, 30_000, 100);
      expect(thresholds).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ user_id: user.id, threshold_percent: 85, spent_micros: 100 }),
          expect.objectContaining({ user_id: user.id, threshold_percent: 100, spent_micros: 100 }),
        ]),
      );
    } finally {
      await api.close();
    }
  });

  it('npm run prices:sync prints the reply for the operator and fails clearly for others', async () => {
    const ok = await pricesSync('embedded', { NATS_URL: url('operator', PASSWORDS.PRICE_OPERATOR_PASSWORD) });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, data: { source: 'embedded' } });
    expect(ok.output).not.toContain(PASSWORDS.PRICE_OPERATOR_PASSWORD);

    const denied = await pricesSync('embedded', {
      NATS_URL: url('ai-gateway', PASSWORDS.AI_GATEWAY_PASSWORD),
    });
    expect(denied.code).toBe(1);
    expect(denied.output).toMatch(/Permissions Violation for Publish to "pricing.sync"/);
    expect(denied.output).not.toContain(PASSWORDS.AI_GATEWAY_PASSWORD);

    const wrong = await pricesSync('embedded', { NATS_URL: url('operator', 'not-the-password') });
    expect(wrong.code).toBe(1);
    expect(wrong.output).toMatch(/refused the credentials/);
    expect(wrong.output).not.toContain('not-the-password');

    const usage = await pricesSync('everything', {
      NATS_URL: url('operator', PASSWORDS.PRICE_OPERATOR_PASSWORD),
    });
    expect(usage.code).toBe(2);
    expect(usage.output).toMatch(/usage: npm run prices:sync -- embedded\|upstream/);
  });

  it('an app given a wrong password stops at start with a clear message and exit 1', async () => {
    const p = new NodeProcess(
      'pricing-worker',
      appMain('pricing-worker'),
      appEnv({
        DATABASE_URL: db.url,
        DATABASE_POOL_SIZE: '2',
        NATS_URL: url('pricing-worker', 'wrong-password-123'),
        PRICING_WORKER_PORT: String(await freePort()),
      }),
    );
    try {
      const exit = await p.waitForExit(60_000);
      expect(exit.code).toBe(1);
      const fatal = jsonLines(p.stdout()).find((l) => l.level === 'fatal');
      expect(fatal?.msg).toMatch(
        /^pricing-worker failed to start: Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+ with user "pricing-worker", no TLS: Authorization Violation; the server refused the credentials/,
      );
      expect(p.output()).not.toContain('wrong-password-123');
    } finally {
      await p.kill();
    }
  });

  describe('TLS', () => {
    let dir: string;
    let tlsNats: TestNatsServer;
    let tlsWorker: Worker | null = null;

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-nats-tls-'));
      const openssl = (...args: string[]): void => {
        execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
      };
      openssl(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=aigov test CA',
        '-keyout',
        'ca-key.pem',
        '-out',
        'ca.pem',
      );
      openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=nats',
        '-keyout',
        'server-key.pem',
        '-out',
        'server.csr',
      );
      fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
      openssl(
        'x509',
        '-req',
        '-in',
        'server.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        'san.ext',
        '-out',
        'server.pem',
      );
      // A second CA that signed nothing the server uses: a client trusting only it must refuse.
      openssl(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=other CA',
        '-keyout',
        'other-key.pem',
        '-out',
        'other-ca.pem',
      );
      tlsNats = await startNatsServer({
        tls: true,
        config: `tls {\n  cert_file: "${dir}/server.pem"\n  key_file: "${dir}/server-key.pem"\n}\n`,
      });
    });

    afterAll(async () => {
      await tlsWorker?.app.close();
      await tlsNats?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('the worker connects with NATS_TLS_CA and serves over TLS', async () => {
      tlsWorker = await startWorker(db, tlsNats.url, { NATS_TLS_CA: path.join(dir, 'ca.pem') });
      const nc = await connectNats(
        loadConfig({ NATS_URL: tlsNats.url, NATS_TLS_CA: path.join(dir, 'ca.pem') }).nats,
        't',
      );
      clients.push(nc);
      const reply = await nc.request('pricing.sync', JSON.stringify({ source: 'embedded' }), {
        timeout: 30_000,
      });
      expect(JSON.parse(reply.string())).toMatchObject({ ok: true });
      // Without TLS the server answers nothing useful: a plain client is refused.
      await expect(connect({ servers: `127.0.0.1:${tlsNats.port}`, tls: null })).rejects.toThrow();
    });

    it('a server certificate the configured CA did not sign stops the app with a TLS hint', async () => {
      const settings = loadConfig({
        NATS_URL: tlsNats.url,
        NATS_TLS_CA: path.join(dir, 'other-ca.pem'),
      }).nats;
      await expect(connectNats(settings, 't')).rejects.toThrow(
        /TLS handshake failed: NATS_TLS_CA must name the CA/,
      );
    });
  });
});
