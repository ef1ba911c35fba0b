import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * ai_effective_budgets: `ai_effective_budget(user)` materialized, one row per user, so that every
 * budget check, reservation and usage batch reads the limit by primary key instead of resolving it
 * (docs/decisions/effective-budgets.md). The resolution itself stays `ai_effective_budget()`: the
 * triggers here only decide *when* to call it and for whom.
 *
 * Kept exact by statement-level AFTER triggers (transition tables: a membership statement of
 * thousands of rows refreshes its users in a few set-based statements) on every table the
 * resolution reads:
 * - user_ai_budget_overrides, organization_members: the users of the changed rows; group_members:
 *   those of the changed rows whose group has a budget (no other membership changes a budget);
 * - group_ai_budgets: the members of the changed groups (the Everyone group, id = organization id:
 *   the organization's members);
 * - users: an inserted user gets its row (deletion cascades through the foreign key).
 * groups needs none: its organization never changes (groups_immutable_keys), a new group has no
 * members or budget yet, and a deleted group's overrides, members and budget are deleted by its
 * BEFORE DELETE trigger, which fires the triggers above.
 * An UPDATE counts only where a column the resolution reads changed (old EXCEPT new, new EXCEPT old).
 *
 * Exact under concurrency (READ COMMITTED), by lock-then-recompute (ai_effective_budgets_refresh):
 * after its own write, a transaction locks the affected users' rows (in user_id order, so two
 * refreshes cannot deadlock on them) and only then computes, in a new statement. A statement in a
 * VOLATILE plpgsql function takes a new snapshot, so when the lock had to wait for another
 * transaction that changed the same user's inputs, the computation sees that transaction's
 * committed change as well as its own. Whichever of the two locks second writes the value of both
 * changes; without the lock each computes in its own snapshot and the last to commit can leave a
 * value that ignores the other's change (the race test in effective-budgets.int-spec.ts shows it).
 *
 * A budget change has a second race: *which* users it affects is read in a snapshot too. A member
 * added to the group concurrently is not seen by the budget's transaction, and the member's own
 * refresh does not see the uncommitted budget. So the two also meet on one row: the budget's
 * trigger locks the group's row FOR UPDATE before it lists the members (in a new statement), and
 * a membership trigger locks the group's row (the Everyone group's for organization members) FOR
 * KEY SHARE before it refreshes, the lock a membership insert's foreign-key check takes anyway.
 * The second to lock sees the first's commit, exactly as above.
 *
 * Writers must run in READ COMMITTED (every aigov writer does): a REPEATABLE READ or SERIALIZABLE
 * writer sees no newer snapshot after the lock and could store a stale value.
 * Only rows whose value changed are written (the row lock is taken either way).
 *
 * The triggers are created before the backfill: CREATE TRIGGER waits for the writers in flight on
 * each table and holds them off until this migration commits, so the backfill, a later statement,
 * sees every committed change and none can slip between it and the triggers.
 */

/** The affected users' rows: lock, then recompute (see the class comment for why in this order). */
const REFRESH_FUNCTION = `
  CREATE FUNCTION ai_effective_budgets_refresh(p_users uuid[]) RETURNS void
  LANGUAGE plpgsql VOLATILE
  -- A custom plan per call would plan the inlined resolution again every time (milliseconds,
  -- more than running it); the generic plan is a loop over the users with index probes.
  SET plan_cache_mode = force_generic_plan
  AS $$
  DECLARE
    missing uuid[];
  BEGIN
    IF coalesce(cardinality(p_users), 0) = 0 THEN
      RETURN;
    END IF;
    -- Every user has a row (users trigger, backfill); this only restores one removed by hand, so
    -- that there is a row to lock.
    missing := ARRAY(SELECT x.id FROM unnest(p_users) AS x(id)
                      WHERE NOT EXISTS (SELECT 1 FROM ai_effective_budgets b WHERE b.user_id = x.id));
    IF cardinality(missing) > 0 THEN
      INSERT INTO ai_effective_budgets (user_id, limit_source, spend_limit_micros, effective_group_id)
      SELECT u.id, e.limit_source, e.spend_limit_micros, e.effective_group_id
        FROM users u
       CROSS JOIN LATERAL ai_effective_budget(u.id) e
       WHERE u.id = ANY (missing)
       ORDER BY u.id
      ON CONFLICT (user_id) DO NOTHING;
    END IF;
    -- The lock. It waits for any other transaction that changed (and so locked) one of these
    -- rows, until it commits or rolls back; always in user_id order.
    PERFORM 1 FROM ai_effective_budgets WHERE user_id = ANY (p_users) ORDER BY user_id FOR UPDATE;
    -- The recompute: a new statement, hence a new snapshot taken after the lock was granted.
    UPDATE ai_effective_budgets b
       SET limit_source = e.limit_source, spend_limit_micros = e.spend_limit_micros,
           effective_group_id = e.effective_group_id, updated_at = now()
      FROM (SELECT DISTINCT id FROM unnest(p_users) AS x(id)) u
     CROSS JOIN LATERAL ai_effective_budget(u.id) e
     WHERE b.user_id = u.id AND b.user_id = ANY (p_users)
       AND (b.limit_source, b.spend_limit_micros, b.effective_group_id)
           IS DISTINCT FROM (e.limit_source, e.spend_limit_micros, e.effective_group_id);
  END $$`;

/**
 * `SELECT <agg> INTO <vars> FROM` the rows of the statement that changed one of `columns`: the new
 * rows of an INSERT, the old of a DELETE, for an UPDATE those whose columns differ.
 */
const changedRows = (columns: string, agg: string, into: string) => `
    IF TG_OP = 'INSERT' THEN
      SELECT ${agg} INTO ${into} FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
      SELECT ${agg} INTO ${into} FROM old_rows;
    ELSE
      SELECT ${agg} INTO ${into}
        FROM ((SELECT ${columns} FROM old_rows EXCEPT SELECT ${columns} FROM new_rows)
              UNION ALL
              (SELECT ${columns} FROM new_rows EXCEPT SELECT ${columns} FROM old_rows)) changed;
    END IF`;

/**
 * A table whose rows each affect one user: those users are refreshed, after the group named by
 * `groupColumn` is locked for a membership table (an override affects its user only, whatever a
 * concurrent budget change of its group does: the user is a member the budget's trigger sees).
 */
const userRowsFunction = (name: string, columns: string, groupColumn: string | null) => `
  CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
  DECLARE
    changed_users uuid[];
    changed_groups uuid[];
  BEGIN
    ${changedRows(
      columns,
      `array_agg(DISTINCT user_id ORDER BY user_id), ${groupColumn ? `array_agg(DISTINCT ${groupColumn} ORDER BY ${groupColumn})` : 'NULL'}`,
      'changed_users, changed_groups',
    )};
    IF changed_users IS NULL THEN
      RETURN NULL;
    END IF;
    -- Meets a concurrent budget change of the group on the group's row (class comment).
    PERFORM 1 FROM groups WHERE id = ANY (changed_groups) ORDER BY id FOR KEY SHARE;
    PERFORM ai_effective_budgets_refresh(changed_users);
    RETURN NULL;
  END $$`;

/**
 * group_members: only a membership of a budgeted group can change its user's budget (an override
 * on the group goes with the membership, through its own trigger). Whether the group has a budget
 * is read after the group's row is locked, in a new statement: a budget committed before the lock
 * is seen, and one written after it waits for this transaction, then refreshes the group's
 * members, this one included (class comment).
 */
const GROUP_MEMBERS_FUNCTION = `
  CREATE FUNCTION ai_effective_budgets_group_members_changed() RETURNS trigger
  LANGUAGE plpgsql VOLATILE AS $$
  DECLARE
    pair_groups uuid[];
    pair_users uuid[];
  BEGIN
    ${changedRows('group_id, user_id', 'array_agg(group_id), array_agg(user_id)', 'pair_groups, pair_users')};
    IF pair_users IS NULL THEN
      RETURN NULL;
    END IF;
    PERFORM 1 FROM groups WHERE id IN (SELECT unnest(pair_groups)) ORDER BY id FOR KEY SHARE;
    PERFORM ai_effective_budgets_refresh(ARRAY(
      SELECT DISTINCT p.user_id FROM unnest(pair_groups, pair_users) AS p(group_id, user_id)
       WHERE EXISTS (SELECT 1 FROM group_ai_budgets b WHERE b.group_id = p.group_id)));
    RETURN NULL;
  END $$`;

const BUDGETS_FUNCTION = `
  CREATE FUNCTION ai_effective_budgets_group_budgets_changed() RETURNS trigger
  LANGUAGE plpgsql VOLATILE AS $$
  DECLARE
    changed_groups uuid[];
  BEGIN
    ${changedRows(
      'group_id, spend_limit_micros',
      'array_agg(DISTINCT group_id ORDER BY group_id)',
      'changed_groups',
    )};
    IF changed_groups IS NULL THEN
      RETURN NULL;
    END IF;
    -- Waits for the membership writers of these groups in flight, and holds off new ones.
    PERFORM 1 FROM groups WHERE id = ANY (changed_groups) ORDER BY id FOR UPDATE;
    -- A new statement: the members as committed after the lock. An Everyone group's id is its
    -- organization's id, and no other group has an organization's id.
    PERFORM ai_effective_budgets_refresh(ARRAY(
      SELECT user_id FROM group_members WHERE group_id = ANY (changed_groups)
      UNION
      SELECT user_id FROM organization_members WHERE organization_id = ANY (changed_groups)));
    RETURN NULL;
  END $$`;

/** A new user cannot be referenced by another transaction yet: no lock needed. */
const USERS_FUNCTION = `
  CREATE FUNCTION ai_effective_budgets_users_inserted() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
  BEGIN
    INSERT INTO ai_effective_budgets (user_id, limit_source, spend_limit_micros, effective_group_id)
    SELECT n.id, e.limit_source, e.spend_limit_micros, e.effective_group_id
      FROM new_rows n
     CROSS JOIN LATERAL ai_effective_budget(n.id) e
     ORDER BY n.id
    -- A membership inserted in the same statement (a writable CTE) may have made the row first.
    ON CONFLICT (user_id) DO NOTHING;
    RETURN NULL;
  END $$`;

/** [table, function] of the INSERT, UPDATE and DELETE triggers. */
const WATCHED: [string, string][] = [
  ['user_ai_budget_overrides', 'ai_effective_budgets_overrides_changed'],
  ['group_members', 'ai_effective_budgets_group_members_changed'],
  ['organization_members', 'ai_effective_budgets_organization_members_changed'],
  ['group_ai_budgets', 'ai_effective_budgets_group_budgets_changed'],
];
/** Transition tables are allowed on single-event triggers only: one per event. */
const EVENTS: [string, string, string][] = [
  ['insert', 'INSERT', 'REFERENCING NEW TABLE AS new_rows'],
  ['update', 'UPDATE', 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'],
  ['delete', 'DELETE', 'REFERENCING OLD TABLE AS old_rows'],
];
const triggerName = (table: string, event: string) => `${table}_effective_budgets_${event}`;

export class EffectiveBudgets1765200000000 implements MigrationInterface {
  name = 'EffectiveBudgets1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE ai_effective_budgets (
        user_id            uuid        NOT NULL,
        limit_source       text,
        spend_limit_micros bigint,
        effective_group_id uuid,
        updated_at         timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ai_effective_budgets_pkey PRIMARY KEY (user_id),
        CONSTRAINT ai_effective_budgets_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        CONSTRAINT ai_effective_budgets_limit_source_check CHECK (limit_source IN ('user_override', 'group'))
      )`);
    await q.query(REFRESH_FUNCTION);
    await q.query(
      userRowsFunction(
        'ai_effective_budgets_overrides_changed',
        'user_id, group_id, spend_limit_micros',
        null,
      ),
    );
    await q.query(GROUP_MEMBERS_FUNCTION);
    await q.query(
      userRowsFunction(
        'ai_effective_budgets_organization_members_changed',
        'organization_id, user_id, created_at',
        'organization_id',
      ),
    );
    await q.query(BUDGETS_FUNCTION);
    await q.query(USERS_FUNCTION);
    for (const [table, fn] of WATCHED) {
      for (const [event, op, referencing] of EVENTS) {
        await q.query(`
          CREATE TRIGGER ${triggerName(table, event)} AFTER ${op} ON ${table}
            ${referencing} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`);
      }
    }
    await q.query(`
      CREATE TRIGGER users_effective_budgets_insert AFTER INSERT ON users
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ai_effective_budgets_users_inserted()`);
    await q.query(`
      INSERT INTO ai_effective_budgets (user_id, limit_source, spend_limit_micros, effective_group_id)
      SELECT u.id, e.limit_source, e.spend_limit_micros, e.effective_group_id
        FROM users u
       CROSS JOIN LATERAL ai_effective_budget(u.id) e`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER users_effective_budgets_insert ON users');
    for (const [table] of [...WATCHED].reverse()) {
      for (const [event] of [...EVENTS].reverse()) {
        await q.query(`DROP TRIGGER ${triggerName(table, event)} ON ${table}`);
      }
    }
    await q.query('DROP FUNCTION ai_effective_budgets_users_inserted()');
    await q.query('DROP FUNCTION ai_effective_budgets_group_budgets_changed()');
    await q.query('DROP FUNCTION ai_effective_budgets_organization_members_changed()');
    await q.query('DROP FUNCTION ai_effective_budgets_group_members_changed()');
    await q.query('DROP FUNCTION ai_effective_budgets_overrides_changed()');
    await q.query('DROP FUNCTION ai_effective_budgets_refresh(uuid[])');
    await q.query('DROP TABLE ai_effective_budgets');
  }
}
