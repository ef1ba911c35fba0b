import type { Pool, PoolClient } from 'pg';
import {
  addGroupMember,
  addOrganizationMember,
  closePool,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  insertUser,
  newKeyId,
  uniqueName,
  type TestDatabase,
  testPool,
} from '@aigov/testing';
import {
  count,
  createRaceFixtures,
  groupsOf,
  orphanGroupMemberships,
  rewrittenCheckFunction,
  runMembershipRace,
  violation,
  type RaceOutcome,
} from './helpers/identity-sql';

// Database behaviour of the identity schema (migrations/), on real PostgreSQL.

describe('identity schema', () => {
  let db: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    pool = testPool({ connectionString: db.url, max: 6, application_name: 'aigov-identity-schema-test' });
  });

  afterAll(async () => {
    if (pool) await closePool(pool);
    await db?.drop();
  });

  /** Runs `fn` on one pooled connection inside BEGIN; the caller ends the transaction. */
  async function inTransaction(fn: (c: PoolClient) => Promise<void>): Promise<void> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await fn(c);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  }

  describe('Everyone group', () => {
    it('is created with the organization: id = organization id, name Everyone', async () => {
      const { id: org } = await insertOrganization(pool);
      const res = await pool.query<{ id: string; organization_id: string; name: string }>(
        'SELECT id, organization_id, name FROM groups WHERE organization_id = $1',
        [org],
      );
      expect(res.rows).toEqual([{ id: org, organization_id: org, name: 'Everyone' }]);
    });

    it('exists inside the inserting transaction, and a rollback leaves neither organization nor group', async () => {
      const name = uniqueName('rolled-back');
      let org = '';
      await inTransaction(async (c) => {
        ({ id: org } = await insertOrganization(c, name));
        // Visible right after the INSERT statement, before any commit.
        const inside = await c.query<{ id: string; name: string }>(
          'SELECT id, name FROM groups WHERE id = $1 AND organization_id = $1',
          [org],
        );
        expect(inside.rows).toEqual([{ id: org, name: 'Everyone' }]);
        await c.query('ROLLBACK');
      });
      expect(await count(pool, 'SELECT 1 FROM organizations WHERE id = $1 OR name = $2', [org, name])).toBe(
        0,
      );
      expect(await count(pool, 'SELECT 1 FROM groups WHERE id = $1 OR organization_id = $1', [org])).toBe(0);
    });

    it.each(['everyone', 'EVERYONE', 'Everyone', 'eVeRyOnE'])(
      'a second group named %s fails with groups_everyone_reserved_check',
      async (name) => {
        const { id: org } = await insertOrganization(pool);
        const err = await violation(pool, 'INSERT INTO groups (organization_id, name) VALUES ($1, $2)', [
          org,
          name,
        ]);
        expect(err.code).toBe('23514');
        expect(err.constraint).toBe('groups_everyone_reserved_check');
      },
    );

    it('cannot be renamed (groups_everyone_reserved_check)', async () => {
      const { id: org } = await insertOrganization(pool);
      for (const name of ['staff', 'everyone-else', 'Everyone ']) {
        const err = await violation(pool, 'UPDATE groups SET name = $2 WHERE id = $1', [org, name]);
        expect(err.code).toBe('23514');
        expect(err.constraint).toBe('groups_everyone_reserved_check');
      }
    });

    it('a normal group cannot be renamed to everyone', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org, 'staff');
      const err = await violation(pool, `UPDATE groups SET name = 'everyone' WHERE id = $1`, [group]);
      expect(err.constraint).toBe('groups_everyone_reserved_check');
    });
  });

  describe('group names', () => {
    it('a duplicate name in an organization fails with groups_organization_id_name_key; another org is fine', async () => {
      const { id: org1 } = await insertOrganization(pool);
      const { id: org2 } = await insertOrganization(pool);
      await insertGroup(pool, org1, 'engineering');
      const err = await violation(pool, 'INSERT INTO groups (organization_id, name) VALUES ($1, $2)', [
        org1,
        'engineering',
      ]);
      expect(err.code).toBe('23505');
      expect(err.constraint).toBe('groups_organization_id_name_key');
      const other = await insertGroup(pool, org2, 'engineering');
      expect(other).toMatchObject({ organizationId: org2, name: 'engineering' });
    });

    it.each([
      ['empty', ''],
      ['256 characters', 'g'.repeat(256)],
      ['a control character', 'line\nbreak'],
    ])('a name that is %s fails with groups_name_check', async (_label, name) => {
      const { id: org } = await insertOrganization(pool);
      const err = await violation(pool, 'INSERT INTO groups (organization_id, name) VALUES ($1, $2)', [
        org,
        name,
      ]);
      expect(err.constraint).toBe('groups_name_check');
    });

    it('accepts 255 printable characters, spaces and mixed case', async () => {
      const { id: org } = await insertOrganization(pool);
      await insertGroup(pool, org, 'G'.repeat(255));
      await insertGroup(pool, org, 'Data Science (EU) – ñ');
    });
  });

  describe('name and value checks', () => {
    it.each([
      ['uppercase', 'Acme'],
      ['65 characters', 'a'.repeat(65)],
      ['empty', ''],
      ['an underscore', 'acme_corp'],
      ['a space', 'acme corp'],
    ])('an organization name with %s fails with organizations_name_check', async (_label, name) => {
      const err = await violation(pool, 'INSERT INTO organizations (name) VALUES ($1)', [name]);
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe('organizations_name_check');
    });

    it('accepts a 64-character organization name of [a-z0-9-]; a duplicate fails with organizations_name_key', async () => {
      const name = `${uniqueName('x')}-`.padEnd(64, '0');
      expect(name).toHaveLength(64);
      await insertOrganization(pool, name);
      const err = await violation(pool, 'INSERT INTO organizations (name) VALUES ($1)', [name]);
      expect(err.constraint).toBe('organizations_name_key');
    });

    it.each([
      ['me', 'me'],
      ['uppercase', 'Alice'],
      ['a space', 'alice smith'],
      ['empty', ''],
      ['65 characters', 'u'.repeat(65)],
      ['a dot', 'alice.smith'],
    ])('a username that is %s fails with users_username_check', async (_label, username) => {
      const err = await violation(pool, 'INSERT INTO users (username, email) VALUES ($1, $2)', [
        username,
        `${uniqueName('mail')}@example.test`,
      ]);
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe('users_username_check');
    });

    it('accepts usernames of [a-z0-9_-] up to 64 characters that only start with me', async () => {
      for (const username of [uniqueName('me'), `_${uniqueName('x')}_`, uniqueName('y').padEnd(64, '9')]) {
        await insertUser(pool, { username });
      }
    });

    it('users: unknown status fails with users_status_check; suspended is fine; duplicates are named', async () => {
      const name = uniqueName('status');
      const err = await violation(pool, 'INSERT INTO users (username, email, status) VALUES ($1, $2, $3)', [
        name,
        `${name}@example.test`,
        'disabled',
      ]);
      expect(err.constraint).toBe('users_status_check');
      await pool.query('INSERT INTO users (username, email, status) VALUES ($1, $2, $3)', [
        name,
        `${name}@example.test`,
        'suspended',
      ]);
      const dupUsername = await violation(pool, 'INSERT INTO users (username, email) VALUES ($1, $2)', [
        name,
        `other-${name}@example.test`,
      ]);
      expect(dupUsername.constraint).toBe('users_username_key');
      const dupEmail = await violation(pool, 'INSERT INTO users (username, email) VALUES ($1, $2)', [
        `other-${name}`,
        `${name}@example.test`,
      ]);
      expect(dupEmail.constraint).toBe('users_email_key');
    });

    it('users: an unknown site role fails with users_roles_check; site roles are fine', async () => {
      const { id: user } = await insertUser(pool);
      const err = await violation(pool, 'UPDATE users SET roles = $2 WHERE id = $1', [
        user,
        ['owner', 'root'],
      ]);
      expect(err.constraint).toBe('users_roles_check');
      const orgRole = await violation(pool, 'UPDATE users SET roles = $2 WHERE id = $1', [
        user,
        ['organization-admin'],
      ]);
      expect(orgRole.constraint).toBe('users_roles_check');
      await pool.query('UPDATE users SET roles = $2 WHERE id = $1', [
        user,
        ['owner', 'user-admin', 'auditor', 'ai-gateway'],
      ]);
    });

    it('organization_members: an unknown or site role fails with organization_members_roles_check', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: user } = await insertUser(pool);
      for (const roles of [['owner'], ['organization-owner'], ['organization-admin', 'admin']]) {
        const err = await violation(
          pool,
          'INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3)',
          [org, user, roles],
        );
        expect(err.constraint).toBe('organization_members_roles_check');
      }
      await addOrganizationMember(pool, org, user, [
        'organization-admin',
        'organization-user-admin',
        'organization-auditor',
      ]);
    });

    it.each([
      ['9 characters', 'abcdefghi'],
      ['11 characters', 'abcdefghijk'],
      ['uppercase', 'ABCDEFGHIJ'],
      ['a dash', 'abcde-ghij'],
    ])('an api key id with %s fails with api_keys_id_check', async (_label, id) => {
      const { id: user } = await insertUser(pool);
      const err = await violation(
        pool,
        `INSERT INTO api_keys (id, user_id, secret_hash) VALUES ($1, $2, decode('00', 'hex'))`,
        [id, user],
      );
      expect(err.constraint).toBe('api_keys_id_check');
    });

    it('accepts an api key id of 10 lowercase alphanumerics', async () => {
      const { id: user } = await insertUser(pool);
      await pool.query(
        `INSERT INTO api_keys (id, user_id, secret_hash) VALUES ($1, $2, decode('00', 'hex'))`,
        [newKeyId(), user],
      );
    });
  });

  describe('group_members', () => {
    it('rejects a user who is not a member of the group organization (23514, group_members_must_be_org_member)', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: otherOrg } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: stranger } = await insertUser(pool);
      const { id: elsewhere } = await insertUser(pool);
      await addOrganizationMember(pool, otherOrg, elsewhere);
      for (const user of [stranger, elsewhere]) {
        const err = await violation(pool, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [
          group,
          user,
        ]);
        expect(err.code).toBe('23514');
        expect(err.constraint).toBe('group_members_must_be_org_member');
      }
      expect(await count(pool, 'SELECT 1 FROM group_members WHERE group_id = $1', [group])).toBe(0);
    });

    it('rejects explicit members of an Everyone group (group_members_not_everyone)', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: user } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      const err = await violation(pool, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [
        org,
        user,
      ]);
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe('group_members_not_everyone');
    });

    it('accepts a member of the organization', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: user } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      await addGroupMember(pool, group, user);
      expect(await groupsOf(pool, user)).toEqual([group]);
      const dup = await violation(pool, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [
        group,
        user,
      ]);
      expect(dup.constraint).toBe('group_members_pkey');
    });

    it('checks updates too: moving a membership to a group of another organization or to Everyone fails', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: otherOrg } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: foreignGroup } = await insertGroup(pool, otherOrg);
      const { id: user } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      await addGroupMember(pool, group, user);
      const moved = await violation(
        pool,
        'UPDATE group_members SET group_id = $3 WHERE group_id = $1 AND user_id = $2',
        [group, user, foreignGroup],
      );
      expect(moved.constraint).toBe('group_members_must_be_org_member');
      const toEveryone = await violation(
        pool,
        'UPDATE group_members SET group_id = $3 WHERE group_id = $1 AND user_id = $2',
        [group, user, org],
      );
      expect(toEveryone.constraint).toBe('group_members_not_everyone');
      expect(await groupsOf(pool, user)).toEqual([group]);
    });

    it('removing an organization membership removes that organization group memberships, in the same transaction', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: otherOrg } = await insertOrganization(pool);
      const [g1, g2] = [(await insertGroup(pool, org)).id, (await insertGroup(pool, org)).id];
      const { id: foreign } = await insertGroup(pool, otherOrg);
      const { id: leaver } = await insertUser(pool);
      const { id: stayer } = await insertUser(pool);
      await addOrganizationMember(pool, org, leaver);
      await addOrganizationMember(pool, otherOrg, leaver);
      await addOrganizationMember(pool, org, stayer);
      for (const g of [g1, g2, foreign]) await addGroupMember(pool, g, leaver);
      await addGroupMember(pool, g1, stayer);
      const before = await groupsOf(pool, leaver);
      expect(before).toEqual([g1, g2, foreign].sort());

      const leave = 'DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2';
      await inTransaction(async (c) => {
        const res = await c.query(leave, [org, leaver]);
        expect(res.rowCount).toBe(1);
        // Already gone inside the deleting transaction; the other organization's group stays.
        expect(await groupsOf(c, leaver)).toEqual([foreign]);
        expect(await groupsOf(c, stayer)).toEqual([g1]);
        await c.query('ROLLBACK');
      });
      expect(await groupsOf(pool, leaver)).toEqual(before);

      await pool.query(leave, [org, leaver]);
      expect(await groupsOf(pool, leaver)).toEqual([foreign]);
      expect(await groupsOf(pool, stayer)).toEqual([g1]);
      expect(await orphanGroupMemberships(pool)).toBe(0);
    });
  });

  describe('group_members_expanded', () => {
    it('lists explicit memberships with their organization plus one Everyone row per organization membership', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: otherOrg } = await insertOrganization(pool);
      const { id: g1 } = await insertGroup(pool, org);
      const { id: g2 } = await insertGroup(pool, org);
      const { id: user } = await insertUser(pool);
      const { id: loner } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      await addOrganizationMember(pool, otherOrg, user);
      await addGroupMember(pool, g1, user);
      await addGroupMember(pool, g2, user);

      const expected = [
        { user_id: user, group_id: g1, organization_id: org },
        { user_id: user, group_id: g2, organization_id: org },
        { user_id: user, group_id: org, organization_id: org },
        { user_id: user, group_id: otherOrg, organization_id: otherOrg },
      ];
      expect(await expanded(user)).toEqual(sortRows(expected));
      expect(await expanded(loner)).toEqual([]);

      // Suspension is an enforcement state: it removes nothing from the view.
      await pool.query(`UPDATE users SET status = 'suspended' WHERE id = $1`, [user]);
      expect(await expanded(user)).toEqual(sortRows(expected));
    });

    it('never holds duplicate rows', async () => {
      const dups = await count(
        pool,
        `SELECT 1 FROM group_members_expanded GROUP BY user_id, group_id, organization_id HAVING count(*) > 1`,
      );
      expect(dups).toBe(0);
    });

    type ExpandedRow = { user_id: string; group_id: string; organization_id: string };

    function sortRows(rows: ExpandedRow[]): ExpandedRow[] {
      return [...rows].sort((x, y) => x.group_id.localeCompare(y.group_id));
    }

    async function expanded(user: string): Promise<ExpandedRow[]> {
      const res = await pool.query<ExpandedRow>(
        'SELECT user_id, group_id, organization_id FROM group_members_expanded WHERE user_id = $1',
        [user],
      );
      return sortRows(res.rows);
    }
  });

  describe('cascades', () => {
    it('deleting a user removes their organization and group memberships and api keys, nothing else', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: doomed } = await insertUser(pool);
      const { id: other } = await insertUser(pool);
      for (const u of [doomed, other]) {
        await addOrganizationMember(pool, org, u);
        await addGroupMember(pool, group, u);
        await pool.query(
          `INSERT INTO api_keys (id, user_id, secret_hash) VALUES ($1, $2, decode('00', 'hex'))`,
          [newKeyId(), u],
        );
      }
      await pool.query('DELETE FROM users WHERE id = $1', [doomed]);
      for (const table of ['organization_members', 'group_members', 'api_keys']) {
        expect(await count(pool, `SELECT 1 FROM ${table} WHERE user_id = $1`, [doomed])).toBe(0);
        expect(await count(pool, `SELECT 1 FROM ${table} WHERE user_id = $1`, [other])).toBe(1);
      }
      expect(await count(pool, 'SELECT 1 FROM groups WHERE id IN ($1, $2)', [org, group])).toBe(2);
    });

    it('deleting a group removes its members and its budget, not the users or their org membership', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: kept } = await insertGroup(pool, org);
      const { id: user } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      await addGroupMember(pool, group, user);
      await addGroupMember(pool, kept, user);
      for (const g of [group, kept]) {
        await pool.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 1000)', [
          g,
        ]);
      }
      await pool.query('DELETE FROM groups WHERE id = $1', [group]);
      expect(await count(pool, 'SELECT 1 FROM group_members WHERE group_id = $1', [group])).toBe(0);
      expect(await count(pool, 'SELECT 1 FROM group_ai_budgets WHERE group_id = $1', [group])).toBe(0);
      expect(await groupsOf(pool, user)).toEqual([kept]);
      expect(await count(pool, 'SELECT 1 FROM group_ai_budgets WHERE group_id = $1', [kept])).toBe(1);
      expect(await count(pool, 'SELECT 1 FROM organization_members WHERE user_id = $1', [user])).toBe(1);
      expect(await count(pool, 'SELECT 1 FROM users WHERE id = $1', [user])).toBe(1);
    });

    it('deleting an organization removes its groups (Everyone too), members, group members and budgets', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: otherOrg } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const { id: foreign } = await insertGroup(pool, otherOrg);
      const { id: user } = await insertUser(pool);
      await addOrganizationMember(pool, org, user);
      await addOrganizationMember(pool, otherOrg, user);
      await addGroupMember(pool, group, user);
      await addGroupMember(pool, foreign, user);
      await pool.query(
        'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 5), ($2, 6)',
        [org, group],
      );

      await pool.query('DELETE FROM organizations WHERE id = $1', [org]);
      expect(await count(pool, 'SELECT 1 FROM groups WHERE organization_id = $1 OR id = $1', [org])).toBe(0);
      expect(await count(pool, 'SELECT 1 FROM organization_members WHERE organization_id = $1', [org])).toBe(
        0,
      );
      expect(
        await count(pool, 'SELECT 1 FROM group_ai_budgets WHERE group_id IN ($1, $2)', [org, group]),
      ).toBe(0);
      expect(await groupsOf(pool, user)).toEqual([foreign]);
      expect(await count(pool, 'SELECT 1 FROM users WHERE id = $1', [user])).toBe(1);
      expect(await count(pool, 'SELECT 1 FROM groups WHERE id IN ($1, $2)', [otherOrg, foreign])).toBe(2);
    });
  });

  describe('group_ai_budgets', () => {
    it('a negative limit fails with group_ai_budgets_spend_limit_micros_check; 0 is fine', async () => {
      const { id: org } = await insertOrganization(pool);
      const { id: group } = await insertGroup(pool, org);
      const err = await violation(
        pool,
        'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)',
        [group, -1],
      );
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe('group_ai_budgets_spend_limit_micros_check');
      await pool.query('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 0)', [group]);
    });

    it('holds one row per group (group_ai_budgets_pkey); the Everyone group may have one; unknown groups fail', async () => {
      const { id: org } = await insertOrganization(pool);
      const insert = 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)';
      await pool.query(insert, [org, 1_000_000]);
      const dup = await violation(pool, insert, [org, 2_000_000]);
      expect(dup.code).toBe('23505');
      expect(dup.constraint).toBe('group_ai_budgets_pkey');
      const unknown = await violation(pool, insert, ['00000000-0000-4000-8000-000000000000', 1]);
      expect(unknown.constraint).toBe('group_ai_budgets_group_id_fkey');
    });
  });

  describe('audit_logs', () => {
    it('an unknown action fails with audit_logs_action_check; create, write and delete are fine', async () => {
      const insert = `INSERT INTO audit_logs (actor, action, resource_type, resource_id) VALUES ('system:database', $1, 'group_member', 'x')`;
      for (const action of ['update', 'CREATE', '']) {
        const err = await violation(pool, insert, [action]);
        expect(err.code).toBe('23514');
        expect(err.constraint).toBe('audit_logs_action_check');
      }
      for (const action of ['create', 'write', 'delete']) await pool.query(insert, [action]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

const ROUNDS = 300;
const WORKERS = 3; // two connections each: 6 in the pool

/** A fresh migrated database with its own pool, optionally with group_members_check_org_member rewritten. */
async function raceDatabase(rewrite?: {
  dropLock: boolean;
  sleepSeconds: number;
}): Promise<{ db: TestDatabase; pool: Pool; definition: string }> {
  const db = await createTestDatabase();
  const pool = testPool({ connectionString: db.url, max: 2 * WORKERS, application_name: 'aigov-race-test' });
  if (rewrite) await pool.query(await rewrittenCheckFunction(pool, rewrite));
  const res = await pool.query<{ def: string }>(
    `SELECT pg_get_functiondef('group_members_check_org_member()'::regprocedure) AS def`,
  );
  return { db, pool, definition: res.rows[0].def };
}

async function race(pool: Pool, label: string): Promise<RaceOutcome & { orphans: number }> {
  const fixtures = await createRaceFixtures(pool, ROUNDS);
  const started = Date.now();
  const outcome = await runMembershipRace(pool, fixtures, WORKERS);
  const orphans = await orphanGroupMemberships(pool);
  console.log(
    `${label}: ${outcome.rounds} rounds, A won ${outcome.aWon}, A lost ${outcome.aLost}, ` +
      `a statement (probably) waited for the other transaction in ${outcome.waited}, orphans ${orphans} (${Date.now() - started} ms)`,
  );
  return { ...outcome, orphans };
}

describe('group membership insert racing organization membership removal', () => {
  const opened: { db: TestDatabase; pool: Pool }[] = [];

  afterAll(async () => {
    for (const { db, pool } of opened) {
      await closePool(pool);
      await db.drop();
    }
  });

  it(`with the migration's trigger (FOR KEY SHARE): ${ROUNDS} rounds leave no orphan, both outcomes occur`, async () => {
    const env = await raceDatabase();
    opened.push(env);
    expect(env.definition).toMatch(/FOR KEY SHARE/);

    const result = await race(env.pool, 'with FOR KEY SHARE');

    expect(result.rounds).toBe(ROUNDS);
    expect(result.aWon).toBeGreaterThan(0);
    expect(result.aLost).toBeGreaterThan(0);
    expect(result.waited).toBeGreaterThan(0);
    expect(result.orphans).toBe(0);
    // B always committed: no organization membership and so no group membership is left.
    expect(await count(env.pool, 'SELECT 1 FROM organization_members')).toBe(0);
    expect(await count(env.pool, 'SELECT 1 FROM group_members')).toBe(0);
  });

  it('with FOR KEY SHARE and the same 2 ms widened window: still no orphan', async () => {
    const env = await raceDatabase({ dropLock: false, sleepSeconds: 0.002 });
    opened.push(env);
    expect(env.definition).toMatch(/FOR KEY SHARE/);
    expect(env.definition).toMatch(/pg_sleep\(0\.002\)/);

    const result = await race(env.pool, 'with FOR KEY SHARE + pg_sleep(0.002)');

    expect(result.rounds).toBe(ROUNDS);
    expect(result.aWon).toBeGreaterThan(0);
    expect(result.aLost).toBeGreaterThan(0);
    expect(result.waited).toBeGreaterThan(0);
    expect(result.orphans).toBe(0);
  });

  it('without FOR KEY SHARE (control): the same race leaves orphans, so the test can see the race', async () => {
    const env = await raceDatabase({ dropLock: true, sleepSeconds: 0.002 });
    opened.push(env);
    expect(env.definition).not.toMatch(/FOR KEY SHARE/);
    expect(env.definition).toMatch(/pg_sleep\(0\.002\)/);

    const result = await race(env.pool, 'without FOR KEY SHARE + pg_sleep(0.002)');

    expect(result.rounds).toBe(ROUNDS);
    expect(result.orphans).toBeGreaterThan(0);
  });
});
