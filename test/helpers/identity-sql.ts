import { randomUUID } from 'node:crypto';
import { DatabaseError, type Pool, type PoolClient } from 'pg';
import { insertMembershipSets, sqlRows, uniqueName, type SqlTarget } from '@aigov/testing';

// SQL helpers of the identity-schema tests: constraint violations, counts, and the race between
// adding a group membership and removing the organization membership. The rows themselves come
// from the factories of @aigov/testing.

/** The error a statement fails with; throws when the statement succeeds or fails outside the database. */
export async function violation(db: SqlTarget, sql: string, params: unknown[] = []): Promise<DatabaseError> {
  try {
    await db.query(sql, params);
  } catch (err) {
    if (err instanceof DatabaseError) return err;
    throw err;
  }
  throw new Error(`statement succeeded but should have failed: ${sql} ${JSON.stringify(params)}`);
}

/** Whether an error is the database's check violation (23514) under the given constraint name. */
export function isCheckViolation(err: unknown, constraint: string): boolean {
  return err instanceof DatabaseError && err.code === '23514' && err.constraint === constraint;
}

/** The ids of the groups a user is an explicit member of, sorted. */
export async function groupsOf(db: SqlTarget, userId: string): Promise<string[]> {
  const rows = await sqlRows<{ group_id: string }>(
    db,
    'SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id',
    [userId],
  );
  return rows.map((r) => r.group_id);
}

export async function count(db: SqlTarget, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await sqlRows<{ n: number }>(
    db,
    `SELECT count(*)::int AS n FROM (${sql}) AS counted`,
    params,
  );
  return row.n;
}

/** Group memberships whose user is not a member of the group's organization (must always be 0). */
export async function orphanGroupMemberships(db: SqlTarget): Promise<number> {
  return count(
    db,
    `SELECT 1 FROM group_members gm JOIN groups g ON g.id = gm.group_id
      WHERE NOT EXISTS (SELECT 1 FROM organization_members om
                         WHERE om.organization_id = g.organization_id AND om.user_id = gm.user_id)`,
  );
}

// ---------------------------------------------------------------------------------------------
// The race between adding a group membership and removing the organization membership.

export interface RaceFixture {
  organizationId: string;
  userId: string;
  groupId: string;
}

/** `n` fresh (organization, user, organization membership, group) sets, created in one transaction. */
export async function createRaceFixtures(pool: Pool, n: number): Promise<RaceFixture[]> {
  const fixtures = Array.from({ length: n }, () => ({
    organizationId: randomUUID(),
    userId: randomUUID(),
    groupId: randomUUID(),
  }));
  const orgs = fixtures.map((f) => f.organizationId);
  const users = fixtures.map((f) => f.userId);
  const groups = fixtures.map((f) => f.groupId);
  const names = fixtures.map(() => uniqueName('race'));
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await insertMembershipSets(client, { orgs, users, groups, names });
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
  return fixtures;
}

export interface RaceOutcome {
  rounds: number;
  /** A's group-membership insert committed. */
  aWon: number;
  /** A's insert was rejected with group_members_must_be_org_member. */
  aLost: number;
  /**
   * Rounds where one side's statement was sent before the other side sent its COMMIT/ROLLBACK and
   * returned only after that COMMIT/ROLLBACK had returned: it (very probably) waited for the other
   * transaction's row lock. A timing estimate, not an exact count: a statement that is merely slow
   * (e.g. a pg_sleep in the trigger) is counted too.
   */
  waited: number;
}

/** Uniform in [0, max) seconds, for pg_sleep. */
const jitter = (maxSeconds: number): number => Math.random() * maxSeconds;

/**
 * One round on two connections whose transactions are both open before either statement runs:
 * (A) INSERT the group membership, (B) DELETE the organization membership; each after a random
 * offset of 0-2 ms and followed by a random 0-3 ms pause inside its transaction before COMMIT.
 * The two are dispatched in random order. Returns whether A committed and whether a statement
 * waited for the other transaction to end.
 */
async function raceRound(
  a: PoolClient,
  b: PoolClient,
  f: RaceFixture,
): Promise<{ won: boolean; waited: boolean }> {
  await Promise.all([a.query('BEGIN'), b.query('BEGIN')]);
  const t = { insertSent: 0, insertDone: 0, aEndSent: 0, aEnded: 0 };
  const u = { deleteSent: 0, deleteDone: 0, bEndSent: 0, bEnded: 0 };

  const runA = async (): Promise<boolean> => {
    await a.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    t.insertSent = performance.now();
    try {
      await a.query('INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [f.groupId, f.userId]);
    } catch (err) {
      t.insertDone = performance.now();
      if (!isCheckViolation(err, 'group_members_must_be_org_member')) throw err;
      t.aEndSent = performance.now();
      await a.query('ROLLBACK');
      t.aEnded = performance.now();
      return false;
    }
    t.insertDone = performance.now();
    await a.query('SELECT pg_sleep($1)', [jitter(0.003)]);
    t.aEndSent = performance.now();
    await a.query('COMMIT');
    t.aEnded = performance.now();
    return true;
  };
  const runB = async (): Promise<void> => {
    await b.query('SELECT pg_sleep($1)', [jitter(0.002)]);
    u.deleteSent = performance.now();
    await b.query('DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
      f.organizationId,
      f.userId,
    ]);
    u.deleteDone = performance.now();
    await b.query('SELECT pg_sleep($1)', [jitter(0.003)]);
    u.bEndSent = performance.now();
    await b.query('COMMIT');
    u.bEnded = performance.now();
  };

  let pa: Promise<boolean>;
  let pb: Promise<void>;
  if (Math.random() < 0.5) {
    pa = runA();
    pb = runB();
  } else {
    pb = runB();
    pa = runA();
  }
  const [won] = await Promise.all([pa, pb]);
  const bWaitedForA = u.deleteSent < t.aEndSent && u.deleteDone >= t.aEnded;
  const aWaitedForB = t.insertSent < u.bEndSent && t.insertDone >= u.bEnded;
  return { won, waited: bWaitedForA || aWaitedForB };
}

/** Runs one round per fixture, `workers` rounds at a time, each worker on its own two connections. */
export async function runMembershipRace(
  pool: Pool,
  fixtures: RaceFixture[],
  workers: number,
): Promise<RaceOutcome> {
  const outcome: RaceOutcome = { rounds: 0, aWon: 0, aLost: 0, waited: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    const a = await pool.connect();
    const b = await pool.connect();
    let failure: Error | undefined;
    try {
      while (next < fixtures.length) {
        const f = fixtures[next++];
        const { won, waited } = await raceRound(a, b, f);
        outcome.rounds++;
        if (won) outcome.aWon++;
        else outcome.aLost++;
        if (waited) outcome.waited++;
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

/**
 * The live definition of group_members_check_org_member(), rewritten: without `FOR KEY SHARE`
 * when `dropLock`, and with `PERFORM pg_sleep(<seconds>)` after the membership check (just
 * before the final `RETURN NEW`) to widen the race window. Everything else stays identical.
 */
export async function rewrittenCheckFunction(
  db: SqlTarget,
  opts: { dropLock: boolean; sleepSeconds: number },
): Promise<string> {
  const [{ def: original }] = await sqlRows<{ def: string }>(
    db,
    `SELECT pg_get_functiondef('group_members_check_org_member()'::regprocedure) AS def`,
  );
  if ((original.match(/FOR KEY SHARE/g) ?? []).length !== 1) {
    throw new Error(`expected exactly one FOR KEY SHARE in group_members_check_org_member:\n${original}`);
  }
  const unlocked = opts.dropLock ? original.replace(/\s+FOR KEY SHARE;/, ';') : original;
  const at = unlocked.lastIndexOf('RETURN NEW;');
  if (at < 0) throw new Error(`no final RETURN NEW in group_members_check_org_member:\n${original}`);
  return `${unlocked.slice(0, at)}PERFORM pg_sleep(${opts.sleepSeconds});\n  ${unlocked.slice(at)}`;
}
