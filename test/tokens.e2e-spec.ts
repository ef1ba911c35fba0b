import { createHash } from 'node:crypto';
import { ApiHarness, World, type Person } from './helpers/api';

describe('tokens, the first user and the error envelope (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let ownerToken: string;

  beforeAll(async () => {
    api = await ApiHarness.start();
  });

  afterAll(async () => {
    await api.close();
  });

  it('POST /users/first creates the owner, organization default and a key; 409 afterwards', async () => {
    ({ owner } = await new World(api).bootstrap());
    ownerToken = owner.token;
    expect(owner.token).toMatch(/^[a-z0-9]{10}-[A-Za-z0-9_-]{22,}$/);
    const me = await api.request('GET', '/api/v2/users/me', { token: owner.token });
    expect(me.body).toMatchObject({ username: 'owner', roles: ['owner'], status: 'active' });
    const again = await api.request('POST', '/api/v2/users/first', {
      body: { username: 'x', email: 'x@example.com' },
    });
    expect(again.status).toBe(409);
    const members = await api.sql(
      `SELECT o.name FROM organization_members m JOIN organizations o ON o.id = m.organization_id WHERE m.user_id = $1`,
      [owner.id],
    );
    expect(members).toEqual([{ name: 'default' }]);
  });

  it('the database holds only a SHA-256 of the secret, never the token', async () => {
    const [id, secret] = [ownerToken.slice(0, 10), ownerToken.slice(11)];
    const rows = await api.sql<{ id: string; secret_hash: Buffer }>(
      `SELECT id, secret_hash FROM api_keys WHERE id = $1`,
      [id],
    );
    expect(rows[0].secret_hash.equals(createHash('sha256').update(secret).digest())).toBe(true);
    const dump = await api.sql<{ t: string }>(`SELECT row_to_json(k)::text AS t FROM api_keys k`);
    expect(dump.some((r) => r.t.includes(secret))).toBe(false);
  });

  it('missing, malformed, unknown, wrong-secret, expired and deleted keys are 401', async () => {
    const bad = [
      undefined,
      'nonsense',
      'abcdefghij-wrongsecretwrongsecretwrong',
      `${ownerToken.slice(0, 10)}-${'x'.repeat(32)}`,
    ];
    for (const token of bad) {
      expect((await api.request('GET', '/api/v2/users/me', { token })).status).toBe(401);
    }
    expect(
      (await api.request('GET', '/api/v2/users/me', { headers: { authorization: 'Basic Zm9vOmJhcg==' } }))
        .status,
    ).toBe(401);

    const key = await api.request<{ id: string; key: string }>('POST', '/api/v2/users/me/keys', {
      token: ownerToken,
      body: { name: 'short', lifetime_seconds: 60 },
    });
    expect(key.status).toBe(201);
    expect((await api.request('GET', '/api/v2/users/me', { token: key.body.key })).status).toBe(200);
    await api.sql(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      key.body.id,
    ]);
    const expired = await api.request('GET', '/api/v2/users/me', { token: key.body.key });
    expect(expired.status).toBe(401);

    const other = await api.request<{ id: string; key: string }>('POST', '/api/v2/users/me/keys', {
      token: ownerToken,
      body: {},
    });
    expect((await api.request('GET', '/api/v2/users/me', { token: other.body.key })).status).toBe(200);
    expect(
      (await api.request('DELETE', `/api/v2/users/me/keys/${other.body.id}`, { token: ownerToken })).status,
    ).toBe(204);
    expect((await api.request('GET', '/api/v2/users/me', { token: other.body.key })).status).toBe(401);
  });

  it('lists keys without secrets and stamps last use without a write per request', async () => {
    const list = await api.request<{ keys: Record<string, unknown>[]; count: number }>(
      'GET',
      '/api/v2/users/me/keys',
      {
        token: ownerToken,
      },
    );
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(list.body.keys.length);
    expect(Object.keys(list.body.keys[0]).sort()).toEqual([
      'created_at',
      'expires_at',
      'id',
      'last_used_at',
      'name',
    ]);
    const id = ownerToken.slice(0, 10);
    const [first] = await api.sql<{ last_used_at: Date }>(`SELECT last_used_at FROM api_keys WHERE id = $1`, [
      id,
    ]);
    expect(first.last_used_at).not.toBeNull();
    await api.request('GET', '/api/v2/users/me', { token: ownerToken });
    const [second] = await api.sql<{ last_used_at: Date }>(
      `SELECT last_used_at FROM api_keys WHERE id = $1`,
      [id],
    );
    expect(second.last_used_at.getTime()).toBe(first.last_used_at.getTime());
  });

  it('uses a valid X-Request-Id and replaces an invalid one', async () => {
    const mine = await api.request('GET', '/api/v2/users/nobody-here', {
      token: ownerToken,
      headers: { 'x-request-id': 'abc.DEF_1-2' },
    });
    expect(mine.status).toBe(404);
    expect(mine.headers.get('x-request-id')).toBe('abc.DEF_1-2');
    expect(mine.body.request_id).toBe('abc.DEF_1-2');
    const bad = await api.request('GET', '/api/v2/users/me', {
      token: ownerToken,
      headers: { 'x-request-id': 'has space' },
    });
    expect(bad.headers.get('x-request-id')).not.toBe('has space');
    expect(bad.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
  });

  it('413 over 1 MiB, 415 for a non-JSON body, 400 for malformed JSON, naming the body', async () => {
    const big = await api.request('POST', '/api/v2/users', {
      token: ownerToken,
      rawBody: JSON.stringify({ name: 'x'.repeat(1_100_000) }),
    });
    expect(big.status).toBe(413);
    const text = await api.request('POST', '/api/v2/users', {
      token: ownerToken,
      rawBody: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    const malformed = await api.request('POST', '/api/v2/users', {
      token: ownerToken,
      rawBody: '{"username": ',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.validations).toEqual([expect.objectContaining({ field: 'body' })]);
    expect(typeof malformed.body.request_id).toBe('string');
  });

  it('a user-admin cannot take over an owner: no keys for, no deleting of, a user with roles it lacks', async () => {
    const world = new World(api);
    const admin = await world.person(owner, 'useradmin', { siteRoles: ['user-admin'] });
    const plain = await world.person(owner, 'plainperson');
    const mint = await api.request('POST', `/api/v2/users/${owner.id}/keys`, {
      token: admin.token,
      body: {},
    });
    expect(mint.status).toBe(403);
    expect((await api.request('GET', `/api/v2/users/${owner.id}/keys`, { token: admin.token })).status).toBe(
      403,
    );
    expect((await api.request('DELETE', `/api/v2/users/${owner.id}`, { token: admin.token })).status).toBe(
      403,
    );
    expect((await api.request('GET', '/api/v2/users/me', { token: ownerToken })).status).toBe(200);
    // ...but manages plain users, and itself
    expect(
      (await api.request('POST', `/api/v2/users/${plain.id}/keys`, { token: admin.token, body: {} })).status,
    ).toBe(201);
    expect(
      (await api.request('POST', '/api/v2/users/me/keys', { token: admin.token, body: {} })).status,
    ).toBe(201);
  });

  it('deleting a user records the memberships, roles and keys that went with it', async () => {
    const world = new World(api);
    const [org] = await api.sql<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    const doomed = await world.person(owner, 'doomed', { siteRoles: ['auditor'], orgs: [{ id: org.id }] });
    const res = await api.request('DELETE', `/api/v2/users/${doomed.id}`, {
      token: ownerToken,
      headers: { 'x-request-id': 'delete-doomed' },
    });
    expect(res.status).toBe(204);
    const entries = await api.sql<{ actor: string; resource_type: string; action: string; reason: string }>(
      `SELECT actor, resource_type, action, reason FROM audit_logs WHERE request_id = 'delete-doomed' ORDER BY resource_type`,
    );
    // The user by the caller; what went with it by the database, whichever way the deletion came.
    expect(entries).toEqual([
      { actor: 'system:database', resource_type: 'api_key', action: 'delete', reason: 'user_deleted' },
      {
        actor: 'system:database',
        resource_type: 'organization_member',
        action: 'delete',
        reason: 'user_deleted',
      },
      { actor: 'owner', resource_type: 'user', action: 'delete', reason: null },
      { actor: 'system:database', resource_type: 'user_roles', action: 'delete', reason: 'user_deleted' },
    ]);
  });

  it('never leaves the deployment without an owner (409), yet owners can change hands', async () => {
    const demote = await api.request('PUT', '/api/v2/users/me/roles', {
      token: ownerToken,
      body: { roles: [] },
    });
    expect(demote.status).toBe(409);
    expect((await api.request('DELETE', '/api/v2/users/me', { token: ownerToken })).status).toBe(409);
    const heir = await new World(api).person(owner, 'heir', { siteRoles: ['owner'] });
    expect(
      (
        await api.request('PUT', '/api/v2/users/me/roles', {
          token: ownerToken,
          body: { roles: ['auditor'] },
        })
      ).status,
    ).toBe(200);
    expect(
      (await api.request('PUT', `/api/v2/users/${heir.id}/roles`, { token: heir.token, body: { roles: [] } }))
        .status,
    ).toBe(409);
    expect(
      (
        await api.request('PUT', `/api/v2/users/${owner.id}/roles`, {
          token: heir.token,
          body: { roles: ['owner'] },
        })
      ).status,
    ).toBe(200);
  });

  it('emails are unique whatever their case (stored lowercased)', async () => {
    const a = await api.request<{ email: string }>('POST', '/api/v2/users', {
      token: ownerToken,
      body: { username: 'casey', email: 'Casey@Example.COM', organization_ids: [] },
    });
    expect(a.status).toBe(201);
    expect(a.body.email).toBe('casey@example.com');
    const b = await api.request('POST', '/api/v2/users', {
      token: ownerToken,
      body: { username: 'casey2', email: 'CASEY@example.com', organization_ids: [] },
    });
    expect(b.status).toBe(409);
  });
});
