import { randomUUID } from 'node:crypto';
import { createDataSource, SpendRepository, type UsageInput } from '@aigov/db';
import {
  addGroupMember,
  addOrganizationMember,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  insertOverride,
  insertUser,
  someoneWaitsForLock,
  sqlRows,
  waitForNoConnections,
  type TestDatabase,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';

// The spend ledger's statements on real PostgreSQL: budget resolution (CONTRACT 7), grants that
// race for the last micros of a limit, idempotent usage, and holds that end exactly once.

let db: TestDatabase;
let ds: DataSource;
let spend: SpendRepository;
const PERIOD = '2026-12-01';

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 40, applicationName: 'aigov-spend-repository-test' });
  await ds.initialize();
  spend = new SpendRepository(ds);
});
afterAll(async () => {
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

const budget = (groupId: string, micros: number) =>
  sqlRows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
    groupId,
    micros,
  ]);
const counter = async (userId: string, period = PERIOD) =>
  (
    await sqlRows<{ spent_micros: string; held_micros: string }>(
      ds,
      'SELECT spent_micros, held_micros FROM ai_spend_counters WHERE user_id = $1 AND period_start = $2',
      [userId, period],
    )
  )[0];
/** A member of a fresh organization whose Everyone group has `limit` (or no budget). */
async function member(limit: number | null): Promise<{ userId: string; orgId: string }> {
  const org = await insertOrganization(ds);
  if (limit !== null) await budget(org.id, limit);
  const u = await insertUser(ds);
  await addOrganizationMember(ds, org.id, u.id);
  return { userId: u.id, orgId: org.id };
}
const usage = (userId: string, cost: bigint | null, over: Partial<UsageInput> = {}): UsageInput => ({
  requestId: randomUUID(),
  userId,
  provider: 'anthropic',
  model: 'claude-test',
  inputTokens: 10n,
  outputTokens: 5n,
  cacheReadTokens: 0n,
  cacheWriteTokens: 0n,
  prices: { input: 1n, output: 2n, cacheRead: null, cacheWrite: null },
  priceSource: cost === null ? null : 'default',
  costMicros: cost,
  occurredAt: new Date('2026-12-02T10:00:00Z'),
  periodStart: PERIOD,
  reservationId: null,
  ...over,
});
const hold = (
  userId: string,
  amount: bigint,
  requestId = randomUUID(),
  expiresAt = new Date(Date.now() + 600_000),
) => spend.reserve({ requestId, userId, periodStart: PERIOD, amountMicros: amount, expiresAt });

/** Runs `fn` over `items` with `width` calls in flight at every moment (a pool of 40 connections). */
async function inParallel<T, R>(items: readonly T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

async function expectCountersMatchLedger(): Promise<void> {
  expect(await spend.listCounterDifferences('month')).toEqual([]);
}

describe('budget resolution', () => {
  it('an override wins even when a group budget is higher', async () => {
    const org = await insertOrganization(ds);
    const g = await insertGroup(ds, org.id);
    await budget(org.id, 9_000);
    const u = await insertUser(ds);
    await addOrganizationMember(ds, org.id, u.id);
    await addGroupMember(ds, g.id, u.id);
    await insertOverride(ds, u.id, g.id, 100);
    const s = await spend.getBudgetState(u.id, PERIOD);
    expect(s).toMatchObject({ limitSource: 'user_override', spendLimitMicros: 100n, effectiveGroupId: g.id });
    const c = await spend.listBudgetCandidates(u.id);
    expect(c.map((x) => [x.rank, x.kind, x.spendLimitMicros])).toEqual([
      [1, 'user_override', 100n],
      [2, 'group', 9_000n],
    ]);
  });

  it('the highest budgeted group wins, Everyone included', async () => {
    const org = await insertOrganization(ds);
    const low = await insertGroup(ds, org.id);
    const high = await insertGroup(ds, org.id);
    const unbudgeted = await insertGroup(ds, org.id);
    await budget(org.id, 500);
    await budget(low.id, 100);
    await budget(high.id, 700);
    const u = await insertUser(ds);
    await addOrganizationMember(ds, org.id, u.id);
    for (const g of [low, high, unbudgeted]) await addGroupMember(ds, g.id, u.id);
    expect(await spend.getBudgetState(u.id, PERIOD)).toMatchObject({
      limitSource: 'group',
      spendLimitMicros: 700n,
      effectiveGroupId: high.id,
    });
    expect((await spend.listBudgetCandidates(u.id)).map((c) => c.groupId)).toEqual([high.id, org.id, low.id]);
  });

  it('a budget on Everyone applies to every member', async () => {
    const { userId, orgId } = await member(1_234);
    expect(await spend.getBudgetState(userId, PERIOD)).toMatchObject({
      userStatus: 'active',
      limitSource: 'group',
      spendLimitMicros: 1_234n,
      effectiveGroupId: orgId,
    });
  });

  it('ties go to the earliest organization membership, then the smallest group id', async () => {
    const first = await insertOrganization(ds);
    const second = await insertOrganization(ds);
    await budget(first.id, 300);
    await budget(second.id, 300);
    const u = await insertUser(ds);
    // Joined the second organization first.
    await addOrganizationMember(ds, second.id, u.id);
    await addOrganizationMember(ds, first.id, u.id);
    expect((await spend.getBudgetState(u.id, PERIOD)).effectiveGroupId).toBe(second.id);

    // Two groups of one organization with equal limits: the smaller id.
    const org = await insertOrganization(ds);
    const a = await insertGroup(ds, org.id);
    const b = await insertGroup(ds, org.id);
    await budget(a.id, 50);
    await budget(b.id, 50);
    const v = await insertUser(ds);
    await addOrganizationMember(ds, org.id, v.id);
    await addGroupMember(ds, a.id, v.id);
    await addGroupMember(ds, b.id, v.id);
    expect((await spend.getBudgetState(v.id, PERIOD)).effectiveGroupId).toBe([a.id, b.id].sort()[0]);
  });

  it('no budget anywhere: no limit, attributed to the Everyone group of the earliest organization', async () => {
    const first = await insertOrganization(ds);
    const later = await insertOrganization(ds);
    const u = await insertUser(ds);
    await addOrganizationMember(ds, first.id, u.id);
    await addOrganizationMember(ds, later.id, u.id);
    expect(await spend.getBudgetState(u.id, PERIOD)).toMatchObject({
      limitSource: null,
      spendLimitMicros: null,
      effectiveGroupId: first.id,
    });
    const loner = await insertUser(ds);
    expect(await spend.getBudgetState(loner.id, PERIOD)).toMatchObject({
      userStatus: 'active',
      spendLimitMicros: null,
      effectiveGroupId: null,
    });
  });

  it('a user in several organizations: the highest budget of any of them', async () => {
    const a = await insertOrganization(ds);
    const b = await insertOrganization(ds);
    const bg = await insertGroup(ds, b.id);
    await budget(a.id, 100);
    await budget(bg.id, 800);
    const u = await insertUser(ds);
    await addOrganizationMember(ds, a.id, u.id);
    await addOrganizationMember(ds, b.id, u.id);
    await addGroupMember(ds, bg.id, u.id);
    expect(await spend.getBudgetState(u.id, PERIOD)).toMatchObject({
      spendLimitMicros: 800n,
      effectiveGroupId: bg.id,
    });
  });

  it('an unknown user has no status; a suspended one says so', async () => {
    expect((await spend.getBudgetState(randomUUID(), PERIOD)).userStatus).toBeNull();
    const u = await insertUser(ds, { status: 'suspended' });
    expect((await spend.getBudgetState(u.id, PERIOD)).userStatus).toBe('suspended');
  });

  it('checks, reservations and usage read the materialized row; explain and reconcile the function', async () => {
    const { userId, orgId } = await member(1_000);
    // A stored value the resolution would not give (as only a hand edit could make it).
    await sqlRows(ds, 'UPDATE ai_effective_budgets SET spend_limit_micros = 10 WHERE user_id = $1', [userId]);
    expect((await spend.getBudgetState(userId, PERIOD)).spendLimitMicros).toBe(10n);
    const denied = await spend.reserve({
      requestId: randomUUID(),
      userId,
      periodStart: PERIOD,
      amountMicros: 11n,
      expiresAt: new Date(Date.now() + 60_000),
    });
    expect(denied.kind).toBe('denied');
    await spend.recordUsage([usage(userId, 10n)]);
    expect(
      await sqlRows(ds, 'SELECT spend_limit_micros FROM ai_budget_threshold_events WHERE user_id = $1', [
        userId,
      ]),
    ).toEqual([{ spend_limit_micros: '10' }, { spend_limit_micros: '10' }]);
    expect((await spend.listBudgetCandidates(userId))[0]).toMatchObject({
      groupId: orgId,
      spendLimitMicros: 1_000n,
    });
    expect(await spend.listEffectiveBudgetDifferences()).toEqual([
      {
        userId,
        stored: { limitSource: 'group', spendLimitMicros: 10n, effectiveGroupId: orgId },
        resolved: { limitSource: 'group', spendLimitMicros: 1_000n, effectiveGroupId: orgId },
      },
    ]);
    expect(await spend.repairEffectiveBudgets()).toBe(1);
    expect(await spend.listEffectiveBudgetDifferences()).toEqual([]);
    expect((await spend.getBudgetState(userId, PERIOD)).spendLimitMicros).toBe(1_000n);
  });
});

describe('reservations', () => {
  it('200 parallel reservations against a limit that fits 37 of them: exactly 37 granted', async () => {
    const { userId } = await member(37 * 1_000 + 999);
    const outcomes = await Promise.all(Array.from({ length: 200 }, () => hold(userId, 1_000n)));
    expect(outcomes.filter((o) => o.kind === 'granted')).toHaveLength(37);
    expect(outcomes.filter((o) => o.kind === 'denied')).toHaveLength(163);
    expect(await counter(userId)).toEqual({ spent_micros: '0', held_micros: '37000' });
    await expectCountersMatchLedger();
  });

  it('is idempotent on the request id, also when the same id races itself', async () => {
    const { userId } = await member(10_000);
    const id = randomUUID();
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => hold(userId, 400n, id)));
    const reservationIds = new Set(outcomes.map((o) => (o.kind === 'denied' ? null : o.reservation.id)));
    expect(reservationIds.size).toBe(1);
    expect(outcomes.filter((o) => o.kind === 'granted')).toHaveLength(1);
    expect((await counter(userId)).held_micros).toBe('400');
  });

  it('a denial stores nothing; a limit of 0 blocks even a zero amount', async () => {
    const { userId } = await member(0);
    const id = randomUUID();
    expect((await hold(userId, 0n, id)).kind).toBe('denied');
    expect(await sqlRows(ds, 'SELECT 1 FROM ai_reservations WHERE request_id = $1', [id])).toEqual([]);
  });

  it('denies a suspended or unknown user', async () => {
    const u = await insertUser(ds, { status: 'suspended' });
    const s = await hold(u.id, 1n);
    expect(s.kind).toBe('denied');
    expect(s.state.userStatus).toBe('suspended');
    const unknown = await hold(randomUUID(), 1n);
    expect(unknown).toMatchObject({ kind: 'denied', state: { userStatus: null } });
  });

  it('a refusal that waited for a concurrent grant answers with the counters after that grant', async () => {
    const { userId } = await member(5_000);
    const other = ds.createQueryRunner();
    await other.connect();
    try {
      // Another instance's grant of 4,000: the counter row and the hold written, not committed.
      await other.startTransaction();
      await other.query(
        `INSERT INTO ai_spend_counters (user_id, period_start, held_micros) VALUES ($1, $2, 4000)
         ON CONFLICT (user_id, period_start) DO UPDATE SET held_micros = ai_spend_counters.held_micros + 4000`,
        [userId, PERIOD],
      );
      await other.query(
        `INSERT INTO ai_reservations (request_id, user_id, period_start, amount_micros, expires_at)
         VALUES ($1, $2, $3, 4000, now() + interval '10 minutes')`,
        [randomUUID(), userId, PERIOD],
      );
      // 2,000 fits what this statement's snapshot sees (nothing held); it waits for the row...
      const pending = hold(userId, 2_000n);
      expect(await someoneWaitsForLock(ds)).toBe(true);
      await other.commitTransaction();
      // ...and is refused on the row as committed, with the counters that refused it.
      const outcome = await pending;
      expect(outcome.kind).toBe('denied');
      expect(outcome.state).toMatchObject({ heldMicros: 4_000n, spentMicros: 0n, spendLimitMicros: 5_000n });
      await expectCountersMatchLedger();
    } finally {
      await other.release();
    }
  });

  it('release ends a hold once', async () => {
    const { userId } = await member(null);
    const r = await hold(userId, 700n);
    if (r.kind !== 'granted') throw new Error('not granted');
    const releases = await Promise.all(
      Array.from({ length: 10 }, () => spend.releaseReservation(r.reservation.id)),
    );
    expect(releases.filter(Boolean)).toHaveLength(1);
    expect((await counter(userId)).held_micros).toBe('0');
  });
});

describe('usage', () => {
  it('1,000 parallel records, 10% with duplicated request ids: counter = ledger exactly', async () => {
    const { userId } = await member(null);
    const records = Array.from({ length: 900 }, (_, i) => usage(userId, BigInt(1 + (i % 17))));
    // Each duplicate right beside its original, so that the two are in flight together.
    const all = records.flatMap((r, i) => (i % 9 === 0 ? [r, r] : [r]));
    const results = await inParallel(all, 30, (r) => spend.recordUsage([r]));
    const flat = results.flatMap((x) => x.results);
    expect(flat.filter((r) => r.duplicate)).toHaveLength(100);
    const expected = records.reduce((s, r) => s + (r.costMicros ?? 0n), 0n);
    expect(BigInt((await counter(userId)).spent_micros)).toBe(expected);
    await expectCountersMatchLedger();
  });

  it('a replay returns the first result and changes nothing', async () => {
    const { userId, orgId } = await member(5_000);
    const r = usage(userId, 42n);
    const first = await spend.recordUsage([r]);
    const again = await spend.recordUsage([{ ...r, costMicros: 999n }]);
    expect(first.results[0]).toMatchObject({ costMicros: 42n, effectiveGroupId: orgId, duplicate: false });
    expect(again.results[0]).toMatchObject({ costMicros: 42n, effectiveGroupId: orgId, duplicate: true });
    expect((await counter(userId)).spent_micros).toBe('42');
  });

  it('unpriced usage is recorded with a null cost and counts 0', async () => {
    const { userId } = await member(null);
    const [res] = (await spend.recordUsage([usage(userId, null)])).results;
    expect(res.costMicros).toBeNull();
    expect((await counter(userId)).spent_micros).toBe('0');
  });

  it('usage settles its reservation at the real cost', async () => {
    const { userId } = await member(10_000);
    const r = await hold(userId, 3_000n);
    if (r.kind !== 'granted') throw new Error('not granted');
    const [res] = (await spend.recordUsage([usage(userId, 1_234n, { reservationId: r.reservation.id })]))
      .results;
    expect(res.reservationSettled).toBe(true);
    expect(await counter(userId)).toEqual({ spent_micros: '1234', held_micros: '0' });
    expect((await spend.getReservation(r.reservation.id))?.status).toBe('settled');
    // Another user's usage cannot settle someone else's hold.
    const other = await member(null);
    const r2 = await hold(userId, 100n);
    if (r2.kind !== 'granted') throw new Error('not granted');
    const [res2] = (await spend.recordUsage([usage(other.userId, 1n, { reservationId: r2.reservation.id })]))
      .results;
    expect(res2.reservationSettled).toBe(false);
    expect((await counter(userId)).held_micros).toBe('100');
  });

  it('usage racing expiry and release: each hold ends exactly once', async () => {
    const { userId } = await member(null);
    const past = new Date(Date.now() - 1_000);
    const holds = await Promise.all(Array.from({ length: 150 }, () => hold(userId, 10n, randomUUID(), past)));
    const ids = holds.map((h) => (h.kind === 'granted' ? h.reservation.id : ''));
    expect(ids.every(Boolean)).toBe(true);
    const work: Promise<unknown>[] = [];
    for (const [i, id] of ids.entries()) {
      work.push(spend.recordUsage([usage(userId, 7n, { reservationId: id })]));
      if (i % 3 === 0) work.push(spend.releaseReservation(id));
      if (i % 10 === 0) work.push(spend.expireReservations(new Date(), 20));
    }
    work.push(spend.expireReservations(new Date(), 1_000));
    await Promise.all(work);
    await spend.expireReservations(new Date(), 1_000);
    const statuses = await sqlRows<{ status: string; n: number }>(
      ds,
      `SELECT status, count(*)::int AS n FROM ai_reservations WHERE id = ANY($1::uuid[]) GROUP BY status`,
      [ids],
    );
    expect(statuses.reduce((s, r) => s + r.n, 0)).toBe(150);
    expect(statuses.find((s) => s.status === 'held')).toBeUndefined();
    expect(await counter(userId)).toEqual({ spent_micros: String(150 * 7), held_micros: '0' });
    await expectCountersMatchLedger();
  });

  it('thresholds: one outbox row per user, period and threshold', async () => {
    const { userId } = await member(1_000);
    await spend.recordUsage([usage(userId, 849n)]);
    const rows = () =>
      sqlRows<{ threshold_percent: number }>(
        ds,
        'SELECT threshold_percent FROM ai_budget_threshold_events WHERE user_id = $1 ORDER BY 1',
        [userId],
      );
    expect(await rows()).toEqual([]);
    await Promise.all(Array.from({ length: 20 }, () => spend.recordUsage([usage(userId, 10n)])));
    expect(await rows()).toEqual([{ threshold_percent: 85 }, { threshold_percent: 100 }]);
  });
});
