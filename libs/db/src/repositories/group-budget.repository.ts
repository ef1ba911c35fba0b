import { q, type Db, type GroupBudget } from './types';

interface Row {
  groupId: string;
  spendLimitMicros: string;
  createdAt: Date;
  updatedAt: Date;
}

const toBudget = (r: Row): GroupBudget => ({ ...r, spendLimitMicros: BigInt(r.spendLimitMicros) });
const COLUMNS = `group_id AS "groupId", spend_limit_micros AS "spendLimitMicros", created_at AS "createdAt",
  updated_at AS "updatedAt"`;

export class GroupBudgetRepository {
  constructor(private readonly db: Db) {}

  async get(groupId: string): Promise<GroupBudget | null> {
    const rows = await q<Row[]>(this.db, `SELECT ${COLUMNS} FROM group_ai_budgets WHERE group_id = $1`, [
      groupId,
    ]);
    return rows[0] ? toBudget(rows[0]) : null;
  }

  /**
   * Creates or updates the group's budget. The previous row is read FOR UPDATE first so the
   * before/after pair written to the audit log is exact under concurrent writers.
   */
  async upsert(
    groupId: string,
    spendLimitMicros: bigint,
  ): Promise<{ before: GroupBudget | null; after: GroupBudget }> {
    const before = await q<Row[]>(
      this.db,
      `SELECT ${COLUMNS} FROM group_ai_budgets WHERE group_id = $1 FOR UPDATE`,
      [groupId],
    );
    const rows = await q<Row[]>(
      this.db,
      `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)
       ON CONFLICT (group_id) DO UPDATE
         SET spend_limit_micros = EXCLUDED.spend_limit_micros,
             updated_at = CASE WHEN group_ai_budgets.spend_limit_micros = EXCLUDED.spend_limit_micros
                               THEN group_ai_budgets.updated_at ELSE now() END
       RETURNING ${COLUMNS}`,
      [groupId, spendLimitMicros.toString()],
    );
    return { before: before[0] ? toBudget(before[0]) : null, after: toBudget(rows[0]) };
  }

  async delete(groupId: string): Promise<GroupBudget | null> {
    const rows = await q<Row[]>(
      this.db,
      `DELETE FROM group_ai_budgets WHERE group_id = $1 RETURNING ${COLUMNS}`,
      [groupId],
    );
    return rows[0] ? toBudget(rows[0]) : null;
  }
}
