import {
  createTestDatabase,
  freePort,
  startNatsServer,
  type TestDatabase,
  type TestNatsServer,
} from '@aigov/testing';
import { NodeProcess, appEnv, appMain, jsonLines, type AppName } from './helpers/processes';

// The worker first: it seeds the price book that the API's readiness waits for.
const APPS: { app: AppName; portVariable: string; handlers: boolean }[] = [
  { app: 'pricing-worker', portVariable: 'PRICING_WORKER_PORT', handlers: true },
  { app: 'budget-api', portVariable: 'PORT', handlers: true },
  { app: 'membership-listener', portVariable: 'MEMBERSHIP_LISTENER_PORT', handlers: false },
];

describe('what each compiled app logs at LOG_LEVEL=info from start to SIGTERM', () => {
  let db: TestDatabase;
  let nats: TestNatsServer;
  beforeAll(async () => {
    [db, nats] = await Promise.all([createTestDatabase(), startNatsServer()]);
  });
  afterAll(async () => {
    await Promise.all([db.drop(), nats.stop()]);
  });

  it.each(APPS)(
    '$app: one "ready" line, one "stopped" line, no framework chatter',
    async ({ app, portVariable, handlers }) => {
      const port = await freePort();
      const p = new NodeProcess(
        app,
        appMain(app),
        appEnv({
          DATABASE_URL: db.url,
          DATABASE_POOL_SIZE: '2',
          NATS_URL: nats.url,
          [portVariable]: String(port),
          LOG_LEVEL: 'info',
        }),
      );
      try {
        await p.waitReady(port, 60_000);
        p.terminate();
        expect(await p.waitForExit(30_000)).toEqual({ code: 0, signal: null });
        const lines = jsonLines(p.stdout());
        const messages = lines.map((l) => String(l.msg));
        expect(messages.filter((m) => m.startsWith(`${app} ready`))).toEqual([
          `${app} ready on port ${port}`,
        ]);
        expect(messages.filter((m) => m === `${app} stopped`)).toHaveLength(1);
        // The ready line of an app with NATS handlers says where NATS is, without any secret.
        const ready = lines.find((l) => String(l.msg).startsWith(`${app} ready`));
        expect(ready?.nats).toBe(handlers ? `${nats.url} with no authentication, no TLS` : undefined);
        expect(messages[messages.length - 1]).toBe(`${app} stopped`);
        // Nest's module-init and route-mapping lines are debug now.
        const nestLines = lines.filter((l) => typeof l.context === 'string' && l.level === 'info');
        expect(nestLines).toEqual([]);
        expect(messages.some((m) => /Mapped \{|dependencies initialized|Nest application/.test(m))).toBe(
          false,
        );
      } finally {
        await p.kill();
      }
    },
    120_000,
  );
});
