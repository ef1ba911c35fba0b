import { startNatsServer, type TestNatsServer } from '@aigov/testing';
import { ApiHarness } from './helpers/api';

interface Readyz {
  status: string;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

async function natsCheck(
  api: ApiHarness,
  want: boolean,
  timeoutMs: number,
): Promise<Readyz['checks'][string]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api.request<Readyz>('GET', '/readyz');
    const nats = res.body.checks.nats;
    if (nats.ok === want || Date.now() > deadline) return nats;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * How long readiness may take to follow NATS (reconnect attempts included) on a loaded machine:
 * natsCheck answers the last state at this deadline and the test asserts on it.
 */
const READY_MS = 30_000;
jest.setTimeout(150_000);

describe('readiness follows the NATS connection (real nats-server)', () => {
  let nats: TestNatsServer;
  let api: ApiHarness;

  beforeAll(async () => {
    nats = await startNatsServer();
    api = await ApiHarness.start({
      NATS_ENABLED: 'true',
      NATS_URL: nats.url,
      PRICE_SYNC_TIMEOUT_MS: '20000',
    });
  });

  afterAll(async () => {
    await api.close();
    await nats.stop();
  });

  it('is ready with NATS, not ready while the server is gone, ready again after it returns', async () => {
    expect(await natsCheck(api, true, READY_MS)).toEqual({ ok: true });
    const port = nats.port;
    await nats.stop();
    const down = await natsCheck(api, false, READY_MS);
    expect(down.ok).toBe(false);
    expect(down.detail).toMatch(/unreachable/);

    // A sync asked for meanwhile is refused at once (503), not after the 20 s timeout.
    const { token } = (
      await api.request<{ token: string }>('POST', '/api/v2/users/first', {
        body: { username: 'o', email: 'o@example.com' },
      })
    ).body;
    const started = Date.now();
    const sync = await api.request('POST', '/api/v2/ai/model-prices/sync', {
      token,
      body: { source: 'embedded' },
    });
    expect(sync.status).toBe(503);
    // Half the 20 s sync timeout: room for a loaded machine, and still short of waiting it out.
    expect(Date.now() - started).toBeLessThan(10_000);

    nats = await startNatsServer({ port });
    expect(await natsCheck(api, true, READY_MS)).toEqual({ ok: true });
  });
});
