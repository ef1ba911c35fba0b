import { ApiHarness, World, type Person } from './helpers/api';

interface AuditLog {
  id: string;
  time: string;
  actor_id: string | null;
  actor: string;
  action: 'create' | 'write' | 'delete';
  resource_type: string;
  resource_id: string;
  organization_id: string | null;
  diff: Record<string, unknown>;
  request_id: string | null;
  reason: string | null;
}

interface AuditList {
  audit_logs: AuditLog[];
  count: number;
}

interface ErrorBody {
  message: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

const AUDIT = '/api/v2/audit-logs';
const PRICE_BODY = {
  input_price: 3_000_000,
  output_price: 15_000_000,
  cache_read_price: null,
  cache_write_price: null,
};
const MODEL = 'accounts/acme/models/m@1';

/** Cascade-style entries at fixed instants, one a day, for the time-range tests. */
const FIXTURE_TIMES = [
  '2020-01-01T00:00:00.000Z',
  '2020-01-02T00:00:00.000Z',
  '2020-01-03T00:00:00.000Z',
  '2020-01-04T00:00:00.000Z',
];

describe('audit log API (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let auditor: Person;
  let plain: Person;
  let orgAdmin: Person;
  let orgAuditor: Person;
  let userAdmin: Person;
  let gateway: Person;
  let groupId: string;

  const list = (query: string, who: Person = auditor) =>
    api.request<AuditList>('GET', `${AUDIT}${query ? `?${query}` : ''}`, { token: who.token });

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
    const org = [{ id: boot.defaultOrg }];
    auditor = await world.person(owner, 'auditor', { siteRoles: ['auditor'] });
    plain = await world.person(owner, 'plain', { orgs: org });
    orgAdmin = await world.person(owner, 'orgadmin', {
      orgs: [{ id: boot.defaultOrg, roles: ['organization-admin'] }],
    });
    orgAuditor = await world.person(owner, 'orgauditor', {
      orgs: [{ id: boot.defaultOrg, roles: ['organization-auditor'] }],
    });
    userAdmin = await world.person(owner, 'useradmin', { siteRoles: ['user-admin'] });
    gateway = await world.person(owner, 'gateway', { siteRoles: ['ai-gateway'] });
    groupId = await world.group(boot.defaultOrg, 'eng', [plain.id]);

    // Changes through the API, in this order: each writes one entry.
    const changes: [string, string, unknown, string][] = [
      ['PUT', `/api/v2/ai/model-prices/acme/${encodeURIComponent(MODEL)}`, PRICE_BODY, 'audit-t-1'],
      ['PUT', `/api/v2/groups/${groupId}/ai/budget`, { spend_limit_micros: 500_000_000 }, 'audit-t-2'],
      [
        'PUT',
        `/api/v2/ai/model-prices/acme/${encodeURIComponent(MODEL)}`,
        { ...PRICE_BODY, input_price: 9 },
        'audit-t-3',
      ],
      ['PUT', '/api/v2/ai/model-prices/acme/other', PRICE_BODY, 'audit-t-4'],
      ['DELETE', `/api/v2/ai/model-prices/acme/${encodeURIComponent(MODEL)}`, undefined, 'audit-t-5'],
    ];
    for (const [method, path, body, requestId] of changes) {
      const res = await api.request(method, path, {
        token: owner.token,
        body,
        headers: { 'x-request-id': requestId },
      });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    for (const [i, time] of FIXTURE_TIMES.entries()) {
      await api.sql(
        `INSERT INTO audit_logs (time, actor, action, resource_type, resource_id, diff, reason)
         VALUES ($1, 'system:database', 'delete', 'user_ai_budget_override', $2, '{}', 'membership_removed')`,
        [time, `fixture-${i + 1}`],
      );
    }
  });

  afterAll(async () => {
    await api.close();
  });

  it('answers 401 without a token', async () => {
    expect((await api.request('GET', AUDIT)).status).toBe(401);
  });

  it('is readable by owners and auditors only: 403 for everyone else, organization admins included', async () => {
    expect((await list('', owner)).status).toBe(200);
    expect((await list('', auditor)).status).toBe(200);
    for (const who of [plain, orgAdmin, orgAuditor, userAdmin, gateway]) {
      const res = await api.request<ErrorBody>('GET', AUDIT, { token: who.token });
      expect(res.status).toBe(403);
      expect(res.body.message).toMatch(/audit log/);
    }
  });

  it('answers every entry newest first with the documented shape', async () => {
    const res = await list('limit=1000');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['audit_logs', 'count']);
    const [total] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    expect(res.body.count).toBe(total.n);
    expect(res.body.audit_logs).toHaveLength(total.n);
    const times = res.body.audit_logs.map((e) => Date.parse(e.time));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // The newest API change comes first, the oldest fixture last.
    expect(res.body.audit_logs[0].request_id).toBe('audit-t-5');
    expect(res.body.audit_logs[res.body.audit_logs.length - 1].resource_id).toBe('fixture-1');

    const entry = res.body.audit_logs[0];
    expect(Object.keys(entry).sort()).toEqual(
      [
        'action',
        'actor',
        'actor_id',
        'diff',
        'id',
        'organization_id',
        'reason',
        'request_id',
        'resource_id',
        'resource_type',
        'time',
      ].sort(),
    );
    expect(entry).toMatchObject({
      actor_id: owner.id,
      actor: 'owner',
      action: 'delete',
      resource_type: 'ai_model_price',
      resource_id: `acme/${MODEL}`,
      organization_id: null,
      request_id: 'audit-t-5',
      reason: null,
    });
    expect(entry.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(entry.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(entry.diff).toMatchObject({
      input_price: { before: { usd: '$0.000009', micros: 9 }, after: null },
    });
  });

  it('filters by resource type and resource id (with a slash in it)', async () => {
    const prices = await list('resource_type=ai_model_price');
    expect(prices.body.count).toBe(4);
    expect(prices.body.audit_logs.map((e) => e.request_id)).toEqual([
      'audit-t-5',
      'audit-t-4',
      'audit-t-3',
      'audit-t-1',
    ]);

    const one = await list(`resource_type=ai_model_price&resource_id=${encodeURIComponent(`acme/${MODEL}`)}`);
    expect(one.body.audit_logs.map((e) => e.action)).toEqual(['delete', 'write', 'create']);
    expect(one.body.audit_logs[1].diff).toMatchObject({
      input_price: { before: { usd: '$3.00', micros: 3_000_000 }, after: { usd: '$0.000009', micros: 9 } },
    });

    const budget = await list(`resource_id=${groupId}`);
    expect(budget.body.count).toBe(1);
    expect(budget.body.audit_logs[0]).toMatchObject({
      resource_type: 'group_ai_budget',
      action: 'create',
      request_id: 'audit-t-2',
      diff: { spend_limit: { before: null, after: { usd: '$500.00', micros: 500_000_000 } } },
    });

    // A type no entry can have is a mistake, not an empty result.
    expect((await list('resource_type=nothing_like_this')).status).toBe(400);
  });

  it('filters by actor and by action', async () => {
    const system = await list('actor=system:database');
    expect(system.body.count).toBe(4);
    expect(system.body.audit_logs.every((e) => e.actor === 'system:database' && e.actor_id === null)).toBe(
      true,
    );
    expect(system.body.audit_logs[0].reason).toBe('membership_removed');

    const byOwner = await list('actor=owner&limit=1000');
    expect(byOwner.body.count).toBeGreaterThanOrEqual(5);
    expect(byOwner.body.audit_logs.every((e) => e.actor === 'owner')).toBe(true);
    expect((await list('actor=auditor')).body.count).toBe(0);

    for (const action of ['create', 'write', 'delete'] as const) {
      const res = await list(`action=${action}&limit=1000`);
      const [expected] = await api.sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM audit_logs WHERE action = $1',
        [action],
      );
      expect(res.body.count).toBe(expected.n);
      expect(res.body.audit_logs.every((e) => e.action === action)).toBe(true);
    }
    const combined = await list('resource_type=ai_model_price&action=create&actor=owner');
    expect(combined.body.audit_logs.map((e) => e.request_id)).toEqual(['audit-t-4', 'audit-t-1']);
  });

  it('filters by time: since inclusive, until exclusive, any RFC 3339 offset', async () => {
    const ids = async (query: string) => {
      const res = await list(`actor=system:database&${query}`);
      expect(res.status).toBe(200);
      return res.body.audit_logs.map((e) => e.resource_id);
    };
    expect(await ids('since=2020-01-02T00:00:00Z')).toEqual(['fixture-4', 'fixture-3', 'fixture-2']);
    expect(await ids('until=2020-01-03T00:00:00Z')).toEqual(['fixture-2', 'fixture-1']);
    expect(await ids('since=2020-01-02T00:00:00Z&until=2020-01-04T00:00:00Z')).toEqual([
      'fixture-3',
      'fixture-2',
    ]);
    expect(await ids('since=2020-01-02T00:00:00.001Z')).toEqual(['fixture-4', 'fixture-3']);
    // 2020-01-02T01:00:00+01:00 is 2020-01-02T00:00:00Z; encoded and unencoded "+" read alike.
    expect(await ids(`since=${encodeURIComponent('2020-01-02T01:00:00+01:00')}`)).toEqual([
      'fixture-4',
      'fixture-3',
      'fixture-2',
    ]);
    expect(await ids('since=2020-01-02T01:00:00+01:00')).toEqual(['fixture-4', 'fixture-3', 'fixture-2']);
    expect(await ids('until=2020-01-01T19:00:00-05:00')).toEqual(['fixture-1']);
    expect(await ids('since=2020-01-03t00:00:00z&until=2020-01-03T00:00:00Z')).toEqual([]);
    // The entries written through the API are recent.
    const recent = await list(
      `since=${new Date(Date.now() - 3_600_000).toISOString()}&resource_type=ai_model_price`,
    );
    expect(recent.body.count).toBe(4);
  });

  it('pages with limit and offset, keeping the total count and the order', async () => {
    const all = await list('limit=1000');
    const pages: AuditLog[] = [];
    for (let offset = 0; offset < all.body.count; offset += 3) {
      const page = await list(`limit=3&offset=${offset}`);
      expect(page.body.count).toBe(all.body.count);
      expect(page.body.audit_logs.length).toBeLessThanOrEqual(3);
      pages.push(...page.body.audit_logs);
    }
    expect(pages.map((e) => e.id)).toEqual(all.body.audit_logs.map((e) => e.id));
    const beyond = await list(`offset=${all.body.count}`);
    expect(beyond.body).toEqual({ audit_logs: [], count: all.body.count });
    const defaults = await list('');
    expect(defaults.body.audit_logs).toHaveLength(Math.min(100, all.body.count));
  });

  it.each([
    ['since=yesterday', 'since'],
    ['since=2024-02-30T00:00:00Z', 'since'],
    ['since=2024-01-01', 'since'],
    ['since=2024-01-01T00:00:00', 'since'],
    ['since=2024-01-01T24:00:00Z', 'since'],
    ['since=1704067200', 'since'],
    ['until=2024-13-01T00:00:00Z', 'until'],
    ['until=2024-01-01T00:00:00Z&until=2024-01-02T00:00:00Z', 'until'],
    ['since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z', 'until'],
    ['action=update', 'action'],
    ['action=', 'action'],
    ['resource_type=', 'resource_type'],
    ['actor=a&actor=b', 'actor'],
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['offset=-1', 'offset'],
    ['offset=1e3', 'offset'],
    ['user=owner', 'user'],
  ])('answers 400 for ?%s naming %s', async (query, field) => {
    const res = await api.request<ErrorBody>('GET', `${AUDIT}?${query}`, { token: auditor.token });
    expect(res.status).toBe(400);
    expect(res.body.validations.map((v) => v.field)).toEqual([field]);
    expect(res.body.message).toContain(field);
    expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
  });

  it('records nothing for requests that fail', async () => {
    const [before] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    const path = `/api/v2/ai/model-prices/acme/${encodeURIComponent(MODEL)}`;
    const failures: [Person, string, unknown, number][] = [
      [plain, 'PUT', PRICE_BODY, 403],
      [owner, 'PUT', { ...PRICE_BODY, input_price: -5 }, 400],
      [owner, 'PUT', { ...PRICE_BODY, tiers: [{ min_context_tokens: 1 }] }, 400],
      [owner, 'DELETE', undefined, 404],
      [orgAdmin, 'DELETE', undefined, 403],
    ];
    for (const [who, method, body, status] of failures) {
      expect((await api.request(method, path, { token: who.token, body })).status).toBe(status);
    }
    const budget = await api.request('PUT', `/api/v2/groups/${groupId}/ai/budget`, {
      token: plain.token,
      body: { spend_limit_micros: 1 },
    });
    expect(budget.status).toBe(403);
    const [after] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    expect(after.n).toBe(before.n);
  });
});
