import { isDeepStrictEqual } from 'node:util';
import type { Pool } from 'pg';
import { closePool, createTestDatabase, type TestDatabase, testPool } from '@aigov/testing';
import { count } from './helpers/identity-sql';
import {
  RACE_KINDS,
  createOverrideRaceFixtures,
  expectedAfterRound,
  orphanOverrides,
  rewrittenOverrideCheck,
  runOverrideRace,
  type OverrideRaceFixture,
  type OverrideRaceOutcome,
  type RaceKind,
} from './helpers/override-race';

// The override membership invariant under concurrent writers: an override upsert racing the
// removal of the membership it needs (group membership, Everyone membership, leaving the
// organization) never leaves an override for a non-member. Real PostgreSQL, READ COMMITTED.

const SERIALIZED_ROUNDS = 2_100; // 700 per kind, half of them over a pre-existing override (upsert = update)
const WIDENED_ROUNDS = 600;
const UNSERIALIZED_ROUNDS = 600;
const WORKERS = 4; // two connections each: 8 in the pool

interface RaceEnv {
  db: TestDatabase;
  pool: Pool;
  definition: string;
}

/** A fresh migrated database with its own pool, optionally with the override check rewritten. */
async function raceDatabase(rewrite?: { dropLock: boolean; sleepSeconds: number }): Promise<RaceEnv> {
  const db = await createTestDatabase();
  const pool = testPool({
    connectionString: db.url,
    max: 2 * WORKERS,
    application_name: 'aigov-override-race-test',
  });
  if (rewrite) await pool.query(await rewrittenOverrideCheck(pool, rewrite));
  const res = await pool.query<{ def: string }>(
    `SELECT pg_get_functiondef('user_ai_budget_overrides_check_member()'::regprocedure) AS def`,
  );
  return { db, pool, definition: res.rows[0].def };
}

interface RaceReport extends OverrideRaceOutcome {
  fixtures: OverrideRaceFixture[];
  orphans: { user_id: string; group_id: string }[];
  orphansByKind: Record<RaceKind, number>;
}

async function race(pool: Pool, rounds: number, label: string): Promise<RaceReport> {
  const fixtures = await createOverrideRaceFixtures(pool, rounds);
  const started = Date.now();
  const outcome = await runOverrideRace(pool, fixtures, WORKERS);
  const elapsed = Date.now() - started;
  const orphans = await orphanOverrides(pool);
  const kindOfUser = new Map(fixtures.map((f) => [f.userId, f.kind]));
  const orphansByKind: Record<RaceKind, number> = { group: 0, everyone: 0, 'leave-org': 0 };
  for (const o of orphans) orphansByKind[kindOfUser.get(o.user_id) ?? 'group']++;
  const perKind = RACE_KINDS.map((kind) => {
    const k = outcome.byKind[kind];
    return (
      `  ${kind}: ${k.rounds} rounds, A won ${k.aWon}, A lost ${k.aLost}, deadlocks ${k.deadlocks}, ` +
      `(probably) waited ${k.waited}, orphans ${orphansByKind[kind]}`
    );
  });
  console.log(
    `override race, ${label}: ${outcome.rounds} rounds in ${elapsed} ms, orphans ${orphans.length}\n${perKind.join('\n')}`,
  );
  return { ...outcome, fixtures, orphans, orphansByKind };
}

/**
 * A won and A lost in every kind. And no deadlock: the upsert's BEFORE INSERT trigger locks the
 * membership row before ON CONFLICT locks the existing override row, which is the order the removal
 * takes them in (membership row, then the override rows its trigger deletes).
 */
function expectBothOutcomesAndNoDeadlock(result: RaceReport): void {
  for (const kind of RACE_KINDS) {
    const k = result.byKind[kind];
    expect({ kind, aWon: k.aWon > 0, aLost: k.aLost > 0, deadlocks: k.deadlocks }).toEqual({
      kind,
      aWon: true,
      aLost: true,
      deadlocks: 0,
    });
  }
}

interface AuditEntry {
  group_id: string | null;
  organization_id: string | null;
  actor: string;
  actor_id: string | null;
  action: string;
  reason: string | null;
}

/**
 * Per round, the surviving override and the cascade's audit entries are exactly what the commit
 * order implies: every override removed by a cascade has one entry (system:database,
 * membership_removed), nothing else has one; and every committed removal left no membership.
 */
async function expectOverridesAndAuditsMatchRounds(
  pool: Pool,
  result: RaceReport,
  label: string,
): Promise<void> {
  const overrides = await pool.query<{ user_id: string; group_id: string }>(
    'SELECT user_id, group_id FROM user_ai_budget_overrides',
  );
  const overrideOf = new Map(overrides.rows.map((o) => [o.user_id, o.group_id]));
  const audits = await pool.query<AuditEntry & { resource_id: string }>(
    `SELECT resource_id, diff->'group'->'before'->>'id' AS group_id, organization_id, actor, actor_id, action, reason
       FROM audit_logs WHERE resource_type = 'user_ai_budget_override'`,
  );
  const auditsOf = new Map<string, AuditEntry[]>();
  for (const { resource_id, ...entry } of audits.rows) {
    auditsOf.set(resource_id, [...(auditsOf.get(resource_id) ?? []), entry]);
  }

  const mismatches: unknown[] = [];
  let cascaded = 0;
  result.fixtures.forEach((f, i) => {
    const round = result.results[i];
    const want = expectedAfterRound(f, round);
    cascaded += want.auditedGroupIds.length;
    const got = { override: overrideOf.get(f.userId) ?? null, audits: auditsOf.get(f.userId) ?? [] };
    const expected = {
      override: want.overrideGroupId,
      audits: want.auditedGroupIds.map((groupId): AuditEntry => ({
        group_id: groupId,
        organization_id: f.organizationId,
        actor: 'system:database',
        actor_id: null,
        action: 'delete',
        reason: 'membership_removed',
      })),
    };
    if (!isDeepStrictEqual(got, expected)) mismatches.push({ fixture: f, round, got, expected });
  });
  expect(mismatches.slice(0, 5)).toEqual([]);
  expect(audits.rows).toHaveLength(cascaded);
  console.log(`override race, ${label}: ${cascaded} overrides removed by a cascade, each audited`);

  // Every committed removal (all rounds but deadlock victims) left no membership behind.
  const removals = result.fixtures.filter((_f, i) => result.results[i].bCommitted);
  expect(
    await count(
      pool,
      `SELECT 1 FROM group_members_expanded e JOIN unnest($1::uuid[], $2::uuid[]) AS r (u, g)
         ON e.user_id = r.u AND e.group_id = r.g`,
      [removals.map((f) => f.userId), removals.map((f) => f.targetGroupId)],
    ),
  ).toBe(0);
}

describe('override upsert racing membership removal', () => {
  const opened: RaceEnv[] = [];

  afterAll(async () => {
    for (const { db, pool } of opened) {
      await closePool(pool);
      await db.drop();
    }
  });

  it(`with the migration's trigger (FOR KEY SHARE): ${SERIALIZED_ROUNDS} rounds leave no override without its membership`, async () => {
    const env = await raceDatabase();
    opened.push(env);
    expect(env.definition.match(/FOR KEY SHARE/g)).toHaveLength(2);

    const result = await race(env.pool, SERIALIZED_ROUNDS, 'with FOR KEY SHARE');

    expect(result.rounds).toBe(SERIALIZED_ROUNDS);
    // The one anti-join: no override without its membership.
    expect(result.orphans).toEqual([]);
    expectBothOutcomesAndNoDeadlock(result);

    await expectOverridesAndAuditsMatchRounds(env.pool, result, 'with FOR KEY SHARE');
  }, 120_000);

  it(`with FOR KEY SHARE and the same pg_sleep(0.002) widened window: ${WIDENED_ROUNDS} rounds, still no orphan`, async () => {
    const env = await raceDatabase({ dropLock: false, sleepSeconds: 0.002 });
    opened.push(env);
    expect(env.definition.match(/FOR KEY SHARE/g)).toHaveLength(2);
    expect(env.definition).toMatch(/pg_sleep\(0\.002\);\s*RETURN NEW;\s*END/);

    const result = await race(env.pool, WIDENED_ROUNDS, 'with FOR KEY SHARE + pg_sleep(0.002)');

    expect(result.rounds).toBe(WIDENED_ROUNDS);
    expect(result.orphans).toEqual([]);
    expectBothOutcomesAndNoDeadlock(result);
    await expectOverridesAndAuditsMatchRounds(env.pool, result, 'with FOR KEY SHARE + pg_sleep(0.002)');
  }, 120_000);

  it(`without FOR KEY SHARE and with pg_sleep(0.002) (control): ${UNSERIALIZED_ROUNDS} rounds leave orphans, so the test sees the race`, async () => {
    const env = await raceDatabase({ dropLock: true, sleepSeconds: 0.002 });
    opened.push(env);
    expect(env.definition).not.toMatch(/FOR KEY SHARE/);
    expect(env.definition).toMatch(/pg_sleep\(0\.002\);\s*RETURN NEW;\s*END/);

    const result = await race(env.pool, UNSERIALIZED_ROUNDS, 'without FOR KEY SHARE + pg_sleep(0.002)');

    expect(result.rounds).toBe(UNSERIALIZED_ROUNDS);
    expect(result.orphans.length).toBeGreaterThan(0);
  }, 120_000);
});
