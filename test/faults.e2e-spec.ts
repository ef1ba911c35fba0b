import {
  startNatsServer,
  startPrivatePostgres,
  type PrivatePostgres,
  type TestNatsServer,
  waitFor,
} from '@aigov/testing';
import { ApiHarness, World, type Person } from './helpers/api';

// The database and NATS stopped under the running budget-api (private servers of this file's
// own): answers are 503 with Retry-After and the error body, never a 500 or a crash, and the
// app recovers by itself when the dependency is back.

/** How long a recovery may take on a loaded machine: a deadline, not a measurement. */
const RECOVERY_MS = 60_000;
// Above the recovery deadline, so a slow recovery fails with waitFor's message, not Jest's.
jest.setTimeout(150_000);

describe('dependencies stopped under the running budget-api', () => {
  let pg: PrivatePostgres;
  let nats: TestNatsServer;
  let api: ApiHarness;
  let owner: Person;
  let group: string;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    // Not migrated: the API migrates its database as it starts.
    const url = await pg.createDatabase('aigov_fault', { migrated: false });
    nats = await startNatsServer();
    api = await ApiHarness.start(
      { NATS_ENABLED: 'true', NATS_URL: nats.url, PRICE_SYNC_TIMEOUT_MS: '1000' },
      { name: 'aigov_fault', url, drop: async () => undefined },
    );
    // The price book is the pricing worker's to seed; one row makes the API ready here.
    await api.sql(
      `INSERT INTO ai_model_prices (provider, model, source, input_price) VALUES ('anthropic', 'm', 'default', 1)`,
    );
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
    group = await world.group(boot.defaultOrg, 'faulty');
  });

  afterAll(async () => {
    await api?.close().catch(() => undefined);
    pg?.destroy();
    await nats?.stop();
  });

  const putBudget = (limit: number) =>
    api.call('PUT', `/api/v2/groups/${group}/ai/budget`, owner, { spend_limit_micros: limit });

  it('answers 503 with Retry-After while PostgreSQL is down, and recovers when it is back', async () => {
    expect((await putBudget(1_000_000)).status).toBe(200);
    expect((await api.request('GET', '/readyz')).status).toBe(200);

    pg.stop();
    try {
      for (const res of [
        await putBudget(2_000_000),
        await api.call('GET', `/api/v2/groups/${group}/ai/budget`, owner),
        await api.call('GET', '/api/v2/users/me', owner),
        await api.call('DELETE', `/api/v2/groups/${group}/ai/budget`, owner),
      ]) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(res.body).toMatchObject({
          message: expect.stringMatching(/database is unavailable/i) as unknown,
          validations: [],
          request_id: res.headers.get('x-request-id'),
        });
      }
      expect((await api.request('GET', '/readyz')).status).toBe(503);
      expect((await api.request('GET', '/healthz')).status).toBe(200);
    } finally {
      pg.start();
    }

    await waitFor(
      'the API to answer again',
      async () => (await putBudget(3_000_000)).status === 200,
      RECOVERY_MS,
    );
    const [row] = await api.sql<{ spend_limit_micros: string }>(
      'SELECT spend_limit_micros FROM group_ai_budgets WHERE group_id = $1',
      [group],
    );
    // Nothing written while the database was down, nothing lost after: the last PUT holds.
    expect(row.spend_limit_micros).toBe('3000000');
    await waitFor('readiness', async () => (await api.request('GET', '/readyz')).status === 200, RECOVERY_MS);
  });

  it('answers 503 for a price sync while NATS is down, and is ready again when it is back', async () => {
    await nats.stop();
    try {
      await waitFor(
        'readiness to notice',
        async () => (await api.request('GET', '/readyz')).status === 503,
        RECOVERY_MS,
      );
      const res = await api.call('POST', '/api/v2/ai/model-prices/sync', owner, { source: 'embedded' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(res.body).toMatchObject({ validations: [], request_id: res.headers.get('x-request-id') });
      // The database side keeps working without NATS.
      expect((await putBudget(4_000_000)).status).toBe(200);
    } finally {
      nats = await startNatsServer({ port: nats.port });
    }
    await waitFor(
      'readiness after NATS is back',
      async () => (await api.request('GET', '/readyz')).status === 200,
      RECOVERY_MS,
    );
  });
});
