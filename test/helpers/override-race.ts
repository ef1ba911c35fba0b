import { randomUUID } from 'node:crypto';
import { DatabaseError, type Pool, type PoolClient } from 'pg';
import { insertMembershipSets, sqlRows, uniqueName, type SqlTarget } from '@aigov/testing';
import { isCheckViolation } from './identity-sql';

// The race between an override upsert (docs/decisions) and the removal of the membership it needs.

/**
 * - `group`: the override is on a normal group; the removal deletes the group_members row.
 * - `everyone`: the override is on the Everyone group (id = organization id); the removal deletes
 *   the organization_members row.
 * - `leave-org`: the override is on a normal group; the removal deletes the organization_members
 *   row, which removes the group_members row in the same transaction.
 */
export type RaceKind = 'group' | 'everyone' | 'leave-org';
export const RACE_KINDS: readonly RaceKind[] = ['group', 'everyone', 'leave-org'];

export interface OverrideRaceFixture {
  kind: RaceKind;
  organizationId: string;
  userId: string;
  /** A normal group of the organization; the user is an explicit member of it. */
  groupId: string;
  /** The group A writes the override for: `groupId`, or `organizationId` for `everyone`. */
  targetGroupId: string;
  /**
   * The group of an override that exists before the round (so A's upsert takes the ON CONFLICT
   * DO UPDATE path and moves it), or null (A inserts). The Everyone group for `group` and
   * `leave-org`, the normal group for `everyone`.
   */
  preexistingGroupId: string | null;
}

/** The same upsert as OverrideRepository.upsert. */
export const UPSERT_OVERRIDE = `
  INSERT INTO user_ai_budget_overrides AS o (user_id, group_id, spend_limit_micros) VALUES ($1, $2, $3)
  ON CONFLICT (user_id) DO UPDATE
    SET group_id = EXCLUDED.group_id, spend_limit_micros = EXCLUDED.spend_limit_micros,
        updated_at = CASE WHEN (o.group_id, o.spend_limit_micros) IS DISTINCT FROM (EXCLUDED.group_id, EXCLUDED.spend_limit_micros)
                          THEN now() ELSE o.updated_at END`;

const MEMBERSHIP_CONSTRAINT = 'user_ai_budget_overrides_must_be_group_member';

/**
 * `n` fixtures, kinds in turn, every other fixture of a kind with a pre-existing override; created
 * in transactions of up to `batch` fixtures.
 */
export async function createOverrideRaceFixtures(
  pool: Pool,
  n: number,
  batch = 500,
): Promise<OverrideRaceFixture[]> {
  const fixtures: OverrideRaceFixture[] = [];
  for (let i = 0; i < n; i++) {
    const kind = RACE_KINDS[i % RACE_KINDS.length];
    const withPreexisting = Math.floor(i / RACE_KINDS.length) % 2 === 1;
    const organizationId = randomUUID();
    const groupId = randomUUID();
    const targetGroupId = kind === 'everyone' ? organizationId : groupId;
    const otherGroupId = kind === 'everyone' ? groupId : organizationId;
    fixtures.push({
      kind,
      organizationId,
      userId: randomUUID(),
      groupId,
      targetGroupId,
      preexistingGroupId: withPreexisting ? otherGroupId : null,
    });
  }
  for (let from = 0; from < n; from += batch) {
    await insertFixtures(pool, fixtures.slice(from, from + batch));
  }
  return fixtures;
}

async function insertFixtures(pool: Pool, fixtures: OverrideRaceFixture[]): Promise<void> {
  const orgs = fixtures.map((f) => f.organizationId);
  const users = fixtures.map((f) => f.userId);
  const groups = fixtures.map((f) => f.groupId);
  const names = fixtures.map(() => uniqueName('ovr'));
  const pre = fixtures.filter((f) => f.preexistingGroupId !== null);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await insertMembershipSets(client, { orgs, users, groups, names });
    await client.query(
      'INSERT INTO group_members (group_id, user_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])',
      [groups, users],
    );
    await client.query(
      `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros)
       SELECT u, g, 1000000 FROM unnest($1::uuid[], $2::uuid[]) AS o (u, g)`,
      [pre.map((f) => f.userId), pre.map((f) => f.preexistingGroupId)],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

export interface RoundResult {
  /** A's upsert committed. */
  aCommitted: boolean;
  /** B's removal committed. */
  bCommitted: boolean;
  /** One side was chosen as a deadlock victim (40P01) and rolled back. */
  deadlock: boolean;
  /**
   * One side's statement was sent before the other side ended its transaction and returned only
   * after that: it (very probably) waited for the other transaction's row lock. A timing estimate.
   */
  waited: boolean;
}

/** Uniform in [0, max) seconds, for pg_sleep. */
const jitter = (maxSeconds: number): number => Math.random() * maxSeconds;

function isDeadlock(err: unknown): boolean {
  return err instanceof DatabaseError && err.code === '40P01';
}

function removalOf(f: OverrideRaceFixture): { sql: string; params: string[] } {
  return f.kind === 'group'
    ? { sql: 'DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', params: [f.groupId, f.userId] }
    : {
        sql: 'DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2',
        params: [f.organizationId, f.userId],
      };
}

/**
 * One round on two connections whose transactions are both open before either statement runs:
 * (A) upsert the override on the target group, (B) remove the membership; each after a random
 * 0-2 ms offset and followed by a random 0-2 ms pause inside its transaction before COMMIT. The
 * two are dispatched in random order. A may fail with the membership check violation, and either
 * side may be a deadlock victim; both roll back then. Anything else throws.
 */
export async function overrideRaceRound(
  a: PoolClient,
  b: PoolClient,
  f: OverrideRaceFixture,
): Promise<RoundResult> {
  await Promise.all([a.query('BEGIN'), b.query('BEGIN')]);
  const ta = { sent: 0, done: 0, endSent: 0, ended: 0 };
  const tb = { sent: 0, done: 0, endSent: 0, ended: 0 };
  let deadlock = false;

  const runA = async (): Promise<boolean> => {
    await a.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    ta.sent = performance.now();
    try {
      await a.query(UPSERT_OVERRIDE, [f.userId, f.targetGroupId, 2_000_000]);
    } catch (err) {
      ta.done = performance.now();
      if (isDeadlock(err)) deadlock = true;
      else if (!isCheckViolation(err, MEMBERSHIP_CONSTRAINT)) throw err;
      ta.endSent = performance.now();
      await a.query('ROLLBACK');
      ta.ended = performance.now();
      return false;
    }
    ta.done = performance.now();
    await a.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    ta.endSent = performance.now();
    await a.query('COMMIT');
    ta.ended = performance.now();
    return true;
  };
  const runB = async (): Promise<boolean> => {
    const removal = removalOf(f);
    await b.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    tb.sent = performance.now();
    try {
      const res = await b.query(removal.sql, removal.params);
      if (res.rowCount !== 1) throw new Error(`removal deleted ${res.rowCount} rows: ${JSON.stringify(f)}`);
    } catch (err) {
      tb.done = performance.now();
      if (!isDeadlock(err)) throw err;
      deadlock = true;
      tb.endSent = performance.now();
      await b.query('ROLLBACK');
      tb.ended = performance.now();
      return false;
    }
    tb.done = performance.now();
    await b.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    tb.endSent = performance.now();
    await b.query('COMMIT');
    tb.ended = performance.now();
    return true;
  };

  let pa: Promise<boolean>;
  let pb: Promise<boolean>;
  if (Math.random() < 0.5) {
    pa = runA();
    pb = runB();
  } else {
    pb = runB();
    pa = runA();
  }
  const [aCommitted, bCommitted] = await Promise.all([pa, pb]);
  const bWaitedForA = tb.sent < ta.endSent && tb.done >= ta.ended;
  const aWaitedForB = ta.sent < tb.endSent && ta.done >= tb.ended;
  return { aCommitted, bCommitted, deadlock, waited: bWaitedForA || aWaitedForB };
}

export interface KindOutcome {
  rounds: number;
  /** A's upsert committed. */
  aWon: number;
  /** A's upsert was rejected with user_ai_budget_overrides_must_be_group_member. */
  aLost: number;
  /** Rounds where one side was a deadlock victim. */
  deadlocks: number;
  waited: number;
}

export interface OverrideRaceOutcome {
  rounds: number;
  byKind: Record<RaceKind, KindOutcome>;
  /** Per fixture, in fixture order. */
  results: RoundResult[];
}

/** Runs one round per fixture, `workers` rounds at a time, each worker on its own two connections. */
export async function runOverrideRace(
  pool: Pool,
  fixtures: OverrideRaceFixture[],
  workers: number,
): Promise<OverrideRaceOutcome> {
  const empty = (): KindOutcome => ({ rounds: 0, aWon: 0, aLost: 0, deadlocks: 0, waited: 0 });
  const outcome: OverrideRaceOutcome = {
    rounds: 0,
    byKind: { group: empty(), everyone: empty(), 'leave-org': empty() },
    results: new Array<RoundResult>(fixtures.length),
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    const a = await pool.connect();
    const b = await pool.connect();
    let failure: Error | undefined;
    try {
      while (next < fixtures.length) {
        const i = next++;
        const f = fixtures[i];
        const r = await overrideRaceRound(a, b, f);
        outcome.results[i] = r;
        outcome.rounds++;
        const k = outcome.byKind[f.kind];
        k.rounds++;
        if (r.aCommitted) k.aWon++;
        else if (!r.deadlock) k.aLost++;
        if (r.deadlock) k.deadlocks++;
        if (r.waited) k.waited++;
      }
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      throw failure;
    } finally {
      // After a failure the connections may sit in an open transaction or a lock wait: destroy them.
      a.release(failure);
      b.release(failure);
    }
  };
  await Promise.all(Array.from({ length: workers }, () => worker()));
  return outcome;
}

/** Overrides whose user is not a member of their group (one anti-join over group_members_expanded). */
export async function orphanOverrides(db: SqlTarget): Promise<{ user_id: string; group_id: string }[]> {
  return sqlRows<{ user_id: string; group_id: string }>(
    db,
    `SELECT o.user_id, o.group_id FROM user_ai_budget_overrides o
      WHERE NOT EXISTS (SELECT 1 FROM group_members_expanded e
                         WHERE e.user_id = o.user_id AND e.group_id = o.group_id)`,
  );
}

/**
 * What a fixture's override and cascade audit entries must be after its round, given who committed:
 * the override last written (A's if A committed, else the pre-existing one) is removed when B
 * committed a removal that covers its group, and then it has exactly one audit entry.
 */
export function expectedAfterRound(
  f: OverrideRaceFixture,
  r: RoundResult,
): { overrideGroupId: string | null; auditedGroupIds: string[] } {
  const last = r.aCommitted ? f.targetGroupId : f.preexistingGroupId;
  if (last === null) return { overrideGroupId: null, auditedGroupIds: [] };
  // Removing the group membership removes only that group's override; leaving the organization
  // removes the overrides on the organization's groups, Everyone included.
  const removed = !r.bCommitted ? [] : f.kind === 'group' ? [f.groupId] : [f.groupId, f.organizationId];
  return removed.includes(last)
    ? { overrideGroupId: null, auditedGroupIds: [last] }
    : { overrideGroupId: last, auditedGroupIds: [] };
}

/**
 * The live definition of user_ai_budget_overrides_check_member(), rewritten: without its two
 * `FOR KEY SHARE` clauses when `dropLock`, and with `PERFORM pg_sleep(<seconds>)` just before the
 * final `RETURN NEW` to widen the race window. Fails when the expected text is not found.
 */
export async function rewrittenOverrideCheck(
  db: SqlTarget,
  opts: { dropLock: boolean; sleepSeconds: number },
): Promise<string> {
  const [{ def: original }] = await sqlRows<{ def: string }>(
    db,
    `SELECT pg_get_functiondef('user_ai_budget_overrides_check_member()'::regprocedure) AS def`,
  );
  if ((original.match(/ FOR KEY SHARE;/g) ?? []).length !== 2) {
    throw new Error(
      `expected exactly two FOR KEY SHARE in user_ai_budget_overrides_check_member:\n${original}`,
    );
  }
  const unlocked = opts.dropLock ? original.replace(/ FOR KEY SHARE;/g, ';') : original;
  const at = unlocked.lastIndexOf('RETURN NEW;');
  if (at < 0 || at < unlocked.lastIndexOf('END IF;')) {
    throw new Error(`no final RETURN NEW in user_ai_budget_overrides_check_member:\n${original}`);
  }
  return `${unlocked.slice(0, at)}PERFORM pg_sleep(${opts.sleepSeconds});\n        ${unlocked.slice(at)}`;
}
