import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Per-user AI budget overrides (CONTRACT 1.4) and the membership invariant: an override exists
 * only while its user is a member of its group (the Everyone group included), at every commit,
 * also under concurrent writers.
 *
 * Why it holds under READ COMMITTED, without SERIALIZABLE:
 * - The membership of (user, group) is one row: group_members(group_id, user_id), or for the
 *   Everyone group organization_members(organization_id, user_id).
 * - Write path: the BEFORE INSERT OR UPDATE trigger on user_ai_budget_overrides reads that row
 *   FOR KEY SHARE. The lock is held until the writer commits or rolls back.
 * - Removal path: a DELETE of the membership row takes a row lock that conflicts with KEY SHARE
 *   *before* its BEFORE DELETE trigger runs. So:
 *   (a) writer first: the DELETE waits until the writer commits; then its trigger's DELETE of
 *       overrides runs with a fresh snapshot (each statement in a plpgsql function takes one under
 *       READ COMMITTED), sees the committed override and removes it;
 *   (b) removal first: the writer's FOR KEY SHARE waits until the removal commits, then finds the
 *       row gone (READ COMMITTED re-checks the row) and the trigger rejects the write.
 *   Either order leaves no override without its membership. Plain triggers without the lock do
 *   not: in (a) the removal's trigger cannot see the writer's uncommitted row, and in (b) the
 *   writer's check can read a membership whose deletion has not committed yet.
 * - Leaving an organization removes the user's group memberships of that organization in the same
 *   transaction (the previous migration), whose deletions fire the group_members trigger here; so
 *   overrides attributed to the organization's other groups go too.
 * - Suspension removes nothing: it is not a membership change.
 *
 * Every override removed by a cascade is written to audit_logs by the trigger that removes it
 * (actor system:database, reason membership_removed, group_deleted or user_deleted), with the
 * request id the application passed through set_config('aigov.request_id', ..., true).
 */
export class UserBudgetOverrides1764600000000 implements MigrationInterface {
  name = 'UserBudgetOverrides1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE user_ai_budget_overrides (
        user_id            uuid        NOT NULL,
        group_id           uuid        NOT NULL,
        spend_limit_micros bigint      NOT NULL,
        created_at         timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT user_ai_budget_overrides_pkey PRIMARY KEY (user_id),
        CONSTRAINT user_ai_budget_overrides_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        CONSTRAINT user_ai_budget_overrides_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE,
        CONSTRAINT user_ai_budget_overrides_spend_limit_micros_check CHECK (spend_limit_micros >= 0)
      )`);
    await q.query(
      `CREATE INDEX user_ai_budget_overrides_group_id_idx ON user_ai_budget_overrides (group_id)`,
    );

    // One audit entry per override removed by a cascade.
    await q.query(`
      CREATE FUNCTION audit_override_removed(o user_ai_budget_overrides, why text) RETURNS void
      LANGUAGE plpgsql AS $$
      DECLARE
        g groups%ROWTYPE;
      BEGIN
        SELECT * INTO g FROM groups WHERE id = o.group_id;
        INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id, reason)
        VALUES (NULL, 'system:database', 'delete', 'user_ai_budget_override', o.user_id::text, g.organization_id,
                jsonb_build_object(
                  'user_id', o.user_id,
                  'group', jsonb_build_object('before', jsonb_build_object('id', o.group_id, 'name', g.name), 'after', NULL),
                  'spend_limit', jsonb_build_object(
                    'before', jsonb_build_object('usd', format_usd(o.spend_limit_micros), 'micros', o.spend_limit_micros),
                    'after', NULL)),
                nullif(current_setting('aigov.request_id', true), ''), why);
      END $$`);
    // Dollars with 2 to 6 decimals from integer micros (the application's formatUsd rule).
    await q.query(`
      CREATE FUNCTION format_usd(micros bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE
        frac text := rtrim(lpad((abs(micros) % 1000000)::text, 6, '0'), '0');
      BEGIN
        IF length(frac) < 2 THEN
          frac := rpad(frac, 2, '0');
        END IF;
        RETURN CASE WHEN micros < 0 THEN '-' ELSE '' END || '$' || (abs(micros) / 1000000)::text || '.' || frac;
      END $$`);

    // Write path (see the class comment for the argument).
    await q.query(`
      CREATE FUNCTION user_ai_budget_overrides_check_member() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        org uuid;
      BEGIN
        SELECT organization_id INTO org FROM groups WHERE id = NEW.group_id;
        IF org IS NULL THEN
          -- Not left to the foreign key: it checks later, with a newer snapshot.
          RAISE EXCEPTION 'group % does not exist', NEW.group_id
            USING ERRCODE = '23503', CONSTRAINT = 'user_ai_budget_overrides_group_id_fkey';
        END IF;
        IF org = NEW.group_id THEN
          PERFORM 1 FROM organization_members WHERE organization_id = org AND user_id = NEW.user_id FOR KEY SHARE;
        ELSE
          PERFORM 1 FROM group_members WHERE group_id = NEW.group_id AND user_id = NEW.user_id FOR KEY SHARE;
        END IF;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'user % is not a member of group %', NEW.user_id, NEW.group_id
            USING ERRCODE = '23514', CONSTRAINT = 'user_ai_budget_overrides_must_be_group_member';
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER user_ai_budget_overrides_check_member BEFORE INSERT OR UPDATE ON user_ai_budget_overrides
        FOR EACH ROW EXECUTE FUNCTION user_ai_budget_overrides_check_member()`);

    // Removal paths.
    await q.query(`
      CREATE FUNCTION group_members_remove_overrides() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
      BEGIN
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE user_id = OLD.user_id AND group_id = OLD.group_id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'membership_removed');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER group_members_remove_overrides BEFORE DELETE ON group_members
        FOR EACH ROW EXECUTE FUNCTION group_members_remove_overrides()`);
    await q.query(`
      CREATE FUNCTION organization_members_remove_overrides() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
      BEGIN
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE user_id = OLD.user_id AND group_id = OLD.organization_id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'membership_removed');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER organization_members_remove_overrides BEFORE DELETE ON organization_members
        FOR EACH ROW EXECUTE FUNCTION organization_members_remove_overrides()`);
    // Group and user deletions cascade through the foreign keys; these record why first.
    await q.query(`
      CREATE FUNCTION groups_remove_overrides() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
      BEGIN
        -- One statement: only what this DELETE really removed is recorded.
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE group_id = OLD.id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'group_deleted');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER groups_remove_overrides BEFORE DELETE ON groups
        FOR EACH ROW EXECUTE FUNCTION groups_remove_overrides()`);
    // Deleting an organization deletes its groups: record that reason before the member
    // cascades (which would say membership_removed) get to the overrides.
    await q.query(`
      CREATE FUNCTION organizations_remove_overrides() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
      BEGIN
        FOR o IN DELETE FROM user_ai_budget_overrides
                  WHERE group_id IN (SELECT id FROM groups WHERE organization_id = OLD.id) RETURNING * LOOP
          PERFORM audit_override_removed(o, 'group_deleted');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER organizations_remove_overrides BEFORE DELETE ON organizations
        FOR EACH ROW EXECUTE FUNCTION organizations_remove_overrides()`);
    await q.query(`
      CREATE FUNCTION users_remove_overrides() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
      BEGIN
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE user_id = OLD.id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'user_deleted');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER users_remove_overrides BEFORE DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_remove_overrides()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER users_remove_overrides ON users');
    await q.query('DROP TRIGGER organizations_remove_overrides ON organizations');
    await q.query('DROP TRIGGER groups_remove_overrides ON groups');
    await q.query('DROP TRIGGER organization_members_remove_overrides ON organization_members');
    await q.query('DROP TRIGGER group_members_remove_overrides ON group_members');
    await q.query('DROP FUNCTION users_remove_overrides()');
    await q.query('DROP FUNCTION organizations_remove_overrides()');
    await q.query('DROP FUNCTION groups_remove_overrides()');
    await q.query('DROP FUNCTION organization_members_remove_overrides()');
    await q.query('DROP FUNCTION group_members_remove_overrides()');
    // Takes the table's row type as an argument, so it goes before the table.
    await q.query('DROP FUNCTION audit_override_removed(user_ai_budget_overrides, text)');
    await q.query('DROP TABLE user_ai_budget_overrides');
    await q.query('DROP FUNCTION user_ai_budget_overrides_check_member()');
    await q.query('DROP FUNCTION format_usd(bigint)');
  }
}
