import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Identity (CONTRACT 1.1), group AI budgets (1.3) and the audit log (1.5).
 *
 * Group membership requires organization membership, enforced here and serialized with the
 * removal of the organization membership:
 * - Write path: the BEFORE INSERT OR UPDATE trigger on group_members reads the user's
 *   organization_members row FOR KEY SHARE. That row lock conflicts with the lock a DELETE of the
 *   same row takes, so the two paths are ordered on that one row.
 * - Removal path: a DELETE of an organization_members row locks the row before its BEFORE DELETE
 *   trigger runs, so (a) if an insert of a group membership holds KEY SHARE on it, the DELETE
 *   waits for that transaction to end, and the trigger's DELETE of group memberships then runs
 *   with a fresh READ COMMITTED snapshot that sees the new membership and removes it; (b) if the
 *   DELETE got the row first, the insert's FOR KEY SHARE waits, then finds the row gone and the
 *   trigger rejects the insert. Either order ends with no group membership without an
 *   organization membership.
 */
export class IdentityBudgetsAudit1764500000000 implements MigrationInterface {
  name = 'IdentityBudgetsAudit1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE organizations (
        id           uuid        NOT NULL DEFAULT gen_random_uuid(),
        name         text        NOT NULL,
        display_name text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT organizations_pkey PRIMARY KEY (id),
        CONSTRAINT organizations_name_key UNIQUE (name),
        CONSTRAINT organizations_name_check CHECK (name ~ '^[a-z0-9-]{1,64}$')
      )`);
    await q.query(`
      CREATE TABLE users (
        id         uuid        NOT NULL DEFAULT gen_random_uuid(),
        username   text        NOT NULL,
        email      text        NOT NULL,
        name       text,
        status     text        NOT NULL DEFAULT 'active',
        roles      text[]      NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT users_pkey PRIMARY KEY (id),
        CONSTRAINT users_username_key UNIQUE (username),
        CONSTRAINT users_email_key UNIQUE (email),
        CONSTRAINT users_username_check CHECK (username ~ '^[a-z0-9_-]{1,64}$' AND username <> 'me'),
        CONSTRAINT users_status_check CHECK (status IN ('active', 'suspended')),
        CONSTRAINT users_roles_check CHECK (roles <@ ARRAY['owner', 'user-admin', 'auditor', 'ai-gateway']::text[])
      )`);
    await q.query(`
      CREATE TABLE organization_members (
        organization_id uuid        NOT NULL,
        user_id         uuid        NOT NULL,
        roles           text[]      NOT NULL DEFAULT '{}',
        created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT organization_members_pkey PRIMARY KEY (organization_id, user_id),
        CONSTRAINT organization_members_organization_id_fkey FOREIGN KEY (organization_id)
          REFERENCES organizations (id) ON DELETE CASCADE,
        CONSTRAINT organization_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        CONSTRAINT organization_members_roles_check
          CHECK (roles <@ ARRAY['organization-admin', 'organization-user-admin', 'organization-auditor']::text[])
      )`);
    await q.query(`CREATE INDEX organization_members_user_id_idx ON organization_members (user_id)`);
    await q.query(`
      CREATE TABLE groups (
        id              uuid        NOT NULL DEFAULT gen_random_uuid(),
        organization_id uuid        NOT NULL,
        name            text        NOT NULL,
        display_name    text,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT groups_pkey PRIMARY KEY (id),
        CONSTRAINT groups_organization_id_name_key UNIQUE (organization_id, name),
        CONSTRAINT groups_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
        CONSTRAINT groups_name_check CHECK (char_length(name) BETWEEN 1 AND 255 AND name !~ '[[:cntrl:]]'),
        CONSTRAINT groups_everyone_reserved_check
          CHECK (CASE WHEN id = organization_id THEN name = 'Everyone' ELSE lower(name) <> 'everyone' END)
      )`);
    await q.query(`
      CREATE TABLE group_members (
        group_id   uuid        NOT NULL,
        user_id    uuid        NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT group_members_pkey PRIMARY KEY (group_id, user_id),
        CONSTRAINT group_members_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE,
        CONSTRAINT group_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
      )`);
    await q.query(`CREATE INDEX group_members_user_id_idx ON group_members (user_id)`);

    // Every organization gets its Everyone group (id = organization id) in the same transaction.
    await q.query(`
      CREATE FUNCTION create_everyone_group() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO groups (id, organization_id, name) VALUES (NEW.id, NEW.id, 'Everyone');
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER organizations_create_everyone_group AFTER INSERT ON organizations
        FOR EACH ROW EXECUTE FUNCTION create_everyone_group()`);

    // Write path of the group-membership invariant (see the class comment for the argument).
    await q.query(`
      CREATE FUNCTION group_members_check_org_member() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        org uuid;
      BEGIN
        SELECT organization_id INTO org FROM groups WHERE id = NEW.group_id;
        IF org IS NULL THEN
          -- Not left to the foreign key: it checks later, with a newer snapshot, after this
          -- trigger would already have skipped the membership check.
          RAISE EXCEPTION 'group % does not exist', NEW.group_id
            USING ERRCODE = '23503', CONSTRAINT = 'group_members_group_id_fkey';
        END IF;
        IF org = NEW.group_id THEN
          RAISE EXCEPTION 'the Everyone group has no explicit members'
            USING ERRCODE = '23514', CONSTRAINT = 'group_members_not_everyone';
        END IF;
        PERFORM 1 FROM organization_members
          WHERE organization_id = org AND user_id = NEW.user_id
          FOR KEY SHARE;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'user % is not a member of the organization of group %', NEW.user_id, NEW.group_id
            USING ERRCODE = '23514', CONSTRAINT = 'group_members_must_be_org_member';
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER group_members_check_org_member BEFORE INSERT OR UPDATE ON group_members
        FOR EACH ROW EXECUTE FUNCTION group_members_check_org_member()`);

    // Removal path: leaving an organization leaves its groups, in the same transaction.
    await q.query(`
      CREATE FUNCTION organization_members_remove_group_members() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        r record;
      BEGIN
        -- Each group membership removed this way is audited (CONTRACT 1.5: one group_member entry
        -- per user removed), by the database as the actor, with the causing request's id.
        FOR r IN DELETE FROM group_members gm
                  USING groups g
                  WHERE g.id = gm.group_id AND g.organization_id = OLD.organization_id AND gm.user_id = OLD.user_id
                 RETURNING gm.group_id, gm.user_id, g.name LOOP
          INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id, reason)
          VALUES (NULL, 'system:database', 'delete', 'group_member', r.group_id::text || '/' || r.user_id::text,
                  OLD.organization_id,
                  jsonb_build_object('group', jsonb_build_object('id', r.group_id, 'name', r.name), 'user_id', r.user_id),
                  nullif(current_setting('aigov.request_id', true), ''), 'membership_removed');
        END LOOP;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER organization_members_remove_group_members BEFORE DELETE ON organization_members
        FOR EACH ROW EXECUTE FUNCTION organization_members_remove_group_members()`);

    // Memberships and groups do not move: a changed key would bypass both paths above.
    await q.query(`
      CREATE FUNCTION reject_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% cannot move to another organization or user; delete and re-create it', TG_TABLE_NAME
          USING ERRCODE = '23514', CONSTRAINT = TG_TABLE_NAME || '_immutable_keys';
      END $$`);
    await q.query(`
      CREATE TRIGGER organization_members_immutable_keys
        BEFORE UPDATE OF organization_id, user_id ON organization_members
        FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
        EXECUTE FUNCTION reject_key_change()`);
    await q.query(`
      CREATE TRIGGER group_members_immutable_keys BEFORE UPDATE OF group_id, user_id ON group_members
        FOR EACH ROW WHEN (OLD.group_id IS DISTINCT FROM NEW.group_id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
        EXECUTE FUNCTION reject_key_change()`);
    await q.query(`
      CREATE TRIGGER groups_immutable_keys BEFORE UPDATE OF organization_id ON groups
        FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
        EXECUTE FUNCTION reject_key_change()`);
    // Never without an owner: nobody could manage the deployment again (POST /users/first only
    // works while no user exists). The advisory lock serializes concurrent demotions/deletions,
    // so two of them cannot each see the other as the remaining owner.
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
    // The Everyone group goes only with its organization (whose row is gone when that cascade runs).
    await q.query(`
      CREATE FUNCTION groups_keep_everyone() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.id = OLD.organization_id AND EXISTS (SELECT 1 FROM organizations WHERE id = OLD.organization_id) THEN
          RAISE EXCEPTION 'the Everyone group is deleted only with its organization'
            USING ERRCODE = '23514', CONSTRAINT = 'groups_everyone_undeletable';
        END IF;
        RETURN OLD;
      END $$`);
    await q.query(`
      CREATE TRIGGER groups_keep_everyone BEFORE DELETE ON groups
        FOR EACH ROW EXECUTE FUNCTION groups_keep_everyone()`);

    await q.query(`
      CREATE VIEW group_members_expanded AS
        SELECT gm.user_id, gm.group_id, g.organization_id
          FROM group_members gm JOIN groups g ON g.id = gm.group_id
        UNION ALL
        SELECT om.user_id, om.organization_id AS group_id, om.organization_id
          FROM organization_members om`);

    await q.query(`
      CREATE TABLE api_keys (
        id           text        NOT NULL,
        user_id      uuid        NOT NULL,
        name         text,
        secret_hash  bytea       NOT NULL,
        expires_at   timestamptz,
        last_used_at timestamptz,
        created_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT api_keys_pkey PRIMARY KEY (id),
        CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        CONSTRAINT api_keys_id_check CHECK (id ~ '^[a-z0-9]{10}$')
      )`);
    await q.query(`CREATE INDEX api_keys_user_id_idx ON api_keys (user_id)`);

    await q.query(`
      CREATE TABLE group_ai_budgets (
        group_id           uuid        NOT NULL,
        spend_limit_micros bigint      NOT NULL,
        created_at         timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT group_ai_budgets_pkey PRIMARY KEY (group_id),
        CONSTRAINT group_ai_budgets_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE,
        CONSTRAINT group_ai_budgets_spend_limit_micros_check CHECK (spend_limit_micros >= 0)
      )`);

    await q.query(`
      CREATE TABLE audit_logs (
        id              uuid        NOT NULL DEFAULT gen_random_uuid(),
        time            timestamptz NOT NULL DEFAULT clock_timestamp(),
        actor_id        uuid,
        actor           text        NOT NULL,
        action          text        NOT NULL,
        resource_type   text        NOT NULL,
        resource_id     text        NOT NULL,
        organization_id uuid,
        diff            jsonb       NOT NULL DEFAULT '{}',
        request_id      text,
        reason          text,
        CONSTRAINT audit_logs_pkey PRIMARY KEY (id),
        CONSTRAINT audit_logs_action_check CHECK (action IN ('create', 'write', 'delete'))
      )`);
    await q.query(`CREATE INDEX audit_logs_time_idx ON audit_logs (time)`);
    await q.query(`CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id)`);
    await q.query(`CREATE INDEX audit_logs_actor_idx ON audit_logs (actor)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_logs');
    await q.query('DROP TABLE group_ai_budgets');
    await q.query('DROP TABLE api_keys');
    await q.query('DROP VIEW group_members_expanded');
    await q.query('DROP TABLE group_members');
    await q.query('DROP TABLE groups');
    await q.query('DROP TABLE organization_members');
    await q.query('DROP TABLE users');
    await q.query('DROP TABLE organizations');
    await q.query('DROP FUNCTION groups_keep_everyone()');
    await q.query('DROP FUNCTION users_keep_an_owner()');
    await q.query('DROP FUNCTION reject_key_change()');
    await q.query('DROP FUNCTION organization_members_remove_group_members()');
    await q.query('DROP FUNCTION group_members_check_org_member()');
    await q.query('DROP FUNCTION create_everyone_group()');
  }
}
