import { q, type Db, type Group, type GroupBudget } from './types';

interface Row {
  groupId: string;
  spendLimitMicros: string;
  createdAt: Date;
  updatedAt: Date;
}

const toBudget = (r: Row): GroupBudget => ({ ...r, spendLimitMicros: BigInt(r.spendLimitMicros) });
const COLUMNS = `group_id AS "groupId", spend_limit_micros AS "spendLimitMicros", created_at AS "createdAt",
  updated_at AS "updatedAt"`;

/** Exported so that bench/api's bare baseline sends exactly this statement. */
export const GROUP_WITH_BUDGET_SQL = `SELECT g.id, g.organization_id AS "organizationId", g.name,
       b.spend_limit_micros AS "spendLimitMicros", b.created_at AS "budgetCreatedAt", b.updated_at AS "budgetUpdatedAt"
  FROM groups g LEFT JOIN group_ai_budgets b ON b.group_id = g.id
 WHERE g.id = $1`;

export class GroupBudgetRepository {
  constructor(private readonly db: Db) {}

  /**
   * The group and its budget in one round trip (the hot read path of GET .../ai/budget). Only
   * the group columns the permission check needs: every column read is parsed on every request.
   */
  async getWithGroup(
    groupId: string,
  ): Promise<{ group: Pick<Group, 'id' | 'organizationId' | 'name'>; budget: GroupBudget | null } | null> {
    const rows = await q<
      (Pick<Group, 'id' | 'organizationId' | 'name'> & {
        spendLimitMicros: string | null;
        budgetCreatedAt: Date;
        budgetUpdatedAt: Date;
      })[]
    >(this.db, GROUP_WITH_BUDGET_SQL, [groupId], 'aigov_group_with_budget');
    const r = rows[0];
    if (!r) return null;
    // Plain literals rather than `...rest`: a rest pattern copies the row through V8's generic
    // property copy, on every request of the hot path.
    const group = { id: r.id, organizationId: r.organizationId, name: r.name };
    const budget =
      r.spendLimitMicros === null
        ? null
        : {
            groupId: r.id,
            spendLimitMicros: BigInt(r.spendLimitMicros),
            createdAt: r.budgetCreatedAt,
            updatedAt: r.budgetUpdatedAt,
          };
    return { group, budget };
  }

  async get(groupId: string): Promise<GroupBudget | null> {
    const rows = await q<Row[]>(this.db, `SELECT ${COLUMNS} FROM group_ai_budgets WHERE group_id = $1`, [
      groupId,
    ]);
    return rows[0] ? toBudget(rows[0]) : null;
  }

  /**
   * Creates or updates the group's budget (inside a transaction). The previous row is read under
   * a lock first so the before/after pair written to the audit log is exact under concurrent writers.
   */
  async upsert(
    groupId: string,
    spendLimitMicros: bigint,
  ): Promise<{ before: GroupBudget | null; after: GroupBudget }> {
    // FOR UPDATE cannot lock a row that does not exist yet: a transaction-scoped advisory lock on
    // the group serializes racing creators, so exactly one of them sees "no budget before".
    await q(this.db, `SELECT pg_advisory_xact_lock(hashtextextended('group_ai_budgets/' || $1, 0))`, [
      groupId,
    ]);
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
