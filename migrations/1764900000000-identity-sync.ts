import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * State of the membership listener (identity events, docs/identity-events.md):
 * - identity_applied_events: the id of every applied event, so a redelivered or duplicated
 *   event changes nothing. Written in the transaction that applies the event.
 * - identity_versions: per entity or membership, the `time` of the last event applied to it. An
 *   older event is ignored. Rows stay after the entity is gone (tombstones), so a late event
 *   cannot bring back something removed later. The upsert `... WHERE time <= EXCLUDED.time`
 *   also locks the row, which serializes listener instances working on the same key.
 *   `key`: the id, or `<organization or group id>/<user id>` for memberships.
 * - identity_snapshot_parts: parts of an organization snapshot too large for one message, kept
 *   until the last part arrives and the snapshot is applied as a whole.
 */
export class IdentitySync1764900000000 implements MigrationInterface {
  name = 'IdentitySync1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE identity_applied_events (
        event_id text NOT NULL,
        type text NOT NULL,
        event_time timestamptz NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT identity_applied_events_pkey PRIMARY KEY (event_id)
      )`);
    await q.query(
      'CREATE INDEX identity_applied_events_applied_at_idx ON identity_applied_events (applied_at)',
    );
    await q.query(`
      CREATE TABLE identity_versions (
        entity text NOT NULL,
        key text NOT NULL,
        time timestamptz NOT NULL,
        event_id text NOT NULL,
        CONSTRAINT identity_versions_pkey PRIMARY KEY (entity, key),
        CONSTRAINT identity_versions_entity_check CHECK (entity IN
          ('user', 'organization', 'group', 'organization_member', 'group_member'))
      )`);
    await q.query(`
      CREATE TABLE identity_snapshot_parts (
        snapshot_id text NOT NULL,
        part_index int NOT NULL,
        part_count int NOT NULL,
        organization_id uuid NOT NULL,
        event_id text NOT NULL,
        event_time timestamptz NOT NULL,
        data jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT identity_snapshot_parts_pkey PRIMARY KEY (snapshot_id, part_index),
        CONSTRAINT identity_snapshot_parts_index_check CHECK (part_index BETWEEN 1 AND part_count)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE identity_snapshot_parts');
    await q.query('DROP TABLE identity_versions');
    await q.query('DROP TABLE identity_applied_events');
  }
}
