import type { MigrationInterface, QueryRunner } from 'typeorm';

const AUDIT_COLUMNS = `actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id, reason`;

/**
 * Suspension, emails regardless of case, and cascades whose audit entries do not depend on the
 * order in which PostgreSQL fires the foreign-key cascade triggers.
 *
 * - The last *active* owner can be neither suspended, nor demoted, nor deleted: a suspended
 *   owner cannot manage anything either. Concurrent changes of the last two active owners are
 *   serialized on one transaction-scoped advisory lock taken before the check; the check is a
 *   new statement, so under READ COMMITTED it sees what the lock holder committed.
 * - `users_email_lower_key`: emails are unique regardless of case in the database itself, for
 *   writers that do not pass through the API's lowercasing (the identity listener).
 * - Deleting a user, a group or an organization removes what depends on it in BEFORE DELETE triggers, in a fixed
 *   order, recording each removal (actor system:database, with the request id of the
 *   deletion). The foreign-key cascades then find nothing left. Left to the cascades, the
 *   entries depended on which cascade ran first (e.g. a user's organization memberships before
 *   their group memberships), and that order follows the cascade triggers' oids, which a
 *   pg_dump/restore changes.
 */
export class ActiveOwnerEmailCaseCascadeAudit1764700000000 implements MigrationInterface {
  name = 'ActiveOwnerEmailCaseCascadeAudit1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER users_keep_an_owner ON users');
    await q.query('DROP FUNCTION users_keep_an_owner()');
    await q.query(`
      CREATE FUNCTION users_keep_an_active_owner() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF 'owner' = ANY (OLD.roles) AND OLD.status = 'active'
           AND (TG_OP = 'DELETE' OR NOT ('owner' = ANY (NEW.roles)) OR NEW.status <> 'active') THEN
          PERFORM pg_advisory_xact_lock(4702113904);
          IF NOT EXISTS (SELECT 1 FROM users WHERE id <> OLD.id AND 'owner' = ANY (roles) AND status = 'active') THEN
            RAISE EXCEPTION 'user % is the last active owner', OLD.id
              USING ERRCODE = '23514', CONSTRAINT = 'users_last_owner';
          END IF;
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
      END $$`);
    await q.query(`
      CREATE TRIGGER users_keep_an_active_owner BEFORE UPDATE OF roles, status OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_keep_an_active_owner()`);

    await q.query('CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))');

    await q.query('DROP TRIGGER users_remove_overrides ON users');
    await q.query('DROP FUNCTION users_remove_overrides()');
    // Fires after users_keep_an_active_owner (triggers of one kind fire in name order).
    await q.query(`
      CREATE FUNCTION users_remove_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
        req text := nullif(current_setting('aigov.request_id', true), '');
        who jsonb := jsonb_build_object('id', OLD.id, 'username', OLD.username);
      BEGIN
        -- The override first: removing the memberships below would record it as membership_removed.
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE user_id = OLD.id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'user_deleted');
        END LOOP;
        -- Group memberships before organization memberships, whose removal would remove them too.
        WITH d AS (DELETE FROM group_members WHERE user_id = OLD.id RETURNING group_id)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'group_member', g.id::text || '/' || OLD.id::text, g.organization_id,
               jsonb_build_object('group', jsonb_build_object('id', g.id, 'name', g.name), 'user', who),
               req, 'user_deleted'
          FROM d JOIN groups g ON g.id = d.group_id
         ORDER BY g.organization_id, g.id;
        WITH d AS (DELETE FROM organization_members WHERE user_id = OLD.id RETURNING organization_id, roles)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'organization_member', d.organization_id::text || '/' || OLD.id::text,
               d.organization_id,
               jsonb_build_object('user', who, 'roles', jsonb_build_object('before', to_jsonb(d.roles), 'after', NULL)),
               req, 'user_deleted'
          FROM d
         ORDER BY d.organization_id;
        -- Never the secret hash.
        WITH d AS (DELETE FROM api_keys WHERE user_id = OLD.id RETURNING id, name)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'api_key', d.id, NULL,
               jsonb_build_object('user', who, 'name', d.name), req, 'user_deleted'
          FROM d
         ORDER BY d.id;
        IF cardinality(OLD.roles) > 0 THEN
          INSERT INTO audit_logs (${AUDIT_COLUMNS})
          VALUES (NULL, 'system:database', 'delete', 'user_roles', OLD.id::text, NULL,
                  jsonb_build_object('user', who, 'roles', jsonb_build_object('before', to_jsonb(OLD.roles), 'after', '[]'::jsonb)),
                  req, 'user_deleted');
        END IF;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER users_remove_dependents BEFORE DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_remove_dependents()`);

    await q.query('DROP TRIGGER groups_remove_overrides ON groups');
    await q.query('DROP FUNCTION groups_remove_overrides()');
    // Fires after groups_keep_everyone (name order).
    await q.query(`
      CREATE FUNCTION groups_remove_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
        req text := nullif(current_setting('aigov.request_id', true), '');
        grp jsonb := jsonb_build_object('id', OLD.id, 'name', OLD.name);
      BEGIN
        -- Overrides first: removing the memberships below would record them as membership_removed.
        FOR o IN DELETE FROM user_ai_budget_overrides WHERE group_id = OLD.id RETURNING * LOOP
          PERFORM audit_override_removed(o, 'group_deleted');
        END LOOP;
        WITH d AS (DELETE FROM group_members WHERE group_id = OLD.id RETURNING user_id)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'group_member', OLD.id::text || '/' || d.user_id::text,
               OLD.organization_id,
               jsonb_build_object('group', grp, 'user', jsonb_build_object('id', u.id, 'username', u.username)),
               req, 'group_deleted'
          FROM d JOIN users u ON u.id = d.user_id
         ORDER BY u.username;
        WITH d AS (DELETE FROM group_ai_budgets WHERE group_id = OLD.id RETURNING spend_limit_micros)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'group_ai_budget', OLD.id::text, OLD.organization_id,
               jsonb_build_object('group', grp, 'spend_limit', jsonb_build_object(
                 'before', jsonb_build_object('usd', format_usd(d.spend_limit_micros), 'micros', d.spend_limit_micros),
                 'after', NULL)),
               req, 'group_deleted'
          FROM d;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER groups_remove_dependents BEFORE DELETE ON groups
        FOR EACH ROW EXECUTE FUNCTION groups_remove_dependents()`);

    await q.query('DROP TRIGGER organizations_remove_overrides ON organizations');
    await q.query('DROP FUNCTION organizations_remove_overrides()');
    // Its groups first (each recording its memberships and budget through the trigger above),
    // then the Everyone group's budget and the organization memberships; the Everyone group itself
    // goes with the row (groups_keep_everyone refuses it earlier).
    await q.query(`
      CREATE FUNCTION organizations_remove_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        o user_ai_budget_overrides%ROWTYPE;
        req text := nullif(current_setting('aigov.request_id', true), '');
      BEGIN
        FOR o IN DELETE FROM user_ai_budget_overrides
                  WHERE group_id IN (SELECT id FROM groups WHERE organization_id = OLD.id) RETURNING * LOOP
          PERFORM audit_override_removed(o, 'group_deleted');
        END LOOP;
        DELETE FROM groups WHERE organization_id = OLD.id AND id <> OLD.id;
        WITH d AS (DELETE FROM group_ai_budgets WHERE group_id = OLD.id RETURNING spend_limit_micros)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'group_ai_budget', OLD.id::text, OLD.id,
               jsonb_build_object('group', jsonb_build_object('id', OLD.id, 'name', 'Everyone'),
                 'spend_limit', jsonb_build_object(
                   'before', jsonb_build_object('usd', format_usd(d.spend_limit_micros), 'micros', d.spend_limit_micros),
                   'after', NULL)),
               req, 'group_deleted'
          FROM d;
        WITH d AS (DELETE FROM organization_members WHERE organization_id = OLD.id RETURNING user_id, roles)
        INSERT INTO audit_logs (${AUDIT_COLUMNS})
        SELECT NULL, 'system:database', 'delete', 'organization_member', OLD.id::text || '/' || d.user_id::text, OLD.id,
               jsonb_build_object('user', jsonb_build_object('id', u.id, 'username', u.username),
                 'roles', jsonb_build_object('before', to_jsonb(d.roles), 'after', NULL)),
               req, 'organization_deleted'
          FROM d JOIN users u ON u.id = d.user_id
         ORDER BY u.username;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER organizations_remove_dependents BEFORE DELETE ON organizations
        FOR EACH ROW EXECUTE FUNCTION organizations_remove_dependents()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER organizations_remove_dependents ON organizations');
    await q.query('DROP FUNCTION organizations_remove_dependents()');
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

    await q.query('DROP TRIGGER groups_remove_dependents ON groups');
    await q.query('DROP FUNCTION groups_remove_dependents()');
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

    await q.query('DROP TRIGGER users_remove_dependents ON users');
    await q.query('DROP FUNCTION users_remove_dependents()');
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

    await q.query('DROP INDEX users_email_lower_key');

    await q.query('DROP TRIGGER users_keep_an_active_owner ON users');
    await q.query('DROP FUNCTION users_keep_an_active_owner()');
    await q.query(`
      CREATE FUNCTION users_keep_an_owner() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF 'owner' = ANY (OLD.roles) AND (TG_OP = 'DELETE' OR NOT ('owner' = ANY (NEW.roles))) THEN
          PERFORM pg_advisory_xact_lock(4702113904);
          IF NOT EXISTS (SELECT 1 FROM users WHERE id <> OLD.id AND 'owner' = ANY (roles)) THEN
            RAISE EXCEPTION 'user % is the last owner', OLD.id
              USING ERRCODE = '23514', CONSTRAINT = 'users_last_owner';
          END IF;
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
      END $$`);
    await q.query(`
      CREATE TRIGGER users_keep_an_owner BEFORE UPDATE OF roles OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_keep_an_owner()`);
  }
}
