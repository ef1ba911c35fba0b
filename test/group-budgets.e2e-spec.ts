import { ApiHarness, World, type Person } from './helpers/api';

const MAX = 1_000_000_000_000;

describe('group AI budgets over HTTP (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let member: Person;
  let outsider: Person;
  let orgAdmin: Person;
  let org: string;
  let group: string;
  let otherGroup: string;

  const path = (g: string) => `/api/v2/groups/${g}/ai/budget`;

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    ({ owner } = await world.bootstrap());
    org = await world.organization('acme');
    member = await world.person(owner, 'member', { orgs: [{ id: org }] });
    outsider = await world.person(owner, 'outsider', { orgs: [{ id: org }] });
    orgAdmin = await world.person(owner, 'orgadmin', { orgs: [{ id: org, roles: ['organization-admin'] }] });
    group = await world.group(org, 'engineering', [member.id]);
    otherGroup = await world.group(org, 'sales');
  });

  afterAll(async () => {
    await api.close();
  });

  it('creates then updates (200 both times), with audit entries in dollars', async () => {
    const created = await api.request('PUT', path(group), {
      token: owner.token,
      body: { spend_limit_micros: 500_000_000 },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ group_id: group, spend_limit_micros: 500_000_000 });
    expect(typeof created.body.created_at).toBe('string');
    const updated = await api.request('PUT', path(group), {
      token: owner.token,
      body: { spend_limit_micros: 9 },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      group_id: group,
      spend_limit_micros: 9,
      created_at: created.body.created_at,
    });
    const got = await api.request('GET', path(group), { token: owner.token });
    expect(got.body).toEqual(updated.body);
    const audit = await api.sql<{
      action: string;
      diff: { spend_limit: { before: unknown; after: unknown } };
    }>(
      `SELECT action, diff FROM audit_logs WHERE resource_type = 'group_ai_budget' AND resource_id = $1 ORDER BY time`,
      [group],
    );
    expect(audit.map((a) => a.action)).toEqual(['create', 'write']);
    expect(audit[0].diff.spend_limit).toEqual({
      before: null,
      after: { usd: '$500.00', micros: 500_000_000 },
    });
    expect(audit[1].diff.spend_limit).toEqual({
      before: { usd: '$500.00', micros: 500_000_000 },
      after: { usd: '$0.000009', micros: 9 },
    });
  });

  it('GET and DELETE without a budget are 404; DELETE then GET is 404', async () => {
    const get = await api.request('GET', path(otherGroup), { token: owner.token });
    expect(get.status).toBe(404);
    expect(get.body.message).toMatch(/no AI budget/i);
    expect((await api.request('DELETE', path(otherGroup), { token: owner.token })).status).toBe(404);
    await api.request('PUT', path(otherGroup), { token: owner.token, body: { spend_limit_micros: 1 } });
    const del = await api.request('DELETE', path(otherGroup), { token: owner.token });
    expect(del.status).toBe(204);
    expect(del.body).toBeNull();
    expect((await api.request('GET', path(otherGroup), { token: owner.token })).status).toBe(404);
    const audit = await api.sql(`SELECT action FROM audit_logs WHERE resource_id = $1 ORDER BY time`, [
      otherGroup,
    ]);
    expect(audit.map((a) => a.action)).toEqual(['create', 'delete']);
  });

  it('zero is accepted; the maximum is accepted; one above, negatives and non-integers are 400', async () => {
    expect(
      (await api.request('PUT', path(group), { token: owner.token, body: { spend_limit_micros: 0 } })).body,
    ).toMatchObject({
      spend_limit_micros: 0,
    });
    expect(
      (await api.request('PUT', path(group), { token: owner.token, body: { spend_limit_micros: MAX } }))
        .status,
    ).toBe(200);
    const before = await api.sql(`SELECT count(*)::int AS n FROM audit_logs`);
    for (const [value, detail] of [
      [MAX + 1, `Must not exceed ${MAX}.`],
      [-1, 'must not be negative'],
      [1.5, 'must be an integer number of micros'],
      ['100', 'must be an integer number of micros'],
      [null, 'must be an integer number of micros'],
      [true, 'must be an integer number of micros'],
      [1e30, `Must not exceed ${MAX}.`],
    ] as const) {
      const res = await api.request('PUT', path(group), {
        token: owner.token,
        body: { spend_limit_micros: value },
      });
      expect(res.status).toBe(400);
      expect(res.body.validations).toEqual([{ field: 'spend_limit_micros', detail }]);
    }
    const after = await api.sql(`SELECT count(*)::int AS n FROM audit_logs`);
    expect(after).toEqual(before); // failed requests write no audit entry
    expect((await api.request('GET', path(group), { token: owner.token })).body).toMatchObject({
      spend_limit_micros: MAX,
    });
  });

  it('1e3 and 100.0 are whole numbers', async () => {
    const res = await api.request('PUT', path(group), {
      token: owner.token,
      rawBody: '{"spend_limit_micros": 1e3}',
    });
    expect(res.body).toMatchObject({ spend_limit_micros: 1000 });
    const res2 = await api.request('PUT', path(group), {
      token: owner.token,
      rawBody: '{"spend_limit_micros": 100.0}',
    });
    expect(res2.body).toMatchObject({ spend_limit_micros: 100 });
  });

  it('unknown group is 404, a bad uuid 400', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await api.request('GET', path(unknown), { token: owner.token })).status).toBe(404);
    expect(
      (await api.request('PUT', path(unknown), { token: owner.token, body: { spend_limit_micros: 1 } }))
        .status,
    ).toBe(404);
    const bad = await api.request('GET', path('nope'), { token: owner.token });
    expect(bad.status).toBe(400);
    expect(bad.body.validations).toEqual([{ field: 'group', detail: 'must be a uuid' }]);
  });

  it('a group member reads but cannot write (403) and the value is unchanged', async () => {
    await api.request('PUT', path(group), { token: owner.token, body: { spend_limit_micros: 777 } });
    expect((await api.request('GET', path(group), { token: member.token })).body).toMatchObject({
      spend_limit_micros: 777,
    });
    const put = await api.request('PUT', path(group), {
      token: member.token,
      body: { spend_limit_micros: 1 },
    });
    expect(put.status).toBe(403);
    expect((await api.request('DELETE', path(group), { token: member.token })).status).toBe(403);
    expect((await api.request('GET', path(group), { token: owner.token })).body).toMatchObject({
      spend_limit_micros: 777,
    });
  });

  it('an organization member outside the group gets 404; the org admin may write', async () => {
    expect((await api.request('GET', path(group), { token: outsider.token })).status).toBe(404);
    expect(
      (await api.request('PUT', path(group), { token: outsider.token, body: { spend_limit_micros: 1 } }))
        .status,
    ).toBe(404);
    const put = await api.request('PUT', path(group), {
      token: orgAdmin.token,
      body: { spend_limit_micros: 5 },
    });
    expect(put.status).toBe(200);
    // every member of the organization reads the Everyone group's budget
    await api.request('PUT', path(org), { token: owner.token, body: { spend_limit_micros: 42 } });
    expect((await api.request('GET', path(org), { token: outsider.token })).body).toMatchObject({
      spend_limit_micros: 42,
    });
  });

  it('401 without a valid token, before anything else', async () => {
    const res = await api.request('PUT', path(group), { body: { spend_limit_micros: -1 } });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ validations: [] });
    expect(typeof res.body.request_id).toBe('string');
    expect(res.headers.get('x-request-id')).toBe(res.body.request_id);
  });
});

describe('AI_BUDGETS_ENABLED=false', () => {
  let api: ApiHarness;
  let owner: Person;

  beforeAll(async () => {
    api = await ApiHarness.start({ AI_BUDGETS_ENABLED: 'false' });
    ({ owner } = await new World(api).bootstrap());
  });

  afterAll(async () => {
    await api.close();
  });

  it('budget routes answer 403 with the exact message (after 401); the price book stays', async () => {
    const [org] = await api.sql<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    const res = await api.request('GET', `/api/v2/groups/${org.id}/ai/budget`, { token: owner.token });
    expect(res.status).toBe(403);
    expect(res.body.message).toBe('AI budgets are disabled on this deployment.');
    expect((await api.request('GET', `/api/v2/groups/${org.id}/ai/budget`)).status).toBe(401);
    expect((await api.request('GET', '/api/v2/users/me', { token: owner.token })).status).toBe(200);
  });

  it('the switch wins over body errors: malformed JSON and a wrong media type are 403 too (401 first)', async () => {
    const [org] = await api.sql<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    const path = `/api/v2/groups/${org.id}/ai/budget`;
    const malformed = await api.request('PUT', path, {
      token: owner.token,
      rawBody: '{"spend_limit_micros": ',
    });
    expect(malformed.status).toBe(403);
    expect(malformed.body.message).toBe('AI budgets are disabled on this deployment.');
    expect(malformed.body.request_id).toBe(malformed.headers.get('x-request-id'));
    const text = await api.request('PUT', path, {
      token: owner.token,
      rawBody: 'x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(403);
    expect((await api.request('PUT', path, { rawBody: '{' })).status).toBe(401);
    const override = await api.request('PUT', '/api/v2/users/me/ai/budget', {
      token: owner.token,
      rawBody: '[',
    });
    expect(override.status).toBe(403);
    // other routes still validate as usual
    expect((await api.request('POST', '/api/v2/users', { token: owner.token, rawBody: '{' })).status).toBe(
      400,
    );
  });
});
