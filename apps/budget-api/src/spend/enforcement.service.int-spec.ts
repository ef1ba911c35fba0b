import { randomUUID } from 'node:crypto';
import { Stores } from '@aigov/authz';
import { DEFAULT_SPEND_UPKEEP } from '@aigov/config';
import { AI_GATEWAY_ACTOR, type UsageRecord } from '@aigov/contracts';
import { createDataSource } from '@aigov/db';
import { Metrics } from '@aigov/observability';
import {
  addOrganizationMember,
  createTestDatabase,
  insertOrganization,
  insertUser,
  sqlRows,
  waitForNoConnections,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';
import type { BudgetApiOptions } from '../options';
import { EnforcementService } from './enforcement.service';
import type { Clock } from './period';

// EnforcementService on real PostgreSQL with an injected clock: usage counts in the period of its
// occurred_at (UTC month, week from Monday, day), the token form of a reservation is priced, and
// unpriced models follow UNPRICED_USAGE.

let db: TestDatabase;
let ds: DataSource;
const A = AI_GATEWAY_ACTOR;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 4, applicationName: 'aigov-enforcement-test' });
  await ds.initialize();
  // 2 USD per million input tokens, 10 per million output tokens.
  await sqlRows(
    ds,
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price) VALUES ('acme', 'm1', 'default', 2000000, 10000000)`,
  );
});
afterAll(async () => {
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

class TestClock implements Clock {
  constructor(public at: Date) {}
  now(): Date {
    return this.at;
  }
}

function service(clock: Clock, over: Partial<BudgetApiOptions> = {}): EnforcementService {
  const options: BudgetApiOptions = {
    aiBudgetsEnabled: true,
    maxSpendLimitMicros: 1_000_000_000_000n,
    natsEnabled: false,
    priceSyncTimeoutMs: 1000,
    budgetPeriod: 'month',
    unpricedUsage: 'allow',
    spendUpkeep: DEFAULT_SPEND_UPKEEP,
    ...over,
  };
  return new EnforcementService(new Stores(ds), options, clock, new Metrics('test'), null);
}

async function limitedMember(limit: number): Promise<string> {
  const org = await insertOrganization(ds);
  await sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
    org.id,
    limit,
  ]);
  const u = await insertUser(ds);
  await addOrganizationMember(ds, org.id, u.id);
  return u.id;
}

const record = (userId: string, over: Partial<UsageRecord> = {}): UsageRecord => ({
  request_id: randomUUID(),
  user_id: userId,
  provider: 'acme',
  model: 'm1',
  input_tokens: 1_000,
  output_tokens: 100,
  ...over,
});

async function recordOne(svc: EnforcementService, r: UsageRecord) {
  const [outcome] = await svc.recordUsage(A, [r]);
  if (!outcome.ok) throw outcome.error;
  return outcome.reply;
}

describe.each([
  ['month', '2026-11-30T23:59:59.000Z', '2026-12-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z'],
  ['week', '2026-12-06T23:59:59.000Z', '2026-12-07T00:00:00.000Z', '2026-11-30T00:00:00.000Z'],
  ['day', '2026-12-02T23:59:59.000Z', '2026-12-03T00:00:00.000Z', '2026-12-02T00:00:00.000Z'],
] as const)('period %s', (kind, lastSecond, nextStart, periodStart) => {
  it('spend in the last second of a period does not count in the next', async () => {
    const clock = new TestClock(new Date(lastSecond));
    const svc = service(clock, { budgetPeriod: kind });
    const user = await limitedMember(10_000);
    // 1,000 * 2 + 100 * 10 = 3,000 USD-micros per million tokens * tokens / 10^6 = 3,000 micros.
    expect(await recordOne(svc, record(user))).toMatchObject({ cost_micros: 3_000, duplicate: false });
    const inPeriod = await svc.check(A, { user_id: user });
    expect(inPeriod).toMatchObject({
      spent_micros: 3_000,
      remaining_micros: 7_000,
      period_start: periodStart,
    });
    clock.at = new Date(nextStart);
    const next = await svc.check(A, { user_id: user });
    expect(next).toMatchObject({
      allowed: true,
      spent_micros: 0,
      remaining_micros: 10_000,
      period_start: nextStart,
    });
    // A late record of the earlier period (occurred_at within 35 days) counts there, not now.
    await recordOne(svc, record(user, { occurred_at: lastSecond }));
    expect((await svc.check(A, { user_id: user })).spent_micros).toBe(0);
    clock.at = new Date(lastSecond);
    expect((await svc.check(A, { user_id: user })).spent_micros).toBe(6_000);
  });
});

it('refuses an occurred_at outside [now - 35 days, now + 5 minutes]', async () => {
  const clock = new TestClock(new Date('2026-12-02T12:00:00Z'));
  const svc = service(clock);
  const user = await limitedMember(10_000);
  const [old, future, ok] = await svc.recordUsage(A, [
    record(user, { occurred_at: '2026-10-28T11:59:59Z' }),
    record(user, { occurred_at: '2026-12-02T12:05:01Z' }),
    record(user, { occurred_at: '2026-12-02T12:05:00Z' }),
  ]);
  expect(old.ok || future.ok).toBe(false);
  if (!old.ok) expect(old.error.validations?.[0].field).toBe('occurred_at');
  expect(ok.ok).toBe(true);
});

it('a repeated request id within one batch is recorded once and replayed', async () => {
  const svc = service(new TestClock(new Date()));
  const user = await limitedMember(1_000_000);
  const r = record(user);
  const outcomes = await svc.recordUsage(A, [r, r, { ...r, input_tokens: 5 }]);
  expect(outcomes.map((o) => (o.ok ? [o.reply.cost_micros, o.reply.duplicate] : null))).toEqual([
    [3_000, false],
    [3_000, true],
    [3_000, true],
  ]);
  expect((await svc.check(A, { user_id: user })).spent_micros).toBe(3_000);
});

describe('reservations in the token form', () => {
  it('reserves the most the request can cost and settles at the real cost', async () => {
    const svc = service(new TestClock(new Date()));
    const user = await limitedMember(100_000);
    const res = await svc.reserve(A, {
      request_id: randomUUID(),
      user_id: user,
      provider: 'acme',
      model: 'm1',
      max_input_tokens: 10_000,
      max_output_tokens: 1_000,
    });
    // 10,000 * 2 + 1,000 * 10 = 30,000 micros.
    expect(res).toMatchObject({
      allowed: true,
      amount_micros: 30_000,
      held_micros: 30_000,
      remaining_micros: 70_000,
    });
    const usage = await recordOne(svc, record(user, { reservation_id: res.reservation_id }));
    expect(usage.reservation_settled).toBe(true);
    expect(await svc.check(A, { user_id: user })).toMatchObject({ spent_micros: 3_000, held_micros: 0 });
  });

  it('an unpriced model reserves 0 under allow and is denied under block', async () => {
    const user = await limitedMember(100_000);
    const ask = {
      user_id: user,
      provider: 'acme',
      model: 'unknown',
      max_input_tokens: 10,
      max_output_tokens: 10,
    };
    const allowed = await service(new TestClock(new Date())).reserve(A, { ...ask, request_id: randomUUID() });
    expect(allowed).toMatchObject({ allowed: true, amount_micros: 0 });
    const id = randomUUID();
    const blocked = await service(new TestClock(new Date()), { unpricedUsage: 'block' }).reserve(A, {
      ...ask,
      request_id: id,
    });
    expect(blocked).toMatchObject({ allowed: false, reason: 'unpriced_model', amount_micros: 0 });
    expect(await sqlRows(ds, 'SELECT 1 FROM ai_reservations WHERE request_id = $1', [id])).toEqual([]);
  });

  it('refuses a body with both forms, or with half the token form', async () => {
    const svc = service(new TestClock(new Date()));
    const user = await limitedMember(100);
    await expect(
      svc.reserve(A, { request_id: 'x', user_id: user, amount_micros: 1, provider: 'acme' }),
    ).rejects.toMatchObject({ validations: [{ field: 'provider' }] });
    await expect(svc.reserve(A, { request_id: 'y', user_id: user, provider: 'acme' })).rejects.toMatchObject({
      code: 'invalid_argument',
    });
  });
});

it('100 parallel reservations against a limit that fits 7: exactly 7 replies allow, each with its reservation', async () => {
  const svc = service(new TestClock(new Date()));
  const user = await limitedMember(7 * 1_000 + 500);
  const replies = await Promise.all(
    Array.from({ length: 100 }, () =>
      svc.reserve(A, { request_id: randomUUID(), user_id: user, amount_micros: 1_000 }),
    ),
  );
  const allowed = replies.filter((r) => r.allowed);
  expect(allowed).toHaveLength(7);
  expect(new Set(allowed.map((r) => r.reservation_id)).size).toBe(7);
  // A refusal decided on the locked counter says so, whatever the statement's snapshot showed.
  expect(new Set(replies.filter((r) => !r.allowed).map((r) => r.reason))).toEqual(
    new Set(['insufficient_budget']),
  );
  expect(replies.filter((r) => !r.allowed).every((r) => r.reservation_id === undefined)).toBe(true);
});
