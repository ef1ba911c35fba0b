import type { OrgRole } from '@aigov/db';
import { addOrganizationMember } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// docs/permissions.md as a table: every actor against every operation on group G of organization
// A, with the expected status of each cell written out. 404 when the actor cannot see the
// resource, 403 when it can see it but may not do this to it, 401 without a token.

const ACTORS = [
  'owner',
  'user-admin',
  'auditor',
  'organization-admin',
  'organization-user-admin',
  'organization-auditor',
  'group-member',
  'org-member-outside-group',
  'other-org-member',
  'no-token',
] as const;
type Actor = (typeof ACTORS)[number];

const OPS = [
  'budget GET',
  'budget PUT',
  'budget DELETE',
  'group PATCH',
  'group GET',
  'members GET',
  'member PUT',
  'prices GET',
  'custom price PUT',
  'audit log GET',
  'Everyone budget GET',
  'grant org-admin PUT',
  'grant org-auditor PUT',
  'demote org-admin PUT',
  'remove org-admin DELETE',
  'site roles PUT',
] as const;
type Op = (typeof OPS)[number];

// prettier-ignore
const MATRIX: Record<Actor, Record<Op, number>> = {
  // Role grants (CONTRACT 3): nobody grants a role more powerful than the ones they hold; an
  // organization-user-admin grants only organization-user-admin and organization-auditor and can
  // neither demote nor remove an organization-admin. Site roles: owners only.
  'owner':                    { 'budget GET': 200, 'budget PUT': 200, 'budget DELETE': 204, 'group PATCH': 200, 'group GET': 200, 'members GET': 200, 'member PUT': 200, 'prices GET': 200, 'custom price PUT': 200, 'audit log GET': 200, 'Everyone budget GET': 200, 'grant org-admin PUT': 200, 'grant org-auditor PUT': 200, 'demote org-admin PUT': 200, 'remove org-admin DELETE': 204, 'site roles PUT': 200 },
  'user-admin':               { 'budget GET': 200, 'budget PUT': 200, 'budget DELETE': 204, 'group PATCH': 200, 'group GET': 200, 'members GET': 200, 'member PUT': 200, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 200, 'grant org-auditor PUT': 200, 'demote org-admin PUT': 200, 'remove org-admin DELETE': 204, 'site roles PUT': 403 },
  'auditor':                  { 'budget GET': 200, 'budget PUT': 403, 'budget DELETE': 403, 'group PATCH': 403, 'group GET': 200, 'members GET': 200, 'member PUT': 403, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 200, 'Everyone budget GET': 200, 'grant org-admin PUT': 403, 'grant org-auditor PUT': 403, 'demote org-admin PUT': 403, 'remove org-admin DELETE': 403, 'site roles PUT': 403 },
  'organization-admin':       { 'budget GET': 200, 'budget PUT': 200, 'budget DELETE': 204, 'group PATCH': 200, 'group GET': 200, 'members GET': 200, 'member PUT': 200, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 200, 'grant org-auditor PUT': 200, 'demote org-admin PUT': 200, 'remove org-admin DELETE': 204, 'site roles PUT': 403 },
  'organization-user-admin':  { 'budget GET': 200, 'budget PUT': 200, 'budget DELETE': 204, 'group PATCH': 200, 'group GET': 200, 'members GET': 200, 'member PUT': 200, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 403, 'grant org-auditor PUT': 200, 'demote org-admin PUT': 403, 'remove org-admin DELETE': 403, 'site roles PUT': 403 },
  'organization-auditor':     { 'budget GET': 200, 'budget PUT': 403, 'budget DELETE': 403, 'group PATCH': 403, 'group GET': 200, 'members GET': 200, 'member PUT': 403, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 403, 'grant org-auditor PUT': 403, 'demote org-admin PUT': 403, 'remove org-admin DELETE': 403, 'site roles PUT': 403 },
  'group-member':             { 'budget GET': 200, 'budget PUT': 403, 'budget DELETE': 403, 'group PATCH': 403, 'group GET': 200, 'members GET': 200, 'member PUT': 403, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 403, 'grant org-auditor PUT': 403, 'demote org-admin PUT': 403, 'remove org-admin DELETE': 403, 'site roles PUT': 404 },
  'org-member-outside-group': { 'budget GET': 404, 'budget PUT': 404, 'budget DELETE': 404, 'group PATCH': 404, 'group GET': 404, 'members GET': 200, 'member PUT': 403, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 200, 'grant org-admin PUT': 403, 'grant org-auditor PUT': 403, 'demote org-admin PUT': 403, 'remove org-admin DELETE': 403, 'site roles PUT': 404 },
  'other-org-member':         { 'budget GET': 404, 'budget PUT': 404, 'budget DELETE': 404, 'group PATCH': 404, 'group GET': 404, 'members GET': 404, 'member PUT': 404, 'prices GET': 200, 'custom price PUT': 403, 'audit log GET': 403, 'Everyone budget GET': 404, 'grant org-admin PUT': 404, 'grant org-auditor PUT': 404, 'demote org-admin PUT': 404, 'remove org-admin DELETE': 404, 'site roles PUT': 404 },
  'no-token':                 { 'budget GET': 401, 'budget PUT': 401, 'budget DELETE': 401, 'group PATCH': 401, 'group GET': 401, 'members GET': 401, 'member PUT': 401, 'prices GET': 401, 'custom price PUT': 401, 'audit log GET': 401, 'Everyone budget GET': 401, 'grant org-admin PUT': 401, 'grant org-auditor PUT': 401, 'demote org-admin PUT': 401, 'remove org-admin DELETE': 401, 'site roles PUT': 401 },
};

const CELLS: [Actor, Op, number][] = ACTORS.flatMap((actor) =>
  OPS.map((op): [Actor, Op, number] => [actor, op, MATRIX[actor][op]]),
);

interface ErrorBody {
  message: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

const ORIGINAL_LIMIT = 1_000;
const EVERYONE_LIMIT = 5_000;
const ORIGINAL_DISPLAY_NAME = 'Group G';
const PRICE_PROVIDER = 'openai';
const PRICE_MODEL = 'role-matrix-model';
const PRICE_BODY = {
  input_price: 1_000_000,
  output_price: 2_000_000,
  cache_read_price: null,
  cache_write_price: 0,
};

describe('role matrix (docs/permissions.md) over HTTP (real PostgreSQL)', () => {
  let api: ApiHarness;
  let orgA: string;
  let groupG: string;
  /** Added to organization A by the member PUT cells; a member of nothing otherwise. */
  let target: Person;
  /** A plain member of A whose roles the grant cells set (reset before each). */
  let grantee: Person;
  /** An organization-admin of A whom the demote and remove cells act on (restored before each). */
  let adminTarget: Person;
  const people = new Map<Actor, Person | null>();
  let seq = 0;

  const budgetPath = (g: string) => `/api/v2/groups/${g}/ai/budget`;
  const pricePath = `/api/v2/ai/model-prices/${PRICE_PROVIDER}/${PRICE_MODEL}`;

  async function setBudget(group: string, micros: number): Promise<void> {
    await api.sql(
      `INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)
       ON CONFLICT (group_id) DO UPDATE SET spend_limit_micros = EXCLUDED.spend_limit_micros`,
      [group, micros],
    );
  }

  async function budgetOf(group: string): Promise<number | null> {
    const rows = await api.sql<{ micros: string }>(
      `SELECT spend_limit_micros::text AS micros FROM group_ai_budgets WHERE group_id = $1`,
      [group],
    );
    return rows.length === 0 ? null : Number(rows[0].micros);
  }

  async function displayNameOfG(): Promise<string | null> {
    const [row] = await api.sql<{ display_name: string | null }>(
      `SELECT display_name FROM groups WHERE id = $1`,
      [groupG],
    );
    return row.display_name;
  }

  async function targetIsMemberOfA(): Promise<boolean> {
    const rows = await api.sql(
      `SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2`,
      [orgA, target.id],
    );
    return rows.length > 0;
  }

  async function rolesInA(userId: string): Promise<string[] | null> {
    const rows = await api.sql<{ roles: string[] }>(
      `SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2`,
      [orgA, userId],
    );
    return rows[0]?.roles ?? null;
  }

  async function setRolesInA(userId: string, roles: OrgRole[]): Promise<void> {
    await addOrganizationMember(api.pg, orgA, userId, roles);
  }

  /** A grant cell: PUT the member's roles in A; on success they are `roles`, else unchanged. */
  function grant(who: () => Person, from: OrgRole[], roles: OrgRole[]): Operation {
    return {
      before: () => setRolesInA(who().id, from),
      send: (token, headers) =>
        api.request('PUT', `/api/v2/organizations/${orgA}/members/${who().id}`, {
          token,
          headers,
          body: { roles },
        }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ user_id: who().id, roles });
        expect(await rolesInA(who().id)).toEqual(ok ? roles : from);
      },
      audit: 'organization_member',
    };
  }

  async function customPriceExists(): Promise<boolean> {
    const rows = await api.sql(
      `SELECT 1 FROM ai_model_prices WHERE provider = $1 AND model = $2 AND source = 'custom'`,
      [PRICE_PROVIDER, PRICE_MODEL],
    );
    return rows.length > 0;
  }

  async function auditEntries(requestId: string): Promise<{ action: string; resource_type: string }[]> {
    return api.sql(`SELECT action, resource_type FROM audit_logs WHERE request_id = $1`, [requestId]);
  }

  /**
   * One operation: `before` puts the state the cell starts from (so cells do not depend on order),
   * `send` makes the request, `after` checks the state the answer implies (changed on success,
   * untouched on denial), `audit` is the resource type a successful write records.
   */
  interface Operation {
    before?: () => Promise<void>;
    send: (token: string | undefined, headers: Record<string, string>, tag: string) => Promise<ApiResponse>;
    after?: (ok: boolean, tag: string, res: ApiResponse) => Promise<void>;
    audit?: string;
  }

  const OPERATIONS: Record<Op, Operation> = {
    'grant org-admin PUT': grant(() => grantee, [], ['organization-admin']),
    'grant org-auditor PUT': grant(() => grantee, [], ['organization-auditor']),
    'demote org-admin PUT': grant(() => adminTarget, ['organization-admin'], []),
    'remove org-admin DELETE': {
      before: () => setRolesInA(adminTarget.id, ['organization-admin']),
      send: (token, headers) =>
        api.request('DELETE', `/api/v2/organizations/${orgA}/members/${adminTarget.id}`, { token, headers }),
      after: async (ok) => {
        expect(await rolesInA(adminTarget.id)).toEqual(ok ? null : ['organization-admin']);
      },
      audit: 'organization_member',
    },
    'site roles PUT': {
      before: async () => {
        await api.sql(`UPDATE users SET roles = '{}' WHERE id = $1`, [grantee.id]);
      },
      send: (token, headers) =>
        api.request('PUT', `/api/v2/users/${grantee.id}/roles`, {
          token,
          headers,
          body: { roles: ['auditor'] },
        }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ id: grantee.id, roles: ['auditor'] });
        const [row] = await api.sql<{ roles: string[] }>(`SELECT roles FROM users WHERE id = $1`, [
          grantee.id,
        ]);
        expect(row.roles).toEqual(ok ? ['auditor'] : []);
      },
      audit: 'user_roles',
    },
    'budget GET': {
      before: () => setBudget(groupG, ORIGINAL_LIMIT),
      send: (token, headers) => api.request('GET', budgetPath(groupG), { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ group_id: groupG, spend_limit_micros: ORIGINAL_LIMIT });
      },
    },
    'budget PUT': {
      before: () => setBudget(groupG, ORIGINAL_LIMIT),
      send: (token, headers) =>
        api.request('PUT', budgetPath(groupG), { token, headers, body: { spend_limit_micros: 2_345 } }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ group_id: groupG, spend_limit_micros: 2_345 });
        expect(await budgetOf(groupG)).toBe(ok ? 2_345 : ORIGINAL_LIMIT);
      },
      audit: 'group_ai_budget',
    },
    'budget DELETE': {
      before: () => setBudget(groupG, ORIGINAL_LIMIT),
      send: (token, headers) => api.request('DELETE', budgetPath(groupG), { token, headers }),
      after: async (ok) => {
        expect(await budgetOf(groupG)).toBe(ok ? null : ORIGINAL_LIMIT);
      },
      audit: 'group_ai_budget',
    },
    'group PATCH': {
      before: async () => {
        await api.sql(`UPDATE groups SET display_name = $2 WHERE id = $1`, [groupG, ORIGINAL_DISPLAY_NAME]);
      },
      send: (token, headers, tag) =>
        api.request('PATCH', `/api/v2/groups/${groupG}`, {
          token,
          headers,
          body: { display_name: `renamed by ${tag}` },
        }),
      after: async (ok, tag, res) => {
        if (ok) expect(res.body).toMatchObject({ id: groupG, display_name: `renamed by ${tag}` });
        expect(await displayNameOfG()).toBe(ok ? `renamed by ${tag}` : ORIGINAL_DISPLAY_NAME);
      },
    },
    'group GET': {
      send: (token, headers) => api.request('GET', `/api/v2/groups/${groupG}`, { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ id: groupG, organization_id: orgA, name: 'g' });
      },
    },
    'members GET': {
      send: (token, headers) =>
        api.request('GET', `/api/v2/organizations/${orgA}/members`, { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(typeof res.body.count).toBe('number');
      },
    },
    'member PUT': {
      before: async () => {
        await api.sql(`DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2`, [
          orgA,
          target.id,
        ]);
      },
      send: (token, headers) =>
        api.request('PUT', `/api/v2/organizations/${orgA}/members/${target.id}`, {
          token,
          headers,
          body: {},
        }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ organization_id: orgA, user_id: target.id });
        expect(await targetIsMemberOfA()).toBe(ok);
      },
      audit: 'organization_member',
    },
    'prices GET': {
      send: (token, headers) => api.request('GET', '/api/v2/ai/model-prices', { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(Array.isArray(res.body.prices)).toBe(true);
      },
    },
    'custom price PUT': {
      before: async () => {
        await api.sql(`DELETE FROM ai_model_prices WHERE provider = $1 AND model = $2`, [
          PRICE_PROVIDER,
          PRICE_MODEL,
        ]);
      },
      send: (token, headers) => api.request('PUT', pricePath, { token, headers, body: PRICE_BODY }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ source: 'custom', ...PRICE_BODY });
        expect(await customPriceExists()).toBe(ok);
      },
      audit: 'ai_model_price',
    },
    'audit log GET': {
      send: (token, headers) => api.request('GET', '/api/v2/audit-logs', { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(Array.isArray(res.body.audit_logs)).toBe(true);
      },
    },
    'Everyone budget GET': {
      before: () => setBudget(orgA, EVERYONE_LIMIT),
      send: (token, headers) => api.request('GET', budgetPath(orgA), { token, headers }),
      after: async (ok, _tag, res) => {
        if (ok) expect(res.body).toMatchObject({ group_id: orgA, spend_limit_micros: EVERYONE_LIMIT });
      },
    },
  };

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    const { owner } = await world.bootstrap();
    orgA = await world.organization('org-a');
    const orgB = await world.organization('org-b');
    const inA = (roles: OrgRole[] = []) => ({ orgs: [{ id: orgA, roles }] });
    people.set('owner', owner);
    people.set('user-admin', await world.person(owner, 'site-user-admin', { siteRoles: ['user-admin'] }));
    people.set('auditor', await world.person(owner, 'site-auditor', { siteRoles: ['auditor'] }));
    people.set('organization-admin', await world.person(owner, 'org-admin-a', inA(['organization-admin'])));
    people.set(
      'organization-user-admin',
      await world.person(owner, 'org-user-admin-a', inA(['organization-user-admin'])),
    );
    people.set(
      'organization-auditor',
      await world.person(owner, 'org-auditor-a', inA(['organization-auditor'])),
    );
    const groupMember = await world.person(owner, 'group-member', inA());
    people.set('group-member', groupMember);
    people.set('org-member-outside-group', await world.person(owner, 'org-member', inA()));
    people.set('other-org-member', await world.person(owner, 'member-b', { orgs: [{ id: orgB }] }));
    people.set('no-token', null);
    target = await world.person(owner, 'target');
    grantee = await world.person(owner, 'grantee', inA());
    adminTarget = await world.person(owner, 'admin-target', inA(['organization-admin']));
    groupG = await world.group(orgA, 'g', [groupMember.id]);
  });

  afterAll(async () => {
    await api?.close();
  });

  it('covers every actor and every operation', () => {
    expect(Object.keys(MATRIX).sort()).toEqual([...ACTORS].sort());
    for (const actor of ACTORS) expect(Object.keys(MATRIX[actor]).sort()).toEqual([...OPS].sort());
    expect(CELLS).toHaveLength(ACTORS.length * OPS.length);
  });

  it.each(CELLS)('%s / %s answers %i', async (actor, op, expected) => {
    const operation = OPERATIONS[op];
    const person = people.get(actor);
    const tag = `${actor}-${op}`.replace(/[^A-Za-z0-9-]/g, '-');
    const requestId = `role-matrix-${process.pid}-${++seq}`;
    await operation.before?.();

    const res = await operation.send(person?.token, { 'x-request-id': requestId }, tag);

    expect({ actor, op, status: res.status }).toEqual({ actor, op, status: expected });
    expect(res.headers.get('x-request-id')).toBe(requestId);
    const ok = res.status >= 200 && res.status < 300;
    if (!ok) {
      const body = res.body as unknown as ErrorBody;
      expect(typeof body.message).toBe('string');
      expect(Array.isArray(body.validations)).toBe(true);
      expect(body.request_id).toBe(requestId);
    }
    await operation.after?.(ok, tag, res);
    const audit = await auditEntries(requestId);
    if (ok && operation.audit) {
      expect(audit).toEqual([expect.objectContaining({ resource_type: operation.audit })]);
    } else if (!ok) {
      expect(audit).toEqual([]); // a request that fails writes no audit entry
    }
  });
});
