import { insertOverride, testClient } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Suspension (CONTRACT 2.1, 3): PUT /users/{user}/status by owners and user-admins (not on an
// owner), audited; a suspended user's tokens are refused with a 401 that says so; nothing is
// removed; the last active owner can be neither suspended, nor demoted, nor deleted (409), also
// when two such changes race. And emails are unique regardless of case in the database itself.

interface ErrorBody {
  message: string;
  validations: { field: string; detail: string }[];
}
interface UserBody {
  id: string;
  status: string;
  roles: string[];
}

describe('suspension and the last active owner (real PostgreSQL)', () => {
  let api: ApiHarness;
  let world: World;
  let owner: Person;
  let defaultOrg: string;
  let userAdmin: Person;
  let orgAdmin: Person;
  let seq = 0;
  const rid = () => `suspension-test-${process.pid}-${++seq}`;

  const status = (who: Person | null, user: string, body: unknown, requestId?: string) =>
    api.call<UserBody & ErrorBody>('PUT', `/api/v2/users/${user}/status`, who, body, requestId);
  const me = (who: Person) => api.call<UserBody & ErrorBody>('GET', '/api/v2/users/me', who);

  async function activeOwners(): Promise<string[]> {
    const rows = await api.sql<{ username: string }>(
      `SELECT username FROM users WHERE 'owner' = ANY (roles) AND status = 'active' ORDER BY username`,
    );
    return rows.map((r) => r.username);
  }

  beforeAll(async () => {
    api = await ApiHarness.start();
    world = new World(api);
    ({ owner, defaultOrg } = await world.bootstrap());
    userAdmin = await world.person(owner, 'user-admin', { siteRoles: ['user-admin'] });
    orgAdmin = await world.person(owner, 'org-admin', {
      orgs: [{ id: defaultOrg, roles: ['organization-admin'] }],
    });
  });

  afterAll(async () => {
    await api?.close();
  });

  it('suspends and reactivates: 200 with the user, audited, tokens refused meanwhile, nothing removed', async () => {
    const member = await world.person(owner, 'member', { orgs: [{ id: defaultOrg }] });
    const group = await world.group(defaultOrg, 'suspended-team', [member.id]);
    await insertOverride(api.pg, member.id, group, 5);
    expect((await me(member)).status).toBe(200);

    const requestId = rid();
    const res = await status(userAdmin, member.username, { status: 'suspended' }, requestId);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: member.id, status: 'suspended' });
    const audit = await api.sql(
      `SELECT actor, action, resource_type, resource_id, diff FROM audit_logs WHERE request_id = $1`,
      [requestId],
    );
    expect(audit).toEqual([
      {
        actor: 'user-admin',
        action: 'write',
        resource_type: 'user',
        resource_id: member.id,
        diff: {
          user: { id: member.id, username: 'member' },
          status: { before: 'active', after: 'suspended' },
        },
      },
    ]);

    const refused = await me(member);
    expect(refused.status).toBe(401);
    expect(refused.body.message).toMatch(/suspended/i);
    // Suspension is an enforcement state: memberships, group membership and override stay.
    const [kept] = await api.sql<{ orgs: number; groups: number; overrides: number; keys: number }>(
      `SELECT (SELECT count(*)::int FROM organization_members WHERE user_id = $1) AS orgs,
              (SELECT count(*)::int FROM group_members WHERE user_id = $1) AS groups,
              (SELECT count(*)::int FROM user_ai_budget_overrides WHERE user_id = $1) AS overrides,
              (SELECT count(*)::int FROM api_keys WHERE user_id = $1) AS keys`,
      [member.id],
    );
    expect(kept).toEqual({ orgs: 1, groups: 1, overrides: 1, keys: 1 });
    const visible = await api.call<UserBody>('GET', `/api/v2/users/${member.id}`, owner);
    expect(visible.body.status).toBe('suspended');

    const back = await status(owner, member.id, { status: 'active' });
    expect(back.status).toBe(200);
    expect(back.body.status).toBe('active');
    expect((await me(member)).status).toBe(200);
  });

  it('a wrong token of a suspended user is still just invalid (the secret is checked first)', async () => {
    const member = await world.person(owner, 'member-wrong-token');
    expect((await status(owner, member.id, { status: 'suspended' })).status).toBe(200);
    const [id] = member.token.split('-');
    const res = await api.request<ErrorBody>('GET', '/api/v2/users/me', {
      token: `${id}-${'x'.repeat(30)}`,
    });
    expect(res.status).toBe(401);
    expect(res.body.message).not.toMatch(/suspended/i);
  });

  it('who may: owners on anyone, user-admins on anyone but an owner; others 403 or 404', async () => {
    const secondOwner = await world.person(owner, 'second-owner', { siteRoles: ['owner'] });
    const auditor = await world.person(owner, 'site-auditor', { siteRoles: ['auditor'] });
    const plain = await world.person(owner, 'plain', { orgs: [{ id: defaultOrg }] });
    const other = await world.person(owner, 'other', { orgs: [{ id: defaultOrg }] });

    const denied = await status(userAdmin, secondOwner.id, { status: 'suspended' });
    expect(denied.status).toBe(403);
    expect((await status(userAdmin, auditor.id, { status: 'suspended' })).status).toBe(200);
    expect((await status(userAdmin, auditor.id, { status: 'active' })).status).toBe(200);
    // Can read the user (an organization-admin of a shared organization), may not change it.
    expect((await status(orgAdmin, plain.id, { status: 'suspended' })).status).toBe(403);
    expect((await status(auditor, plain.id, { status: 'suspended' })).status).toBe(403);
    expect((await status(plain, plain.id, { status: 'suspended' })).status).toBe(403);
    // Cannot read the user at all.
    expect((await status(other, plain.id, { status: 'suspended' })).status).toBe(404);
    expect((await status(null, plain.id, { status: 'suspended' })).status).toBe(401);
    expect((await status(owner, 'nobody-here', { status: 'suspended' })).status).toBe(404);

    expect((await status(owner, secondOwner.id, { status: 'suspended' })).status).toBe(200);
    expect((await status(owner, secondOwner.id, { status: 'active' })).status).toBe(200);
    const [row] = await api.sql<{ status: string }>('SELECT status FROM users WHERE id = $1', [plain.id]);
    expect(row.status).toBe('active');
    await api.sql(`DELETE FROM users WHERE id = $1`, [secondOwner.id]);
  });

  it('400 naming the field for a bad status, an unknown field or a missing one', async () => {
    const cases: [unknown, string][] = [
      [{ status: 'gone' }, 'status'],
      [{ status: 1 }, 'status'],
      [{ status: null }, 'status'],
      [{}, 'status'],
      [{ status: 'active', extra: true }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const res = await status(owner, userAdmin.id, body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
      expect(res.body.validations.map((v) => v.field)).toContain(field);
    }
  });

  it('the last active owner can be neither suspended, nor demoted, nor deleted (409)', async () => {
    expect(await activeOwners()).toEqual(['owner']);
    const suspendSelf = await status(owner, 'me', { status: 'suspended' });
    expect(suspendSelf.status).toBe(409);
    expect(suspendSelf.body.message).toMatch(/last active owner/);
    const demote = await api.call('PUT', '/api/v2/users/me/roles', owner, { roles: [] });
    expect(demote.status).toBe(409);
    expect((await api.call('DELETE', '/api/v2/users/me', owner)).status).toBe(409);

    // A suspended owner does not count: the active one is still the last.
    const dormant = await world.person(owner, 'dormant-owner', { siteRoles: ['owner'] });
    expect((await status(owner, dormant.id, { status: 'suspended' })).status).toBe(200);
    expect((await status(owner, 'me', { status: 'suspended' })).status).toBe(409);
    expect((await api.call('PUT', '/api/v2/users/me/roles', owner, { roles: [] })).status).toBe(409);
    expect((await api.call('DELETE', '/api/v2/users/me', owner)).status).toBe(409);
    // Reactivated, it is an active owner again: now the first may step down, and not the second.
    expect((await status(owner, dormant.id, { status: 'active' })).status).toBe(200);
    expect((await status(owner, 'me', { status: 'suspended' })).status).toBe(200);
    expect(await activeOwners()).toEqual(['dormant-owner']);
    const dormantSelf = await status(dormant, 'me', { status: 'suspended' });
    expect(dormantSelf.status).toBe(409);
    expect((await status(dormant, owner.id, { status: 'active' })).status).toBe(200);
    expect(await activeOwners()).toEqual(['dormant-owner', 'owner']);
    await api.sql(`DELETE FROM users WHERE id = $1`, [dormant.id]);
  });

  it('two owners suspending or demoting each other at once: at most one succeeds, never no active owner', async () => {
    const rounds = 25;
    const outcomes = new Map<string, number>();
    for (let i = 0; i < rounds; i++) {
      const a = await world.person(owner, `race-a-${i}`, { siteRoles: ['owner'] });
      const b = await world.person(owner, `race-b-${i}`, { siteRoles: ['owner'] });
      // Leave a and b as the only active owners.
      await api.sql(`UPDATE users SET status = 'suspended' WHERE id = $1`, [owner.id]);
      const changes: (() => Promise<ApiResponse<unknown>>)[] = [
        () => status(a, b.id, { status: 'suspended' }),
        i % 2 === 0
          ? () => status(b, a.id, { status: 'suspended' })
          : () => api.call('PUT', `/api/v2/users/${a.id}/roles`, b, { roles: [] }),
      ];
      const [ra, rb] = await Promise.all(changes.map((f) => f()));
      const key = [ra.status, rb.status].sort().join('+');
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      expect([ra.status, rb.status].filter((s) => s === 200).length).toBeLessThanOrEqual(1);
      for (const s of [ra.status, rb.status]) expect([200, 401, 409]).toContain(s);
      const left = await api.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM users WHERE id = ANY($1::uuid[]) AND 'owner' = ANY (roles) AND status = 'active'`,
        [[a.id, b.id]],
      );
      expect(left[0].n).toBeGreaterThanOrEqual(1);
      await api.sql(`UPDATE users SET status = 'active' WHERE id = $1`, [owner.id]);
      await api.sql(`DELETE FROM users WHERE id = ANY($1::uuid[])`, [[a.id, b.id]]);
    }
    console.log(`last-active-owner race over HTTP, ${rounds} rounds:`, Object.fromEntries(outcomes));
  });

  it('the database serializes the race itself: the second of two interleaved suspensions fails', async () => {
    const a = await world.person(owner, 'tx-a', { siteRoles: ['owner'] });
    const b = await world.person(owner, 'tx-b', { siteRoles: ['owner'] });
    await api.sql(`UPDATE users SET status = 'suspended' WHERE id = $1`, [owner.id]);
    const [c1, c2] = [
      testClient({ connectionString: api.db.url }),
      testClient({ connectionString: api.db.url }),
    ];
    await c1.connect();
    await c2.connect();
    try {
      await c1.query('BEGIN');
      await c2.query('BEGIN');
      // Both see two active owners in their snapshots; c1 goes first and holds its change open.
      await c1.query(`UPDATE users SET status = 'suspended' WHERE id = $1`, [a.id]);
      const second = c2.query(`UPDATE users SET roles = '{}' WHERE id = $1`, [b.id]).then(
        () => null,
        (err: { constraint?: string }) => err,
      );
      // c2 waits for c1 (the lock of the check), so it cannot have answered yet.
      const early = await Promise.race([second, new Promise((r) => setTimeout(() => r('waiting'), 300))]);
      expect(early).toBe('waiting');
      await c1.query('COMMIT');
      const err = await second;
      expect(err?.constraint).toBe('users_last_owner');
      await c2.query('ROLLBACK');
    } finally {
      await c1.end();
      await c2.end();
    }
    expect(await api.sql(`SELECT status, roles FROM users WHERE id = $1`, [b.id])).toEqual([
      { status: 'active', roles: ['owner'] },
    ]);
    await api.sql(`UPDATE users SET status = 'active' WHERE id = $1`, [owner.id]);
    await api.sql(`DELETE FROM users WHERE id = ANY($1::uuid[])`, [[a.id, b.id]]);
  });
});

describe('emails unique regardless of case, in the database itself', () => {
  let api: ApiHarness;
  let owner: Person;

  beforeAll(async () => {
    api = await ApiHarness.start();
    ({ owner } = await new World(api).bootstrap());
  });

  afterAll(async () => {
    await api?.close();
  });

  it('a writer that does not lowercase cannot add a case variant (users_email_lower_key)', async () => {
    await api.sql(`INSERT INTO users (username, email) VALUES ('mixed', 'Mixed.Case@Example.com')`);
    const err = await api
      .sql(`INSERT INTO users (username, email) VALUES ('mixed2', 'mixed.case@EXAMPLE.com')`)
      .then(
        () => null,
        (e: { code?: string; constraint?: string }) => e,
      );
    expect({ code: err?.code, constraint: err?.constraint }).toEqual({
      code: '23505',
      constraint: 'users_email_lower_key',
    });
  });

  it('the API answers 409 naming email for an address stored in another case', async () => {
    const res = await api.call<ErrorBody>('POST', '/api/v2/users', owner, {
      username: 'mixed3',
      email: 'MIXED.case@example.COM',
      organization_ids: [],
    });
    expect(res.status).toBe(409);
    expect(res.body.validations).toEqual([{ field: 'email', detail: 'already taken' }]);
  });
});
