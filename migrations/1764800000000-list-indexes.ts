import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that let the first page of every list answer without reading the whole table
 * (bench/lists: a million audit entries, 100,000 users):
 * - audit_logs: one index per filter column, each ending in (time, id), so a filtered list
 *   reads its newest entries in index order and stops after the page; they replace the
 *   single-column ones of the identity migration.
 * - users: trigram indexes for the `q` search (a substring, case-insensitive, of username,
 *   email or name); a B-tree cannot serve `ILIKE '%x%'`. pg_trgm ships with PostgreSQL's
 *   contrib modules and is a trusted extension (a database owner may create it).
 * - api_keys: a user's keys in list order (created_at, id).
 * - groups: an organization's groups in list order, Everyone first (`id <> organization_id` is
 *   false only for it), then by name.
 */
export class ListIndexes1764800000000 implements MigrationInterface {
  name = 'ListIndexes1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX audit_logs_time_idx');
    await q.query('DROP INDEX audit_logs_resource_idx');
    await q.query('DROP INDEX audit_logs_actor_idx');
    await q.query('CREATE INDEX audit_logs_time_id_idx ON audit_logs (time, id)');
    await q.query('CREATE INDEX audit_logs_resource_type_time_idx ON audit_logs (resource_type, time, id)');
    await q.query('CREATE INDEX audit_logs_resource_id_time_idx ON audit_logs (resource_id, time, id)');
    await q.query('CREATE INDEX audit_logs_actor_time_idx ON audit_logs (actor, time, id)');
    await q.query('CREATE INDEX audit_logs_action_time_idx ON audit_logs (action, time, id)');

    await q.query('CREATE EXTENSION IF NOT EXISTS pg_trgm');
    await q.query('CREATE INDEX users_username_trgm_idx ON users USING gin (username gin_trgm_ops)');
    await q.query('CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops)');
    await q.query('CREATE INDEX users_name_trgm_idx ON users USING gin (name gin_trgm_ops)');

    await q.query('DROP INDEX api_keys_user_id_idx');
    await q.query('CREATE INDEX api_keys_user_id_created_at_idx ON api_keys (user_id, created_at, id)');

    await q.query(
      'CREATE INDEX groups_list_order_idx ON groups (organization_id, (id <> organization_id), name)',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX groups_list_order_idx');

    await q.query('DROP INDEX api_keys_user_id_created_at_idx');
    await q.query('CREATE INDEX api_keys_user_id_idx ON api_keys (user_id)');

    await q.query('DROP INDEX users_name_trgm_idx');
    await q.query('DROP INDEX users_email_trgm_idx');
    await q.query('DROP INDEX users_username_trgm_idx');
    // Without CASCADE: if anything else came to depend on pg_trgm, the revert stops here.
    await q.query('DROP EXTENSION IF EXISTS pg_trgm');

    await q.query('DROP INDEX audit_logs_action_time_idx');
    await q.query('DROP INDEX audit_logs_actor_time_idx');
    await q.query('DROP INDEX audit_logs_resource_id_time_idx');
    await q.query('DROP INDEX audit_logs_resource_type_time_idx');
    await q.query('DROP INDEX audit_logs_time_id_idx');
    await q.query('CREATE INDEX audit_logs_actor_idx ON audit_logs (actor)');
    await q.query('CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id)');
    await q.query('CREATE INDEX audit_logs_time_idx ON audit_logs (time)');
  }
}
