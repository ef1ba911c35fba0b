import { FEATURE_MODULES } from '../apps/budget-api/src/budget-api.module';
import { routeTable } from '../apps/budget-api/src/http/routes';
import { insertOverride } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Every mutating route leaves exactly the documented audit rows, all carrying the request's id
// (cascade rows included), and a failing request leaves none. The table below must name every
// mutating route the controllers declare: a new route without an entry fails the first test.

interface Row {
  action: 'create' | 'write' | 'delete';
  resource_type: string;
  resource_id: string;
  reason?: string | null;
  /**
   * The entry's actor: cascades by the database itself are `system:database`; by default the
   * caller (every success below is sent by the owner), whose username the contract puts there.
   */
  actor?: string;
}

interface Ctx {
  api: ApiHarness;
  world: World;
  owner: Person;
  org: string;
  /** A unique name for this case's fixtures. */
  name: string;
}

interface Outcome {
  res: ApiResponse;
  rows: Row[];
}

interface Case {
  /** `METHOD /path` as the route table spells it. */
  route: string;
  success: (c: Ctx, send: Send) => Promise<Outcome>;
  failure: (c: Ctx, send: Send) => Promise<ApiResponse>;
}

type Send = (method: string, path: string, who: Person | null, body?: unknown) => Promise<ApiResponse>;

/** The actor of the entries the database writes for cascades (contract 1.4, 1.5). */
const DB = 'system:database';

/** The key's entries never hold its secret or the secret's hash (contract 1.5). */
async function expectNoSecret(api: ApiHarness, keyId: string, token: string): Promise<void> {
  const secret = token.slice(token.indexOf('-') + 1);
  expect(secret.length).toBeGreaterThanOrEqual(22);
  const [{ hash }] = await api.sql<{ hash: string }>(
    `SELECT encode(secret_hash, 'hex') AS hash FROM api_keys WHERE id = $1`,
    [keyId],
  );
  const diffs = await api.sql<{ diff: unknown }>(
    `SELECT diff FROM audit_logs WHERE resource_type = 'api_key' AND resource_id = $1`,
    [keyId],
  );
  expect(diffs.length).toBeGreaterThan(0);
  const text = JSON.stringify(diffs).toLowerCase();
  expect(text).not.toContain(secret.toLowerCase());
  expect(text).not.toContain(hash);
  expect(text).not.toContain(Buffer.from(hash, 'hex').toString('base64').toLowerCase());
}

const PRICE = { input_price: 1, output_price: 2, cache_read_price: null, cache_write_price: null };

/** A member of the default organization, in a fresh group, with a key and an override there. */
async function loadedUser(c: Ctx, roles: string[] = []) {
  const u = await c.world.person(c.owner, c.name, { siteRoles: roles, orgs: [{ id: c.org }] });
  const group = await c.world.group(c.org, `${c.name}-g`, [u.id]);
  await insertOverride(c.api.pg, u.id, group, 5);
  const [key] = await c.api.sql<{ id: string }>('SELECT id FROM api_keys WHERE user_id = $1', [u.id]);
  return { u, group, key: key.id };
}

const CASES: Case[] = [
  {
    route: 'POST /api/v2/users',
    success: async (c, send) => {
      const res = await send('POST', '/api/v2/users', c.owner, {
        username: c.name,
        email: `${c.name}@example.com`,
        roles: ['auditor'],
      });
      const id = (res.body as { id: string }).id;
      return {
        res,
        rows: [
          { action: 'create', resource_type: 'user', resource_id: id },
          { action: 'create', resource_type: 'user_roles', resource_id: id },
          { action: 'create', resource_type: 'organization_member', resource_id: `${c.org}/${id}` },
        ],
      };
    },
    failure: (c, send) =>
      send('POST', '/api/v2/users', c.owner, { username: 'owner', email: 'x@example.com' }),
  },
  {
    route: 'DELETE /api/v2/users/:user',
    success: async (c, send) => {
      const { u, group, key } = await loadedUser(c, ['auditor']);
      const res = await send('DELETE', `/api/v2/users/${u.id}`, c.owner);
      return {
        res,
        rows: [
          { action: 'delete', resource_type: 'user', resource_id: u.id },
          {
            action: 'delete',
            resource_type: 'user_roles',
            resource_id: u.id,
            reason: 'user_deleted',
            actor: DB,
          },
          { action: 'delete', resource_type: 'api_key', resource_id: key, reason: 'user_deleted', actor: DB },
          {
            action: 'delete',
            resource_type: 'organization_member',
            resource_id: `${c.org}/${u.id}`,
            reason: 'user_deleted',
            actor: DB,
          },
          {
            action: 'delete',
            resource_type: 'group_member',
            resource_id: `${group}/${u.id}`,
            reason: 'user_deleted',
            actor: DB,
          },
          {
            action: 'delete',
            resource_type: 'user_ai_budget_override',
            resource_id: u.id,
            reason: 'user_deleted',
            actor: DB,
          },
        ],
      };
    },
    failure: async (c, send) => {
      const { u } = await loadedUser(c);
      return send('DELETE', `/api/v2/users/${u.id}`, u);
    },
  },
  {
    route: 'PUT /api/v2/users/:user/roles',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      const res = await send('PUT', `/api/v2/users/${u.id}/roles`, c.owner, { roles: ['auditor'] });
      return { res, rows: [{ action: 'write', resource_type: 'user_roles', resource_id: u.id }] };
    },
    failure: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      return send('PUT', `/api/v2/users/${u.id}/roles`, u, { roles: ['owner'] });
    },
  },
  {
    route: 'PUT /api/v2/users/:user/status',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      const res = await send('PUT', `/api/v2/users/${u.id}/status`, c.owner, { status: 'suspended' });
      return { res, rows: [{ action: 'write', resource_type: 'user', resource_id: u.id }] };
    },
    failure: async (c, send) =>
      send('PUT', `/api/v2/users/${c.owner.id}/status`, c.owner, { status: 'suspended' }),
  },
  {
    route: 'POST /api/v2/users/:user/keys',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      const res = await send('POST', `/api/v2/users/${u.id}/keys`, c.owner, { name: 'k' });
      const { id, key: token } = res.body as { id: string; key: string };
      await expectNoSecret(c.api, id, token);
      return { res, rows: [{ action: 'create', resource_type: 'api_key', resource_id: id }] };
    },
    failure: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      return send('POST', `/api/v2/users/${c.owner.id}/keys`, u, { name: 'k' });
    },
  },
  {
    route: 'DELETE /api/v2/users/:user/keys/:id',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      const [key] = await c.api.sql<{ id: string }>('SELECT id FROM api_keys WHERE user_id = $1', [u.id]);
      const res = await send('DELETE', `/api/v2/users/${u.id}/keys/${key.id}`, c.owner);
      return { res, rows: [{ action: 'delete', resource_type: 'api_key', resource_id: key.id }] };
    },
    failure: async (c, send) => send('DELETE', `/api/v2/users/${c.owner.id}/keys/abcdefghij`, c.owner),
  },
  {
    route: 'POST /api/v2/organizations',
    success: async (c, send) => {
      const res = await send('POST', '/api/v2/organizations', c.owner, { name: c.name });
      const id = (res.body as { id: string }).id;
      return { res, rows: [{ action: 'create', resource_type: 'organization', resource_id: id }] };
    },
    failure: (c, send) => send('POST', '/api/v2/organizations', c.owner, { name: 'default' }),
  },
  {
    route: 'PUT /api/v2/organizations/:organization/members/:user',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      const res = await send('PUT', `/api/v2/organizations/${c.org}/members/${u.id}`, c.owner, {
        roles: ['organization-auditor'],
      });
      return {
        res,
        rows: [{ action: 'create', resource_type: 'organization_member', resource_id: `${c.org}/${u.id}` }],
      };
    },
    failure: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      return send('PUT', `/api/v2/organizations/${c.org}/members/${u.id}`, u, {});
    },
  },
  {
    route: 'DELETE /api/v2/organizations/:organization/members/:user',
    success: async (c, send) => {
      const { u, group } = await loadedUser(c);
      const res = await send('DELETE', `/api/v2/organizations/${c.org}/members/${u.id}`, c.owner);
      return {
        res,
        rows: [
          { action: 'delete', resource_type: 'organization_member', resource_id: `${c.org}/${u.id}` },
          {
            action: 'delete',
            resource_type: 'group_member',
            resource_id: `${group}/${u.id}`,
            reason: 'membership_removed',
            actor: DB,
          },
          {
            action: 'delete',
            resource_type: 'user_ai_budget_override',
            resource_id: u.id,
            reason: 'membership_removed',
            actor: DB,
          },
        ],
      };
    },
    failure: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      return send('DELETE', `/api/v2/organizations/${c.org}/members/${u.id}`, c.owner);
    },
  },
  {
    route: 'POST /api/v2/organizations/:organization/groups',
    success: async (c, send) => {
      const res = await send('POST', `/api/v2/organizations/${c.org}/groups`, c.owner, { name: c.name });
      const id = (res.body as { id: string }).id;
      return { res, rows: [{ action: 'create', resource_type: 'group', resource_id: id }] };
    },
    failure: (c, send) =>
      send('POST', `/api/v2/organizations/${c.org}/groups`, c.owner, { name: 'everyone' }),
  },
  {
    route: 'PATCH /api/v2/groups/:group',
    success: async (c, send) => {
      const { u, group } = await loadedUser(c);
      const other = await c.world.person(c.owner, `${c.name}-o`, { orgs: [{ id: c.org }] });
      const res = await send('PATCH', `/api/v2/groups/${group}`, c.owner, {
        name: `${c.name}-renamed`,
        add_users: [other.id],
        remove_users: [u.id],
      });
      // The rename is an entry of its own (the changed fields), like an identity system's rename.
      expect((res.body as { name?: string }).name).toBe(`${c.name}-renamed`);
      return {
        res,
        rows: [
          { action: 'write', resource_type: 'group', resource_id: group },
          { action: 'create', resource_type: 'group_member', resource_id: `${group}/${other.id}` },
          { action: 'delete', resource_type: 'group_member', resource_id: `${group}/${u.id}` },
          {
            action: 'delete',
            resource_type: 'user_ai_budget_override',
            resource_id: u.id,
            reason: 'membership_removed',
            actor: DB,
          },
        ],
      };
    },
    failure: async (c, send) => {
      const { group } = await loadedUser(c);
      const outsider = await c.world.person(c.owner, `${c.name}-x`);
      return send('PATCH', `/api/v2/groups/${group}`, c.owner, { add_users: [outsider.id] });
    },
  },
  {
    route: 'DELETE /api/v2/groups/:group',
    success: async (c, send) => {
      const { u, group } = await loadedUser(c);
      await c.api.sql('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 7)', [group]);
      const res = await send('DELETE', `/api/v2/groups/${group}`, c.owner);
      return {
        res,
        rows: [
          { action: 'delete', resource_type: 'group', resource_id: group },
          {
            action: 'delete',
            resource_type: 'group_ai_budget',
            resource_id: group,
            reason: 'group_deleted',
            actor: DB,
          },
          {
            action: 'delete',
            resource_type: 'group_member',
            resource_id: `${group}/${u.id}`,
            reason: 'group_deleted',
            actor: DB,
          },
          {
            action: 'delete',
            resource_type: 'user_ai_budget_override',
            resource_id: u.id,
            reason: 'group_deleted',
            actor: DB,
          },
        ],
      };
    },
    failure: (c, send) => send('DELETE', `/api/v2/groups/${c.org}`, c.owner),
  },
  {
    route: 'PUT /api/v2/groups/:group/ai/budget',
    success: async (c, send) => {
      const group = await c.world.group(c.org, c.name);
      const res = await send('PUT', `/api/v2/groups/${group}/ai/budget`, c.owner, { spend_limit_micros: 9 });
      return { res, rows: [{ action: 'create', resource_type: 'group_ai_budget', resource_id: group }] };
    },
    failure: async (c, send) => {
      const group = await c.world.group(c.org, c.name);
      return send('PUT', `/api/v2/groups/${group}/ai/budget`, c.owner, { spend_limit_micros: -1 });
    },
  },
  {
    route: 'DELETE /api/v2/groups/:group/ai/budget',
    success: async (c, send) => {
      const group = await c.world.group(c.org, c.name);
      await c.api.sql('INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 7)', [group]);
      const res = await send('DELETE', `/api/v2/groups/${group}/ai/budget`, c.owner);
      return { res, rows: [{ action: 'delete', resource_type: 'group_ai_budget', resource_id: group }] };
    },
    failure: async (c, send) =>
      send('DELETE', `/api/v2/groups/${await c.world.group(c.org, c.name)}/ai/budget`, c.owner),
  },
  {
    route: 'PUT /api/v2/users/:user/ai/budget',
    success: async (c, send) => {
      const u = await c.world.person(c.owner, c.name, { orgs: [{ id: c.org }] });
      const res = await send('PUT', `/api/v2/users/${u.id}/ai/budget`, c.owner, {
        group_id: c.org,
        spend_limit_micros: 3,
      });
      return {
        res,
        rows: [{ action: 'create', resource_type: 'user_ai_budget_override', resource_id: u.id }],
      };
    },
    failure: async (c, send) => {
      const u = await c.world.person(c.owner, c.name);
      return send('PUT', `/api/v2/users/${u.id}/ai/budget`, c.owner, {
        group_id: c.org,
        spend_limit_micros: 3,
      });
    },
  },
  {
    route: 'DELETE /api/v2/users/:user/ai/budget',
    success: async (c, send) => {
      const { u } = await loadedUser(c);
      const res = await send('DELETE', `/api/v2/users/${u.id}/ai/budget`, c.owner);
      return {
        res,
        rows: [{ action: 'delete', resource_type: 'user_ai_budget_override', resource_id: u.id }],
      };
    },
    failure: async (c, send) => send('DELETE', `/api/v2/users/${c.owner.id}/ai/budget`, c.owner),
  },
  {
    route: 'PUT /api/v2/ai/model-prices/:provider/*',
    success: async (c, send) => {
      const res = await send('PUT', `/api/v2/ai/model-prices/acme/${c.name}`, c.owner, PRICE);
      return {
        res,
        rows: [{ action: 'create', resource_type: 'ai_model_price', resource_id: `acme/${c.name}` }],
      };
    },
    failure: (c, send) =>
      send('PUT', `/api/v2/ai/model-prices/acme/${c.name}`, c.owner, { ...PRICE, input_price: -1 }),
  },
  {
    route: 'DELETE /api/v2/ai/model-prices/:provider/*',
    success: async (c, send) => {
      await c.api.call('PUT', `/api/v2/ai/model-prices/acme/${c.name}`, c.owner, PRICE);
      const res = await send('DELETE', `/api/v2/ai/model-prices/acme/${c.name}`, c.owner);
      return {
        res,
        rows: [{ action: 'delete', resource_type: 'ai_model_price', resource_id: `acme/${c.name}` }],
      };
    },
    failure: (c, send) => send('DELETE', `/api/v2/ai/model-prices/acme/${c.name}-none`, c.owner),
  },
  // Enforcement writes the spend ledger, which is its own record: no audit entries (docs/permissions.md).
  {
    route: 'POST /api/v2/ai/budget/check',
    success: async (c, send) => ({
      res: await send('POST', '/api/v2/ai/budget/check', c.owner, { user_id: c.owner.id }),
      rows: [],
    }),
    failure: (c, send) => send('POST', '/api/v2/ai/budget/check', c.owner, { user_id: 'x' }),
  },
  {
    route: 'POST /api/v2/ai/budget/reserve',
    success: async (c, send) => ({
      res: await send('POST', '/api/v2/ai/budget/reserve', c.owner, {
        request_id: c.name,
        user_id: c.owner.id,
        amount_micros: 1,
      }),
      rows: [],
    }),
    failure: (c, send) =>
      send('POST', '/api/v2/ai/budget/reserve', c.owner, { request_id: c.name, user_id: c.owner.id }),
  },
  {
    route: 'POST /api/v2/ai/budget/release',
    success: async (c, send) => {
      const held = await c.api.call<{ reservation_id: string }>(
        'POST',
        '/api/v2/ai/budget/reserve',
        c.owner,
        {
          request_id: c.name,
          user_id: c.owner.id,
          amount_micros: 1,
        },
      );
      const res = await send('POST', '/api/v2/ai/budget/release', c.owner, {
        reservation_id: held.body.reservation_id,
      });
      return { res, rows: [] };
    },
    failure: (c, send) =>
      send('POST', '/api/v2/ai/budget/release', c.owner, {
        reservation_id: '00000000-0000-4000-8000-000000000000',
      }),
  },
  {
    route: 'POST /api/v2/ai/usage',
    success: async (c, send) => ({
      res: await send('POST', '/api/v2/ai/usage', c.owner, {
        request_id: c.name,
        user_id: c.owner.id,
        provider: 'acme',
        model: c.name,
        input_tokens: 1,
        output_tokens: 1,
      }),
      rows: [],
    }),
    failure: (c, send) =>
      send('POST', '/api/v2/ai/usage', c.owner, {
        request_id: c.name,
        user_id: c.owner.id,
        provider: 'acme',
        model: c.name,
        input_tokens: -1,
        output_tokens: 1,
      }),
  },
];

/**
 * Routes not in CASES: the bootstrap runs once per database, so it has a harness of its own
 * (the last describe block below); a price sync is recorded by the pricing worker, not by this
 * API, and its summary entry (request id included) is checked with the worker in
 * apps/pricing-worker/src/pricing/price-seed.int-spec.ts ("writes one summary audit entry ...").
 */
const ELSEWHERE = new Set(['POST /api/v2/users/first', 'POST /api/v2/ai/model-prices/sync']);

const key = (r: Row) => `${r.action} ${r.resource_type} ${r.resource_id}`;

describe('audit rows of every mutating route', () => {
  let api: ApiHarness;
  let world: World;
  let owner: Person;
  let org: string;
  let n = 0;

  beforeAll(async () => {
    api = await ApiHarness.start();
    world = new World(api);
    ({ owner, defaultOrg: org } = await world.bootstrap());
  });

  afterAll(async () => {
    await api.close();
  });

  const ctx = (): Ctx => ({ api, world, owner, org, name: `case${++n}` });

  /** Sends with a request id of its own and answers the audit rows carrying it. */
  function recorder() {
    const requestId = `audit-completeness-${++n}`;
    const send: Send = (method, path, who, body) => api.call(method, path, who, body, requestId);
    const rows = () =>
      api.sql<Row & { actor: string; reason: string | null }>(
        'SELECT action, resource_type, resource_id, reason, actor FROM audit_logs WHERE request_id = $1',
        [requestId],
      );
    return { send, rows };
  }

  it('has a case for every mutating route', () => {
    const mutating = routeTable(FEATURE_MODULES)
      .filter((r) => r.method !== 'GET' && r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.path}`)
      .filter((r) => !ELSEWHERE.has(r));
    expect(CASES.map((c) => c.route).sort()).toEqual([...new Set(mutating)].sort());
  });

  it.each(CASES.map((c) => [c.route, c] as const))('%s leaves exactly its rows', async (_route, c) => {
    const { send, rows } = recorder();
    const outcome = await c.success(ctx(), send);
    expect(outcome.res.status).toBeLessThan(300);
    const got = await rows();
    expect(got.map(key).sort()).toEqual(outcome.rows.map(key).sort());
    for (const want of outcome.rows) {
      const row = got.find((g) => key(g) === key(want))!;
      if (want.reason !== undefined)
        expect({ [key(want)]: row.reason }).toEqual({ [key(want)]: want.reason });
      expect({ [key(want)]: row.actor }).toEqual({ [key(want)]: want.actor ?? owner.username });
    }
  });

  it.each(CASES.map((c) => [c.route, c] as const))('%s leaves none when it fails', async (_route, c) => {
    const { send, rows } = recorder();
    const res = await c.failure(ctx(), send);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(await rows()).toEqual([]);
  });
});

describe('audit rows of the bootstrap (POST /api/v2/users/first, a database of its own)', () => {
  let api: ApiHarness;

  beforeAll(async () => {
    api = await ApiHarness.start();
  });

  afterAll(async () => {
    await api.close();
  });

  const rowsOf = (requestId: string) =>
    api.sql<Row & { actor: string; reason: string | null }>(
      'SELECT action, resource_type, resource_id, reason, actor FROM audit_logs WHERE request_id = $1',
      [requestId],
    );

  it('records the user, its roles, organization default, its membership and its key; a second call none', async () => {
    const res = await api.call<{ user: { id: string }; token: string }>(
      'POST',
      '/api/v2/users/first',
      null,
      { username: 'owner', email: 'owner@example.com' },
      'audit-completeness-first',
    );
    expect(res.status).toBe(201);
    const user = res.body.user.id;
    const [org] = await api.sql<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    const keyId = res.body.token.split('-')[0];
    await expectNoSecret(api, keyId, res.body.token);
    const got = await rowsOf('audit-completeness-first');
    expect(got.map(key).sort()).toEqual(
      [
        `create user ${user}`,
        `create user_roles ${user}`,
        `create organization ${org.id}`,
        `create organization_member ${org.id}/${user}`,
        `create api_key ${keyId}`,
      ].sort(),
    );
    // Nobody is signed in yet: the new owner makes the change, and the entries name them.
    expect([...new Set(got.map((r) => r.actor))]).toEqual(['owner']);

    const again = await api.call(
      'POST',
      '/api/v2/users/first',
      null,
      { username: 'second', email: 'second@example.com' },
      'audit-completeness-first-again',
    );
    expect(again.status).toBe(409);
    expect(await rowsOf('audit-completeness-first-again')).toEqual([]);
  });
});
