import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { BUDGET_SUBJECTS } from '@aigov/contracts';
import type { Metrics } from '@aigov/observability';
import { createTestDatabase, startNatsServer, type TestDatabase, type TestNatsServer } from '@aigov/testing';
import { startBudgetApi, type BudgetApiInstance } from './testing-module';

// The budget subjects on their direct queue subscription (EnforcementHandlers), in the whole app
// module as `npm start` builds it, against a real nats-server and PostgreSQL: every request
// received before a shutdown is answered, and each one is counted in the service-time histogram.

jest.setTimeout(120_000);

let nats: TestNatsServer;
let db: TestDatabase;
let nc: NatsConnection;

beforeAll(async () => {
  [nats, db] = await Promise.all([startNatsServer(), createTestDatabase()]);
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await Promise.all([nats?.stop(), db?.drop()]);
});

function start(): Promise<BudgetApiInstance> {
  return startBudgetApi({ DATABASE_URL: db.url, NATS_URL: nats.url, DATABASE_POOL_SIZE: '4' });
}

async function request(subject: string, body: unknown): Promise<Record<string, unknown>> {
  const m = await nc.request(subject, JSON.stringify(body), { timeout: 10_000 });
  return JSON.parse(m.string()) as Record<string, unknown>;
}

async function observed(metrics: Metrics, subject: string): Promise<number> {
  const metric = await metrics.registry.getSingleMetric('aigov_budget_request_duration_seconds')?.get();
  return (metric?.values ?? [])
    .filter(
      (v) =>
        (v as { metricName?: string }).metricName === 'aigov_budget_request_duration_seconds_count' &&
        v.labels.transport === 'nats' &&
        v.labels.subject === subject,
    )
    .reduce((n, v) => n + v.value, 0);
}

describe('budget requests over NATS on the direct subscription', () => {
  it('answers every request received before the app closes, while the database is still open', async () => {
    for (let round = 0; round < 3; round++) {
      const { module } = await start();
      const replies = Array.from({ length: 300 }, (_, i) =>
        i % 3 === 2
          ? request(BUDGET_SUBJECTS.release, { reservation_id: randomUUID() })
          : request(BUDGET_SUBJECTS.check, { user_id: randomUUID(), amount_micros: i }),
      );
      // The server has every request once our connection's flush comes back.
      await nc.flush();
      await module.close();
      const settled = await Promise.allSettled(replies);
      const failures = settled.filter((s) => s.status === 'rejected');
      expect(failures.map((f) => String(f.reason))).toEqual([]);
      for (const [i, s] of settled.entries()) {
        const reply = (s as PromiseFulfilledResult<Record<string, unknown>>).value;
        expect(reply).toEqual(
          i % 3 === 2
            ? { ok: false, error: { code: 'not_found', message: 'Reservation not found.' } }
            : {
                ok: true,
                data: expect.objectContaining({ allowed: false, reason: 'unknown_user' }) as unknown,
              },
        );
      }
    }
  });

  it('stops taking requests once closed (the queue group has no one left here)', async () => {
    const { module } = await start();
    await module.close();
    await expect(request(BUDGET_SUBJECTS.check, { user_id: randomUUID() })).rejects.toThrow(/no responders/i);
  });

  it('counts each request in the service-time histogram under its subject, invalid ones included', async () => {
    const { module, metrics } = await start();
    try {
      for (let i = 0; i < 5; i++) await request(BUDGET_SUBJECTS.check, { user_id: randomUUID() });
      expect(await request(BUDGET_SUBJECTS.reserve, { user_id: 'x' })).toEqual({
        ok: false,
        error: {
          code: 'invalid_argument',
          message:
            'Invalid request: request_id must be 1 to 255 characters without control characters or surrounding spaces; user_id must be a uuid.',
        },
      });
      expect(await observed(metrics, BUDGET_SUBJECTS.check)).toBe(5);
      expect(await observed(metrics, BUDGET_SUBJECTS.reserve)).toBe(1);
      expect(await observed(metrics, BUDGET_SUBJECTS.release)).toBe(0);
    } finally {
      await module.close();
    }
  });
});
