import { q, type Db } from './types';

export interface UserOverride {
  userId: string;
  groupId: string;
  spendLimitMicros: bigint;
  createdAt: Date;
  updatedAt: Date;
}

interface Row {
  userId: string;
  groupId: string;
  spendLimitMicros: string;
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = `user_id AS "userId", group_id AS "groupId", spend_limit_micros AS "spendLimitMicros",
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const toOverride = (r: Row): UserOverride => ({ ...r, spendLimitMicros: BigInt(r.spendLimitMicros) });

/**
 * user_ai_budget_overrides. The membership invariant is the database's (trigger
 * user_ai_budget_overrides_check_member, constraint name user_ai_budget_overrides_must_be_group_member);
 * nothing here pre-checks membership.
 */
export class OverrideRepository {
  constructor(private readonly db: Db) {}

  async get(userId: string): Promise<UserOverride | null> {
    const rows = await q<Row[]>(
      this.db,
      `SELECT ${COLUMNS} FROM user_ai_budget_overrides WHERE user_id = $1`,
      [userId],
    );
    return rows[0] ? toOverride(rows[0]) : null;
  }

  /**
   * Takes the user's override lock for the rest of the transaction: readers of "the override
   * before" and the write then see one consistent state even when two requests race.
   */
  async lock(userId: string): Promise<void> {
    await q(this.db, `SELECT pg_advisory_xact_lock(hashtextextended('user_ai_budget_overrides/' || $1, 0))`, [
      userId,
    ]);
  }

  /** Creates or replaces the override; the trigger rejects a non-member. */
  async write(userId: string, groupId: string, limit: bigint): Promise<UserOverride> {
    const rows = await q<Row[]>(
      this.db,
      `INSERT INTO user_ai_budget_overrides AS o (user_id, group_id, spend_limit_micros) VALUES ($1, $2, $3)
       ON CONFLICT (user_id) DO UPDATE
         SET group_id = EXCLUDED.group_id, spend_limit_micros = EXCLUDED.spend_limit_micros,
             updated_at = CASE WHEN (o.group_id, o.spend_limit_micros) IS DISTINCT FROM (EXCLUDED.group_id, EXCLUDED.spend_limit_micros)
                               THEN now() ELSE o.updated_at END
       RETURNING ${COLUMNS}`,
      [userId, groupId, limit.toString()],
    );
    return toOverride(rows[0]);
  }

  async delete(userId: string): Promise<UserOverride | null> {
    const rows = await q<Row[]>(
      this.db,
      `DELETE FROM user_ai_budget_overrides WHERE user_id = $1 RETURNING ${COLUMNS}`,
      [userId],
    );
    return rows[0] ? toOverride(rows[0]) : null;
  }
}
