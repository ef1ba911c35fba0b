import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import {
  addGroupMember,
  addOrganizationMember,
  closePool,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  insertOverride,
  insertUser,
  newKeyId,
  type TestDatabase,
  testPool,
} from '@aigov/testing';
import { count, violation } from './helpers/identity-sql';

// A populated database survives pg_dump and a restore into an empty database with no error, the
// same rows in every table and working triggers (the membership invariant is
// enforced by triggers, not by a CHECK over other tables, so that dump/restore ordering works).

const run = promisify(execFile);

/** Runs a PostgreSQL client tool; rejects on a non-zero exit, with its stderr in the message. */
async function tool(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(cmd, args, {
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: number };
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${e.code}): ${e.stderr ?? e.message}`, {
      cause: err,
    });
  }
}

/** What the deletion check removes: a user in two organizations and two groups, and a group. */
interface Doomed {
  user: string;
  group: string;
  organization: string;
}

/** Fills every table through SQL, triggers included (cascade audit entries, Everyone groups). */
async function populate(db: Pool): Promise<Doomed> {
  const { id: acme } = await insertOrganization(db);
  const { id: globex } = await insertOrganization(db);
  await db.query(`UPDATE organizations SET display_name = 'Acme, Inc. – "quoted"' WHERE id = $1`, [acme]);
  const [alice, bob, carol, dave, erin] = [
    (await insertUser(db)).id,
    (await insertUser(db)).id,
    (await insertUser(db)).id,
    (await insertUser(db)).id,
    (await insertUser(db)).id,
  ];
  await db.query(`UPDATE users SET roles = '{owner}', name = 'Alice O''Neil' WHERE id = $1`, [alice]);
  await db.query(`UPDATE users SET status = 'suspended' WHERE id = $1`, [erin]);
  await addOrganizationMember(db, acme, alice, ['organization-admin']);
  await addOrganizationMember(db, acme, bob);
  await addOrganizationMember(db, acme, carol, ['organization-auditor', 'organization-user-admin']);
  await addOrganizationMember(db, acme, dave);
  await addOrganizationMember(db, globex, bob);
  await addOrganizationMember(db, globex, erin);
  const { id: eng } = await insertGroup(db, acme, 'Engineering');
  const { id: data } = await insertGroup(db, acme, 'Data Science (EU) – ñ');
  const { id: ops } = await insertGroup(db, globex, 'ops');
  await db.query(`UPDATE groups SET display_name = 'Engineers' WHERE id = $1`, [eng]);
  for (const [g, u] of [
    [eng, alice],
    [eng, bob],
    [data, bob],
    [data, carol],
    [eng, dave],
    [ops, erin],
  ]) {
    await addGroupMember(db, g, u);
  }
  await db.query(
    `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 100000000), ($2, 0), ($3, 1000000000000)`,
    [acme, eng, ops],
  );
  // Overrides: on Everyone (bob), on a normal group (carol, erin), and one about to be cascaded (dave).
  await insertOverride(db, bob, acme, 5_000_000);
  await insertOverride(db, carol, data, 9);
  await insertOverride(db, erin, ops, 0);
  await insertOverride(db, dave, eng, 123_456_789);
  // A cascade with a request id: leaves a system:database audit entry (membership_removed).
  await db.query('BEGIN');
  await db.query(`SELECT set_config('aigov.request_id', 'req-dump-1', true)`);
  await db.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [eng, dave]);
  await db.query('COMMIT');
  await db.query(
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
     VALUES ('anthropic', 'claude-x', 'default', 3000000, 15000000, 300000, 3750000, NULL),
            ('anthropic', 'claude-x', 'custom', 2500000, 0, NULL, NULL,
             '[{"min_context_tokens": 200000, "input_price": 6000000, "output_price": null, "cache_read_price": 0, "cache_write_price": null}]'),
            ('openai', 'gpt-y', 'custom', NULL, NULL, NULL, NULL, NULL)`,
  );
  await db.query(
    `INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id)
     VALUES ($1, 'alice', 'create', 'group_ai_budget', $2, $3,
             '{"spend_limit": {"before": null, "after": {"usd": "$0.00", "micros": 0}}}', 'req-1'),
            ($1, 'alice', 'write', 'ai_model_price', 'anthropic/claude-x', NULL, '{"note": "tab\\there, newline\\n"}', NULL),
            (NULL, 'system:pricing-worker', 'delete', 'ai_model_price', 'openai/gpt-z', NULL, '{}', NULL)`,
    [alice, eng, acme],
  );
  await db.query(
    `INSERT INTO api_keys (id, user_id, name, secret_hash, expires_at, last_used_at)
     VALUES ($1, $2, 'ci', sha256('secret-1'::bytea), now() + interval '30 days', now()),
            ($3, $4, NULL, sha256('secret-2'::bytea), NULL, NULL)`,
    [newKeyId(), alice, newKeyId(), erin],
  );
  await db.query(
    `INSERT INTO api_keys (id, user_id, name, secret_hash) VALUES ($1, $2, 'bob key', sha256('secret-3'::bytea))`,
    [newKeyId(), bob],
  );
  await db.query(`UPDATE users SET roles = '{auditor}' WHERE id = $1`, [bob]);
  // The membership listener's bookkeeping: an applied event, key times, a waiting snapshot part.
  await db.query(
    `INSERT INTO identity_applied_events (event_id, type, event_time) VALUES ('evt-1', 'identity.user.upserted', now())`,
  );
  await db.query(
    `INSERT INTO identity_versions (entity, key, time, event_id)
     VALUES ('user', $1, now(), 'evt-1'), ('organization_member', $2 || '/' || $1 || '/ended', now(), 'evt-1')`,
    [bob, acme],
  );
  await db.query(
    `INSERT INTO identity_snapshot_parts (snapshot_id, part_index, part_count, organization_id, event_id, event_time, data)
     VALUES ('snap-1', 1, 2, $1, 'evt-2', now(), '{"users": []}')`,
    [acme],
  );
  // The spend ledger: a usage row, its counter, a held reservation and a threshold event.
  await db.query(
    `INSERT INTO ai_usage (request_id, user_id, effective_group_id, provider, model, input_tokens, output_tokens,
                           input_price, output_price, price_source, cost_micros, occurred_at)
     VALUES ('req-usage-1', $1, $2, 'anthropic', 'claude-x', 1000, 100, 3000000, 15000000, 'default', 4500, now())`,
    [bob, eng],
  );
  await db.query(
    `INSERT INTO ai_spend_counters (user_id, period_start, spent_micros, held_micros)
     VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 4500, 700)`,
    [bob],
  );
  await db.query(
    `INSERT INTO ai_reservations (request_id, user_id, effective_group_id, period_start, amount_micros, expires_at)
     VALUES ('req-hold-1', $1, $2, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 700, now() + interval '1 hour')`,
    [bob, eng],
  );
  await db.query(
    `INSERT INTO ai_budget_threshold_events (user_id, period_start, threshold_percent, effective_group_id, spent_micros, spend_limit_micros)
     VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 85, $2, 4500, 5000)`,
    [bob, eng],
  );
  // bob: in acme and globex, in eng and data, an override on acme's Everyone group, a key, a role.
  // eng: a budget and members (alice, and bob unless he went first).
  // globex: its group ops (erin, her override, a budget) and its members (erin; bob if still there).
  return { user: bob, group: eng, organization: globex };
}

/**
 * Deletes the user, the group, then the organization, in one transaction that is rolled back, and returns the audit
 * entries the deletions left (without ids and times), sorted. CONTRACT 1.5: they must not depend
 * on the order in which PostgreSQL fires the cascade triggers, which a restore changes.
 */
async function deletionAudit(db: Pool, doomed: Doomed): Promise<string[]> {
  await db.query('BEGIN');
  try {
    await db.query(`SELECT set_config('aigov.request_id', 'req-deletion', true)`);
    await db.query('DELETE FROM users WHERE id = $1', [doomed.user]);
    await db.query('DELETE FROM groups WHERE id = $1', [doomed.group]);
    await db.query('DELETE FROM organizations WHERE id = $1', [doomed.organization]);
    const res = await db.query<{ e: string }>(
      `SELECT jsonb_build_object('actor', actor, 'action', action, 'resource_type', resource_type,
                'resource_id', resource_id, 'organization_id', organization_id, 'diff', diff, 'reason', reason)::text AS e
         FROM audit_logs WHERE request_id = 'req-deletion' ORDER BY 1`,
    );
    return res.rows.map((r) => r.e);
  } finally {
    await db.query('ROLLBACK');
  }
}

interface TableDigest {
  table: string;
  rows: number;
  md5: string;
}

/** Row count and an order-independent digest of every row of every table in the public schema. */
async function digests(db: Pool): Promise<TableDigest[]> {
  const tables = await db.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
  );
  const out: TableDigest[] = [];
  for (const { tablename } of tables.rows) {
    const res = await db.query<{ rows: number; md5: string }>(
      `SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS md5
         FROM public.${JSON.stringify(tablename)} AS t`,
    );
    out.push({ table: tablename, ...res.rows[0] });
  }
  return out;
}

/** Named schema objects: constraints, triggers, indexes, functions (with their definitions), views, sequences. */
async function schemaObjects(db: Pool): Promise<string[]> {
  const res = await db.query<{ o: string }>(
    // A re-parsed CHECK can nest its ANDs differently (BETWEEN becomes a flat AND after a restore):
    // constraint definitions are compared without parentheses.
    `SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || translate(pg_get_constraintdef(oid), '()', '') AS o
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) || ' ' || tgenabled::text
       FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL
     SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
     UNION ALL
     SELECT 'function ' || md5(pg_get_functiondef(p.oid)) || ' ' || p.oid::regprocedure
       FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'view ' || viewname || ' ' || md5(definition) FROM pg_views WHERE schemaname = 'public'
     UNION ALL
     SELECT 'sequence ' || sequencename || ' ' || coalesce(last_value, 0) FROM pg_sequences WHERE schemaname = 'public'
     ORDER BY 1`,
  );
  return res.rows.map((r) => r.o);
}

describe('pg_dump and restore into an empty database', () => {
  let source: TestDatabase;
  let sourcePool: Pool;
  let dir: string;
  let before: TableDigest[];
  let beforeSchema: string[];
  let doomed: Doomed;
  /** The deletion's audit entries on the freshly migrated source database. */
  let sourceDeletion: string[];
  const opened: { db: TestDatabase; pool?: Pool }[] = [];

  beforeAll(async () => {
    source = await createTestDatabase();
    // One connection: populate() runs BEGIN/COMMIT through it.
    sourcePool = testPool({ connectionString: source.url, max: 1, application_name: 'aigov-dump-test' });
    doomed = await populate(sourcePool);
    sourceDeletion = await deletionAudit(sourcePool, doomed);
    before = await digests(sourcePool);
    beforeSchema = await schemaObjects(sourcePool);
    dir = await mkdtemp(path.join(tmpdir(), 'aigov-dump-'));
  });

  afterAll(async () => {
    if (sourcePool) await closePool(sourcePool);
    await source?.drop();
    for (const { db, pool } of opened) {
      if (pool) await closePool(pool);
      await db.drop();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the source holds rows in every table, the cascade audit entry among them', async () => {
    expect(before.map((d) => d.table)).toEqual([
      'ai_budget_threshold_events',
      'ai_effective_budgets',
      'ai_model_price_changes',
      'ai_model_prices',
      'ai_reservations',
      'ai_spend_counters',
      'ai_usage',
      'api_keys',
      'audit_logs',
      'group_ai_budgets',
      'group_members',
      'groups',
      'identity_applied_events',
      'identity_snapshot_parts',
      'identity_versions',
      'organization_members',
      'organizations',
      'typeorm_migrations',
      'user_ai_budget_overrides',
      'users',
    ]);
    for (const d of before)
      expect({ table: d.table, empty: d.rows === 0 }).toEqual({ table: d.table, empty: false });
    expect(
      await count(
        sourcePool,
        `SELECT 1 FROM audit_logs WHERE actor = 'system:database' AND reason = 'membership_removed'
           AND resource_type = 'user_ai_budget_override' AND request_id = 'req-dump-1'`,
      ),
    ).toBe(1);
    expect(await count(sourcePool, 'SELECT 1 FROM user_ai_budget_overrides')).toBe(3);
  });

  it('deleting a user, a group and an organization records everything that went with them', () => {
    const kinds = sourceDeletion.map((e) => {
      const j = JSON.parse(e) as {
        actor: string;
        action: string;
        resource_type: string;
        reason: string | null;
      };
      return `${j.actor} ${j.action} ${j.resource_type} ${j.reason ?? '-'}`;
    });
    expect(kinds.sort()).toEqual(
      [
        // bob: override, two group memberships, two organization memberships, key, roles
        'system:database delete user_ai_budget_override user_deleted',
        'system:database delete group_member user_deleted',
        'system:database delete group_member user_deleted',
        'system:database delete organization_member user_deleted',
        'system:database delete organization_member user_deleted',
        'system:database delete api_key user_deleted',
        'system:database delete user_roles user_deleted',
        // eng: its remaining member (alice) and its budget
        'system:database delete group_member group_deleted',
        'system:database delete group_ai_budget group_deleted',
        // globex: ops with erin's membership, her override and its budget; erin's membership
        'system:database delete user_ai_budget_override group_deleted',
        'system:database delete group_member group_deleted',
        'system:database delete group_ai_budget group_deleted',
        'system:database delete organization_member organization_deleted',
      ].sort(),
    );
  });

  it.each([
    ['plain SQL through psql', 'plain'],
    ['custom format through pg_restore', 'custom'],
  ])(
    '%s: no error, the same rows in every table, the same schema, working triggers',
    async (_label, format) => {
      const file = path.join(dir, `dump.${format}`);
      await tool('pg_dump', ['--no-password', `--format=${format}`, '--file', file, '--dbname', source.url]);

      const target = await createTestDatabase({ migrated: false });
      const entry: { db: TestDatabase; pool?: Pool } = { db: target };
      opened.push(entry);
      const restored =
        format === 'plain'
          ? await tool('psql', [
              '--no-password',
              '--no-psqlrc',
              '--quiet',
              '--set',
              'ON_ERROR_STOP=1',
              '--single-transaction',
              '--file',
              file,
              '--dbname',
              target.url,
            ])
          : await tool('pg_restore', [
              '--no-password',
              '--exit-on-error',
              '--single-transaction',
              '--dbname',
              target.url,
              file,
            ]);
      expect(restored.stderr).toBe('');

      const pool = testPool({ connectionString: target.url, max: 2, application_name: 'aigov-restore-test' });
      entry.pool = pool;
      expect(await digests(pool)).toEqual(before);
      expect(await schemaObjects(pool)).toEqual(beforeSchema);

      expect(await deletionAudit(pool, doomed)).toEqual(sourceDeletion);
      await expectTriggersWork(pool);
    },
  );
});

/** The membership triggers after a restore: write-time rejection, removal cascades with audit, Everyone creation. */
async function expectTriggersWork(db: Pool): Promise<void> {
  const { id: org } = await insertOrganization(db);
  expect(
    await count(db, `SELECT 1 FROM groups WHERE id = $1 AND organization_id = $1 AND name = 'Everyone'`, [
      org,
    ]),
  ).toBe(1);
  const { id: group } = await insertGroup(db, org);
  const { id: member } = await insertUser(db);
  const { id: stranger } = await insertUser(db);
  await addOrganizationMember(db, org, member);
  await addGroupMember(db, group, member);

  const insert =
    'INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, 1)';
  for (const g of [group, org]) {
    const err = await violation(db, insert, [stranger, g]);
    expect({ code: err.code, constraint: err.constraint }).toEqual({
      code: '23514',
      constraint: 'user_ai_budget_overrides_must_be_group_member',
    });
  }
  const notOrgMember = await violation(db, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [
    group,
    stranger,
  ]);
  expect(notOrgMember.constraint).toBe('group_members_must_be_org_member');

  // Removing the group membership removes the override on that group, with an audit entry.
  await insertOverride(db, member, group, 1);
  await db.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [group, member]);
  expect(await count(db, 'SELECT 1 FROM user_ai_budget_overrides WHERE user_id = $1', [member])).toBe(0);

  // Leaving the organization removes the Everyone override, with an audit entry.
  await insertOverride(db, member, org, 1);
  await db.query('DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
    org,
    member,
  ]);
  expect(await count(db, 'SELECT 1 FROM user_ai_budget_overrides WHERE user_id = $1', [member])).toBe(0);

  const audits = await db.query<{ group_id: string; organization_id: string; reason: string }>(
    `SELECT diff->'group'->'before'->>'id' AS group_id, organization_id, reason FROM audit_logs
      WHERE actor = 'system:database' AND resource_type = 'user_ai_budget_override' AND resource_id = $1
      ORDER BY time`,
    [member],
  );
  expect(audits.rows).toEqual([
    { group_id: group, organization_id: org, reason: 'membership_removed' },
    { group_id: org, organization_id: org, reason: 'membership_removed' },
  ]);
}
