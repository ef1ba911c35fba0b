import { insertOrganization } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Organizations, organization members and groups over HTTP (docs/api.md) on real PostgreSQL.

interface ErrorBody {
  message: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

interface AuditRow {
  actor: string;
  actor_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  organization_id: string | null;
  diff: Record<string, unknown>;
  request_id: string | null;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MISSING_UUID = '00000000-0000-4000-8000-000000000000';
// Jest's asymmetric matchers are typed `any`; these keep the object literals typed.
const isoTime = (): unknown => expect.stringMatching(ISO) as unknown;
const aUuid = (): unknown =>
  expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/) as unknown;

describe('identity API: organizations, members, groups', () => {
  let api: ApiHarness;
  let world: World;
  let owner: Person;
  let defaultOrg: string;
  let orgA: string;
  let orgB: string;
  /** organization-admin, organization-user-admin, organization-auditor, plain members of A. */
  let adminA: Person;
  let userAdminA: Person;
  let auditorA: Person;
  let memberA: Person;
  let memberA2: Person;
  let adminB: Person;
  let memberB: Person;
  let outsider: Person;
  let siteUserAdmin: Person;
  let siteAuditor: Person;
  let seq = 0;

  /** A fresh request id, so that the audit entries of one request can be found. */
  const rid = () => `identity-test-${process.pid}-${++seq}`;

  const call = <T = Record<string, unknown>>(...args: Parameters<ApiHarness['call']>) => api.call<T>(...args);

  const fields = (res: ApiResponse) => (res.body as unknown as ErrorBody).validations.map((v) => v.field);

  function auditOf(requestId: string): Promise<AuditRow[]> {
    return api.sql<AuditRow>(
      `SELECT actor, actor_id, action, resource_type, resource_id, organization_id, diff, request_id
         FROM audit_logs WHERE request_id = $1 ORDER BY time, resource_id`,
      [requestId],
    );
  }

  async function auditCount(): Promise<number> {
    const [row] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    return row.n;
  }

  async function isOrgMember(org: string, user: string): Promise<boolean> {
    const rows = await api.sql(
      `SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2`,
      [org, user],
    );
    return rows.length > 0;
  }

  async function groupMemberIds(group: string): Promise<string[]> {
    const res = await call<{ members: { user_id: string }[] }>('GET', `/api/v2/groups/${group}`, owner);
    expect(res.status).toBe(200);
    return res.body.members.map((m) => m.user_id).sort();
  }

  beforeAll(async () => {
    api = await ApiHarness.start();
    world = new World(api);
    ({ owner, defaultOrg } = await world.bootstrap());
    orgA = await world.organization('org-a');
    orgB = await world.organization('org-b');
    adminA = await world.person(owner, 'admin-a', { orgs: [{ id: orgA, roles: ['organization-admin'] }] });
    userAdminA = await world.person(owner, 'user-admin-a', {
      orgs: [{ id: orgA, roles: ['organization-user-admin'] }],
    });
    auditorA = await world.person(owner, 'auditor-a', {
      orgs: [{ id: orgA, roles: ['organization-auditor'] }],
    });
    memberA = await world.person(owner, 'member-a', { orgs: [{ id: orgA }] });
    memberA2 = await world.person(owner, 'member-a2', { orgs: [{ id: orgA }] });
    adminB = await world.person(owner, 'admin-b', { orgs: [{ id: orgB, roles: ['organization-admin'] }] });
    memberB = await world.person(owner, 'member-b', { orgs: [{ id: orgB }] });
    outsider = await world.person(owner, 'outsider');
    siteUserAdmin = await world.person(owner, 'site-user-admin', { siteRoles: ['user-admin'] });
    siteAuditor = await world.person(owner, 'site-auditor', { siteRoles: ['auditor'] });
  });

  afterAll(async () => {
    await api?.close();
  });

  describe('POST /api/v2/organizations', () => {
    it('creates an organization (owner) with its Everyone group', async () => {
      const res = await call('POST', '/api/v2/organizations', owner, {
        name: 'acme',
        display_name: 'Acme Inc.',
      });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: aUuid(),
        name: 'acme',
        display_name: 'Acme Inc.',
        created_at: isoTime(),
        updated_at: isoTime(),
      });
      const id = res.body.id as string;
      const groups = await call<{ groups: { id: string; name: string }[]; count: number }>(
        'GET',
        `/api/v2/organizations/${id}/groups`,
        owner,
      );
      expect(groups.status).toBe(200);
      expect(groups.body.count).toBe(1);
      expect(groups.body.groups).toEqual([expect.objectContaining({ id, name: 'Everyone' })]);
    });

    it('display_name is optional', async () => {
      const res = await call('POST', '/api/v2/organizations', owner, { name: 'no-display-name' });
      expect(res.status).toBe(201);
      expect(res.body.display_name).toBeNull();
    });

    it.each([
      ['uppercase', { name: 'Acme' }, 'name'],
      ['a space', { name: 'ac me' }, 'name'],
      ['an empty name', { name: '' }, 'name'],
      ['65 characters', { name: 'a'.repeat(65) }, 'name'],
      ['a uuid-shaped name', { name: MISSING_UUID }, 'name'],
      ['a missing name', { display_name: 'x' }, 'name'],
      ['a number', { name: 42 }, 'name'],
      ['a non-string display_name', { name: 'ok-name', display_name: 7 }, 'display_name'],
      ['an unknown field', { name: 'ok-name', color: 'red' }, 'color'],
    ])('400 for %s, naming the field', async (_what, body, field) => {
      const res = await call('POST', '/api/v2/organizations', owner, body);
      expect(res.status).toBe(400);
      expect(fields(res)).toContain(field);
    });

    it('accepts a 64-character name', async () => {
      const res = await call('POST', '/api/v2/organizations', owner, { name: 'b'.repeat(64) });
      expect(res.status).toBe(201);
    });

    it('409 for a duplicate name', async () => {
      const res = await call('POST', '/api/v2/organizations', owner, { name: 'org-a' });
      expect(res.status).toBe(409);
      expect(fields(res)).toEqual(['name']);
    });

    it('403 for anyone but an owner', async () => {
      for (const who of [siteUserAdmin, siteAuditor, adminA, memberA, outsider]) {
        const res = await call('POST', '/api/v2/organizations', who, { name: `by-${who.username}` });
        expect(res.status).toBe(403);
      }
    });

    it('401 without a token', async () => {
      const res = await call('POST', '/api/v2/organizations', null, { name: 'anonymous' });
      expect(res.status).toBe(401);
    });
  });

  describe('GET /api/v2/organizations', () => {
    type List = { organizations: { id: string; name: string }[]; count: number };

    it('owner, user-admin and auditor see every organization', async () => {
      const [{ n }] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM organizations');
      for (const who of [owner, siteUserAdmin, siteAuditor]) {
        const res = await call<List>('GET', '/api/v2/organizations?limit=1000', who);
        expect(res.status).toBe(200);
        expect(res.body.count).toBe(n);
        expect(res.body.organizations.map((o) => o.id)).toEqual(
          expect.arrayContaining([orgA, orgB, defaultOrg]),
        );
      }
    });

    it('members see only their organizations', async () => {
      const a = await call<List>('GET', '/api/v2/organizations', memberA);
      expect(a.status).toBe(200);
      expect(a.body).toEqual({
        organizations: [expect.objectContaining({ id: orgA, name: 'org-a' })],
        count: 1,
      });
      const none = await call<List>('GET', '/api/v2/organizations', outsider);
      expect(none.body).toEqual({ organizations: [], count: 0 });
    });

    it('pages with limit and offset', async () => {
      const all = await call<List>('GET', '/api/v2/organizations?limit=1000', owner);
      const second = await call<List>('GET', '/api/v2/organizations?limit=1&offset=1', owner);
      expect(second.status).toBe(200);
      expect(second.body.count).toBe(all.body.count);
      expect(second.body.organizations).toEqual([all.body.organizations[1]]);
    });

    it.each([
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=abc', 'limit'],
      ['offset=-1', 'offset'],
      ['sort=name', 'sort'],
    ])('400 for ?%s', async (query, field) => {
      const res = await call('GET', `/api/v2/organizations?${query}`, owner);
      expect(res.status).toBe(400);
      expect(fields(res)).toContain(field);
    });

    it('401 without a token', async () => {
      expect((await call('GET', '/api/v2/organizations', null)).status).toBe(401);
    });
  });

  describe('GET /api/v2/organizations/{organization}', () => {
    it('finds an organization by id (any case) and by name', async () => {
      const byId = await call('GET', `/api/v2/organizations/${orgA}`, memberA);
      expect(byId.status).toBe(200);
      expect(byId.body).toEqual({
        id: orgA,
        name: 'org-a',
        display_name: null,
        created_at: isoTime(),
        updated_at: isoTime(),
      });
      const byName = await call('GET', '/api/v2/organizations/org-a', memberA);
      expect(byName.body).toEqual(byId.body);
      const upper = await call('GET', `/api/v2/organizations/${orgA.toUpperCase()}`, memberA);
      expect(upper.body).toEqual(byId.body);
    });

    it('a uuid-shaped value is an id, never a name', async () => {
      // An organization whose name is uuid-shaped cannot be made through the API; put one in directly.
      const name = '11111111-1111-4111-8111-111111111111';
      await insertOrganization(api.pg, name);
      expect((await call('GET', `/api/v2/organizations/${name}`, owner)).status).toBe(404);
    });

    it('404 when it does not exist', async () => {
      expect((await call('GET', '/api/v2/organizations/no-such-org', owner)).status).toBe(404);
      expect((await call('GET', `/api/v2/organizations/${MISSING_UUID}`, owner)).status).toBe(404);
    });

    it('404 for a caller who may not see it', async () => {
      for (const who of [outsider, memberB, adminB]) {
        expect((await call('GET', `/api/v2/organizations/${orgA}`, who)).status).toBe(404);
        expect((await call('GET', '/api/v2/organizations/org-a', who)).status).toBe(404);
      }
    });

    it('owner, user-admin and auditor see any organization', async () => {
      for (const who of [owner, siteUserAdmin, siteAuditor]) {
        expect((await call('GET', `/api/v2/organizations/${orgB}`, who)).status).toBe(200);
      }
    });

    it('400 for something that is neither an id nor a name', async () => {
      const res = await call('GET', '/api/v2/organizations/Not_A_Name', owner);
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['organization']);
    });

    it('401 without a token', async () => {
      expect((await call('GET', `/api/v2/organizations/${orgA}`, null)).status).toBe(401);
    });
  });

  describe('PUT /api/v2/organizations/{organization}/members/{user}', () => {
    type Member = {
      organization_id: string;
      user_id: string;
      username: string;
      name: string | null;
      roles: string[];
      created_at: string;
    };

    it('organization-admin adds a user it could not read before; audited as create', async () => {
      const joiner = await world.person(owner, 'joiner-1');
      // The admin cannot read the user yet...
      expect((await call('GET', `/api/v2/users/${joiner.id}`, adminA)).status).toBe(404);
      const requestId = rid();
      const res = await call<Member>(
        'PUT',
        `/api/v2/organizations/${orgA}/members/${joiner.id}`,
        adminA,
        {},
        requestId,
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        organization_id: orgA,
        user_id: joiner.id,
        username: 'joiner-1',
        name: null,
        roles: [],
        created_at: isoTime(),
      });
      // ...and can once it is a member of the admin's organization.
      expect((await call('GET', `/api/v2/users/${joiner.id}`, adminA)).status).toBe(200);
      expect(await auditOf(requestId)).toEqual([
        {
          actor: 'admin-a',
          actor_id: adminA.id,
          action: 'create',
          resource_type: 'organization_member',
          resource_id: `${orgA}/${joiner.id}`,
          organization_id: orgA,
          diff: { user: { id: joiner.id, username: 'joiner-1' }, roles: { before: null, after: [] } },
          request_id: requestId,
        },
      ]);
    });

    it('is idempotent, changes roles when given, keeps them when not; audited as write', async () => {
      const joiner = await world.person(owner, 'joiner-2');
      const path = `/api/v2/organizations/org-a/members/joiner-2`;
      const first = await call<Member>('PUT', path, userAdminA, { roles: ['organization-auditor'] });
      expect(first.status).toBe(200);
      expect(first.body.roles).toEqual(['organization-auditor']);

      const again = await call<Member>('PUT', path, userAdminA, {});
      expect(again.status).toBe(200);
      expect(again.body).toEqual(first.body);

      const requestId = rid();
      const changed = await call<Member>(
        'PUT',
        path,
        userAdminA,
        { roles: ['organization-user-admin', 'organization-user-admin', 'organization-auditor'] },
        requestId,
      );
      expect(changed.status).toBe(200);
      expect(changed.body.roles).toEqual(['organization-user-admin', 'organization-auditor']);
      expect(changed.body.created_at).toBe(first.body.created_at);
      const [entry] = await auditOf(requestId);
      expect(entry).toMatchObject({
        action: 'write',
        resource_type: 'organization_member',
        resource_id: `${orgA}/${joiner.id}`,
        organization_id: orgA,
        diff: {
          user: { id: joiner.id, username: 'joiner-2' },
          roles: {
            before: ['organization-auditor'],
            after: ['organization-user-admin', 'organization-auditor'],
          },
        },
      });

      const cleared = await call<Member>('PUT', path, userAdminA, { roles: [] });
      expect(cleared.body.roles).toEqual([]);
      const [{ n }] = await api.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_logs WHERE resource_id = $1`,
        [`${orgA}/${joiner.id}`],
      );
      expect(n).toBe(4); // every successful PUT: create, write, write, write
    });

    it('accepts a request without any body (adds, keeps roles)', async () => {
      const joiner = await world.person(owner, 'joiner-3');
      const res = await api.request<Member>('PUT', `/api/v2/organizations/${orgA}/members/${joiner.id}`, {
        token: adminA.token,
      });
      expect(res.status).toBe(200);
      expect(res.body.roles).toEqual([]);
      expect(await isOrgMember(orgA, joiner.id)).toBe(true);
    });

    it('owner and site user-admin manage members of any organization', async () => {
      const joiner = await world.person(owner, 'joiner-4');
      for (const who of [owner, siteUserAdmin]) {
        const res = await call('PUT', `/api/v2/organizations/${orgB}/members/${joiner.id}`, who, {});
        expect(res.status).toBe(200);
      }
    });

    it.each([
      ['a role that is not an organization role', { roles: ['organization-auditor', 'owner'] }, 'roles[1]'],
      ['a non-string role', { roles: [3] }, 'roles[0]'],
      ['roles that is not an array', { roles: 'organization-admin' }, 'roles'],
      ['roles null', { roles: null }, 'roles'],
      ['an unknown field', { role: ['organization-admin'] }, 'role'],
    ])('400 for %s, naming the field', async (_what, body, field) => {
      const before = await auditCount();
      const res = await call('PUT', `/api/v2/organizations/${orgA}/members/${memberA.id}`, adminA, body);
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual([field]);
      expect(await auditCount()).toBe(before);
    });

    it('400 for a JSON body that is not an object', async () => {
      const res = await api.request('PUT', `/api/v2/organizations/${orgA}/members/${memberA.id}`, {
        token: adminA.token,
        rawBody: '[]',
      });
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['body']);
    });

    it('403 for members who may see the organization but not manage it', async () => {
      const before = await auditCount();
      for (const who of [memberA, auditorA, siteAuditor]) {
        const res = await call('PUT', `/api/v2/organizations/${orgA}/members/${outsider.id}`, who, {});
        expect(res.status).toBe(403);
      }
      // Even for a user that does not exist: no existence leak to those who may not manage.
      expect(
        (await call('PUT', `/api/v2/organizations/${orgA}/members/${MISSING_UUID}`, memberA, {})).status,
      ).toBe(403);
      expect(await isOrgMember(orgA, outsider.id)).toBe(false);
      expect(await auditCount()).toBe(before);
    });

    it('404 when the user does not exist', async () => {
      for (const ref of [MISSING_UUID, 'nobody-here']) {
        const res = await call('PUT', `/api/v2/organizations/${orgA}/members/${ref}`, adminA, {});
        expect(res.status).toBe(404);
      }
    });

    it('404 for an organization the caller cannot see (admin of another organization)', async () => {
      const res = await call('PUT', `/api/v2/organizations/${orgB}/members/${adminA.id}`, adminA, {});
      expect(res.status).toBe(404);
      expect(await isOrgMember(orgB, adminA.id)).toBe(false);
      expect(
        (await call('PUT', `/api/v2/organizations/no-such-org/members/${adminA.id}`, owner, {})).status,
      ).toBe(404);
    });

    it('400 for a malformed user reference', async () => {
      const res = await call('PUT', `/api/v2/organizations/${orgA}/members/Bad%20User`, adminA, {});
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['user']);
    });

    it('401 without a token', async () => {
      expect(
        (await call('PUT', `/api/v2/organizations/${orgA}/members/${outsider.id}`, null, {})).status,
      ).toBe(401);
    });
  });

  describe('granting organization roles (CONTRACT 3)', () => {
    type Member = { user_id: string; roles: string[] };
    it('an organization-user-admin cannot make itself organization-admin (403, nothing recorded)', async () => {
      const requestId = rid();
      const res = await call<ErrorBody>(
        'PUT',
        `/api/v2/organizations/org-a/members/${userAdminA.username}`,
        userAdminA,
        { roles: ['organization-admin'] },
        requestId,
      );
      expect(res.status).toBe(403);
      expect(res.body.message).toContain('organization-admin');
      const [row] = await api.sql<{ roles: string[] }>(
        'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2',
        [orgA, userAdminA.id],
      );
      expect(row.roles).toEqual(['organization-user-admin']);
      expect(await auditOf(requestId)).toEqual([]);
    });

    it('an organization-user-admin can neither demote nor remove an organization-admin, but may re-add one unchanged', async () => {
      const path = `/api/v2/organizations/org-a/members/${adminA.username}`;
      for (const roles of [[], ['organization-auditor'], ['organization-user-admin']]) {
        expect((await call('PUT', path, userAdminA, { roles })).status).toBe(403);
      }
      expect((await call('DELETE', path, userAdminA)).status).toBe(403);
      const same = await call<Member>('PUT', path, userAdminA, {});
      expect(same.status).toBe(200);
      expect(same.body.roles).toEqual(['organization-admin']);
    });

    it('an organization-admin grants and takes away organization-admin', async () => {
      await world.person(owner, 'promoted', { orgs: [{ id: orgA }] });
      const path = `/api/v2/organizations/org-a/members/promoted`;
      const up = await call<Member>('PUT', path, adminA, { roles: ['organization-admin'] });
      expect(up.status).toBe(200);
      expect(up.body.roles).toEqual(['organization-admin']);
      const down = await call<Member>('PUT', path, adminA, { roles: [] });
      expect(down.status).toBe(200);
      expect(down.body.roles).toEqual([]);
    });
  });

  describe('DELETE /api/v2/organizations/{organization}/members/{user}', () => {
    it('removes the member and their group memberships; audited as delete', async () => {
      const leaver = await world.person(owner, 'leaver-1', {
        orgs: [{ id: orgA, roles: ['organization-auditor'] }],
      });
      const stays = await world.person(owner, 'stays-1', { orgs: [{ id: orgA }] });
      const group = await world.group(orgA, 'leavers', [leaver.id, stays.id]);
      expect(await groupMemberIds(group)).toEqual([leaver.id, stays.id].sort());

      const requestId = rid();
      const res = await call(
        'DELETE',
        `/api/v2/organizations/${orgA}/members/${leaver.id}`,
        adminA,
        undefined,
        requestId,
      );
      expect(res.status).toBe(204);
      expect(res.body).toBeNull();
      expect(await isOrgMember(orgA, leaver.id)).toBe(false);
      expect(await groupMemberIds(group)).toEqual([stays.id]);
      expect(await groupMemberIds(orgA)).not.toContain(leaver.id);
      // The group membership removed with it is audited by the database (one entry per user).
      expect(await auditOf(requestId)).toEqual([
        {
          actor: 'system:database',
          actor_id: null,
          action: 'delete',
          resource_type: 'group_member',
          resource_id: `${group}/${leaver.id}`,
          organization_id: orgA,
          diff: { group: { id: group, name: 'leavers' }, user_id: leaver.id },
          request_id: requestId,
        },
        {
          actor: 'admin-a',
          actor_id: adminA.id,
          action: 'delete',
          resource_type: 'organization_member',
          resource_id: `${orgA}/${leaver.id}`,
          organization_id: orgA,
          diff: {
            user: { id: leaver.id, username: 'leaver-1' },
            roles: { before: ['organization-auditor'], after: null },
          },
          request_id: requestId,
        },
      ]);
    });

    it('organization-user-admin may remove members, by username', async () => {
      await world.person(owner, 'leaver-2', { orgs: [{ id: orgA }] });
      const res = await call('DELETE', '/api/v2/organizations/org-a/members/leaver-2', userAdminA);
      expect(res.status).toBe(204);
    });

    it('404 when the user is not a member, or does not exist', async () => {
      const before = await auditCount();
      const notMember = await call('DELETE', `/api/v2/organizations/${orgA}/members/${outsider.id}`, adminA);
      expect(notMember.status).toBe(404);
      expect((notMember.body as unknown as ErrorBody).message).toMatch(/not a member/);
      expect(
        (await call('DELETE', `/api/v2/organizations/${orgA}/members/${MISSING_UUID}`, adminA)).status,
      ).toBe(404);
      expect(await auditCount()).toBe(before);
    });

    it('403 for a plain member or auditor of the organization', async () => {
      for (const who of [memberA, auditorA]) {
        const res = await call('DELETE', `/api/v2/organizations/${orgA}/members/${memberA2.id}`, who);
        expect(res.status).toBe(403);
      }
      expect(await isOrgMember(orgA, memberA2.id)).toBe(true);
    });

    it('404 for an organization the caller cannot see', async () => {
      const res = await call('DELETE', `/api/v2/organizations/${orgB}/members/${memberB.id}`, adminA);
      expect(res.status).toBe(404);
      expect(await isOrgMember(orgB, memberB.id)).toBe(true);
    });

    it('401 without a token', async () => {
      expect(
        (await call('DELETE', `/api/v2/organizations/${orgA}/members/${memberA2.id}`, null)).status,
      ).toBe(401);
    });
  });

  describe('GET /api/v2/organizations/{organization}/members', () => {
    type List = {
      members: {
        user_id: string;
        username: string;
        name: string | null;
        roles: string[];
        created_at: string;
      }[];
      count: number;
    };

    it('lists members with their roles to every member of the organization', async () => {
      for (const who of [memberA, auditorA, adminA]) {
        const res = await call<List>('GET', `/api/v2/organizations/${orgB}/members`, who);
        expect(res.status).toBe(404);
      }
      const res = await call<List>('GET', `/api/v2/organizations/${orgB}/members`, memberB);
      expect(res.status).toBe(200);
      expect(res.body.members).toEqual(
        expect.arrayContaining([
          {
            user_id: adminB.id,
            username: 'admin-b',
            name: null,
            roles: ['organization-admin'],
            created_at: isoTime(),
          },
          {
            user_id: memberB.id,
            username: 'member-b',
            name: null,
            roles: [],
            created_at: isoTime(),
          },
        ]),
      );
      expect(res.body.count).toBe(res.body.members.length);
    });

    it('pages with limit and offset; count is the total', async () => {
      const all = await call<List>('GET', `/api/v2/organizations/org-a/members`, memberA);
      expect(all.body.count).toBeGreaterThan(3);
      const page = await call<List>('GET', `/api/v2/organizations/org-a/members?limit=2&offset=1`, memberA);
      expect(page.status).toBe(200);
      expect(page.body.count).toBe(all.body.count);
      expect(page.body.members).toEqual(all.body.members.slice(1, 3));
    });

    it('owner, user-admin and auditor read any organization', async () => {
      for (const who of [owner, siteUserAdmin, siteAuditor]) {
        expect((await call('GET', `/api/v2/organizations/${orgB}/members`, who)).status).toBe(200);
      }
    });

    it('404 for an outsider or an unknown organization; 400 for a bad page; 401 without a token', async () => {
      expect((await call('GET', `/api/v2/organizations/${orgA}/members`, outsider)).status).toBe(404);
      expect((await call('GET', `/api/v2/organizations/${MISSING_UUID}/members`, owner)).status).toBe(404);
      const bad = await call('GET', `/api/v2/organizations/${orgA}/members?offset=x`, owner);
      expect(bad.status).toBe(400);
      expect(fields(bad)).toEqual(['offset']);
      expect((await call('GET', `/api/v2/organizations/${orgA}/members`, null)).status).toBe(401);
    });
  });

  describe('POST /api/v2/organizations/{organization}/groups', () => {
    it('creates a group (organization-admin) with no members', async () => {
      const res = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, {
        name: 'Data Science 🧪',
        display_name: 'The data people',
      });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: aUuid(),
        organization_id: orgA,
        name: 'Data Science 🧪',
        display_name: 'The data people',
        member_count: 0,
        members: [],
        created_at: isoTime(),
        updated_at: isoTime(),
      });
    });

    it('organization-user-admin, owner and site user-admin may create groups too (by organization name)', async () => {
      for (const [i, who] of [userAdminA, owner, siteUserAdmin].entries()) {
        const res = await call('POST', '/api/v2/organizations/org-a/groups', who, { name: `created-${i}` });
        expect(res.status).toBe(201);
        expect(res.body.display_name).toBeNull();
      }
    });

    it.each([
      ['Everyone', 'Everyone'],
      ['everyone in any case', 'eVeRyOnE'],
      ['an empty name', ''],
      ['a blank name', '   '],
      ['256 characters', 'x'.repeat(256)],
      ['a control character', 'tab\there'],
      ['a number', 12],
      ['null', null],
    ])('400 for a name that is %s', async (_what, name) => {
      const res = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, { name });
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['name']);
    });

    it('accepts 255 characters (counted as characters, not bytes)', async () => {
      const res = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, {
        name: 'é'.repeat(255),
      });
      expect(res.status).toBe(201);
    });

    it('400 for unknown fields and a missing name', async () => {
      const unknown = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, {
        name: 'x1',
        members: [],
      });
      expect(unknown.status).toBe(400);
      expect(fields(unknown)).toEqual(['members']);
      const missing = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, {});
      expect(missing.status).toBe(400);
      expect(fields(missing)).toEqual(['name']);
    });

    it('409 for a duplicate name in the organization; the same name in another organization is fine', async () => {
      expect(
        (await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, { name: 'dup' })).status,
      ).toBe(201);
      const dup = await call('POST', `/api/v2/organizations/${orgA}/groups`, adminA, { name: 'dup' });
      expect(dup.status).toBe(409);
      expect(fields(dup)).toEqual(['name']);
      expect(
        (await call('POST', `/api/v2/organizations/${orgB}/groups`, adminB, { name: 'dup' })).status,
      ).toBe(201);
    });

    it('403 for a member or auditor of the organization', async () => {
      for (const who of [memberA, auditorA, siteAuditor]) {
        expect(
          (await call('POST', `/api/v2/organizations/${orgA}/groups`, who, { name: 'nope' })).status,
        ).toBe(403);
      }
    });

    it('404 for an organization the caller cannot see, or that does not exist', async () => {
      expect(
        (await call('POST', `/api/v2/organizations/${orgB}/groups`, adminA, { name: 'sneaky' })).status,
      ).toBe(404);
      expect(
        (await call('POST', `/api/v2/organizations/no-such-org/groups`, owner, { name: 'x' })).status,
      ).toBe(404);
      const [{ n }] = await api.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM groups WHERE name = 'sneaky'`,
      );
      expect(n).toBe(0);
    });

    it('401 without a token', async () => {
      expect(
        (await call('POST', `/api/v2/organizations/${orgA}/groups`, null, { name: 'anon' })).status,
      ).toBe(401);
    });
  });

  describe('reading groups', () => {
    let team: string;
    let other: string;

    beforeAll(async () => {
      team = await world.group(orgA, 'reading-team', [memberA.id]);
      other = await world.group(orgA, 'reading-other', [memberA2.id]);
    });

    it('GET /organizations/{organization}/groups lists groups without members, Everyone first', async () => {
      const res = await call<{ groups: Record<string, unknown>[]; count: number }>(
        'GET',
        `/api/v2/organizations/${orgA}/groups?limit=1000`,
        auditorA,
      );
      expect(res.status).toBe(200);
      expect(res.body.count).toBe(res.body.groups.length);
      expect(res.body.groups[0]).toEqual({
        id: orgA,
        organization_id: orgA,
        name: 'Everyone',
        display_name: null,
        created_at: isoTime(),
        updated_at: isoTime(),
      });
      expect(res.body.groups.map((g) => g.id)).toEqual(expect.arrayContaining([team, other]));
      expect(res.body.groups.every((g) => !('members' in g))).toBe(true);
    });

    it('a plain member sees Everyone and their own groups only', async () => {
      const res = await call<{ groups: { id: string }[]; count: number }>(
        'GET',
        `/api/v2/organizations/${orgA}/groups`,
        memberA,
      );
      expect(res.status).toBe(200);
      expect(res.body.groups.map((g) => g.id)).toEqual([orgA, team]);
      expect(res.body.count).toBe(2);
    });

    it('GET /groups/{group} shows the members', async () => {
      const res = await call('GET', `/api/v2/groups/${team}`, memberA);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id: team,
        organization_id: orgA,
        name: 'reading-team',
        display_name: null,
        member_count: 1,
        members: [{ user_id: memberA.id, username: 'member-a', name: null }],
        created_at: isoTime(),
        updated_at: isoTime(),
      });
    });

    it("the Everyone group's members are the organization's members", async () => {
      const res = await call<{ members: { user_id: string }[] }>('GET', `/api/v2/groups/${orgB}`, memberB);
      expect(res.status).toBe(200);
      const orgMembers = await api.sql<{ user_id: string }>(
        'SELECT user_id FROM organization_members WHERE organization_id = $1',
        [orgB],
      );
      expect(res.body.members.map((m) => m.user_id).sort()).toEqual(orgMembers.map((m) => m.user_id).sort());
    });

    it('404 for a group the caller may not read, and for groups of another organization', async () => {
      expect((await call('GET', `/api/v2/groups/${other}`, memberA)).status).toBe(404);
      for (const who of [adminB, memberB, outsider]) {
        expect((await call('GET', `/api/v2/groups/${team}`, who)).status).toBe(404);
        expect((await call('GET', `/api/v2/groups/${orgA}`, who)).status).toBe(404);
        expect((await call('GET', `/api/v2/organizations/${orgA}/groups`, who)).status).toBe(404);
      }
      expect((await call('GET', `/api/v2/groups/${MISSING_UUID}`, owner)).status).toBe(404);
    });

    it('site readers see any group', async () => {
      for (const who of [owner, siteUserAdmin, siteAuditor]) {
        expect((await call('GET', `/api/v2/groups/${team}`, who)).status).toBe(200);
      }
    });

    it('400 for a group id that is not a uuid; 400 for a bad page; 401 without a token', async () => {
      const res = await call('GET', '/api/v2/groups/reading-team', owner);
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['group']);
      const bad = await call('GET', `/api/v2/organizations/${orgA}/groups?limit=-3`, owner);
      expect(bad.status).toBe(400);
      expect(fields(bad)).toEqual(['limit']);
      expect((await call('GET', `/api/v2/groups/${team}`, null)).status).toBe(401);
      expect((await call('GET', `/api/v2/organizations/${orgA}/groups`, null)).status).toBe(401);
    });
  });

  describe('PATCH /api/v2/groups/{group}', () => {
    type GroupBody = {
      id: string;
      name: string;
      display_name: string | null;
      members: { user_id: string }[];
    };

    it('renames, sets display_name, adds and removes members; one audit entry per user', async () => {
      const group = await world.group(orgA, 'patch-me', [memberA2.id]);
      const requestId = rid();
      const res = await call<GroupBody>(
        'PATCH',
        `/api/v2/groups/${group}`,
        adminA,
        {
          name: 'patched',
          display_name: 'Patched group',
          add_users: [memberA.id, auditorA.id.toUpperCase(), memberA.id],
          remove_users: [memberA2.id, adminA.id],
        },
        requestId,
      );
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: group, name: 'patched', display_name: 'Patched group' });
      expect(res.body.members.map((m) => m.user_id).sort()).toEqual([auditorA.id, memberA.id].sort());
      expect(await groupMemberIds(group)).toEqual([auditorA.id, memberA.id].sort());

      const entries = await auditOf(requestId);
      const expected = [
        ['create', auditorA, 'auditor-a'],
        ['create', memberA, 'member-a'],
        ['delete', memberA2, 'member-a2'],
      ] as const;
      expect(entries).toHaveLength(4);
      // The rename is an entry of its own, with the fields that changed.
      expect(entries).toContainEqual(
        expect.objectContaining({
          action: 'write',
          resource_type: 'group',
          resource_id: group,
          diff: {
            name: { before: 'patch-me', after: 'patched' },
            display_name: { before: null, after: 'Patched group' },
          },
        }),
      );
      for (const [action, who, username] of expected) {
        expect(entries).toContainEqual({
          actor: 'admin-a',
          actor_id: adminA.id,
          action,
          resource_type: 'group_member',
          resource_id: `${group}/${who.id}`,
          organization_id: orgA,
          diff: { group: { id: group, name: 'patched' }, user: { id: who.id, username } },
          request_id: requestId,
        });
      }
    });

    it('display_name null clears it; an empty body changes nothing and writes no audit entry', async () => {
      const group = await world.group(orgA, 'clear-me');
      await api.sql(`UPDATE groups SET display_name = 'x' WHERE id = $1`, [group]);
      const cleared = await call<GroupBody>('PATCH', `/api/v2/groups/${group}`, userAdminA, {
        display_name: null,
      });
      expect(cleared.status).toBe(200);
      expect(cleared.body.display_name).toBeNull();
      expect(cleared.body.name).toBe('clear-me');
      const requestId = rid();
      const empty = await call<GroupBody>('PATCH', `/api/v2/groups/${group}`, userAdminA, {}, requestId);
      expect(empty.status).toBe(200);
      expect(empty.body).toEqual(cleared.body);
      expect(await auditOf(requestId)).toEqual([]);
    });

    it('adding an existing member or removing a non-member is a no-op without audit entries', async () => {
      const group = await world.group(orgA, 'noop', [memberA.id]);
      const requestId = rid();
      const res = await call<GroupBody>(
        'PATCH',
        `/api/v2/groups/${group}`,
        adminA,
        { add_users: [memberA.id], remove_users: [memberA2.id] },
        requestId,
      );
      expect(res.status).toBe(200);
      expect(res.body.members.map((m) => m.user_id)).toEqual([memberA.id]);
      expect(await auditOf(requestId)).toEqual([]);
    });

    it('400 naming each user who is not a member of the organization; nothing changes', async () => {
      const group = await world.group(orgA, 'strict', [memberA2.id]);
      const before = await auditCount();
      const res = await call('PATCH', `/api/v2/groups/${group}`, adminA, {
        name: 'strict-renamed',
        add_users: [memberA.id, memberB.id, MISSING_UUID],
        remove_users: [memberA2.id],
      });
      expect(res.status).toBe(400);
      expect((res.body as unknown as ErrorBody).validations).toEqual([
        { field: 'add_users[1]', detail: `user ${memberB.id} is not a member of the organization` },
        { field: 'add_users[2]', detail: `user ${MISSING_UUID} is not a member of the organization` },
      ]);
      expect(await groupMemberIds(group)).toEqual([memberA2.id]);
      const [row] = await api.sql<{ name: string }>('SELECT name FROM groups WHERE id = $1', [group]);
      expect(row.name).toBe('strict');
      expect(await auditCount()).toBe(before);
    });

    it('the same 400 when the membership is removed between the check and the insert (database trigger)', async () => {
      const racer = await world.person(owner, 'racer', { orgs: [{ id: orgA }] });
      const group = await world.group(orgA, 'race');
      const remover = await api.pg.connect();
      try {
        // Delete the membership without committing: the PATCH's check still sees it, its insert
        // then waits on the row lock and, once the delete commits, the trigger refuses it.
        await remover.query('BEGIN');
        await remover.query('DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2', [
          orgA,
          racer.id,
        ]);
        const patch = call('PATCH', `/api/v2/groups/${group}`, adminA, { add_users: [memberA.id, racer.id] });
        let blocked = false;
        for (let i = 0; i < 400 && !blocked; i++) {
          const waiting = await api.sql(
            `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO group_members%'`,
          );
          blocked = waiting.length > 0;
          if (!blocked) await new Promise((r) => setTimeout(r, 25));
        }
        await remover.query('COMMIT');
        expect(blocked).toBe(true);
        const res = await patch;
        expect(res.status).toBe(400);
        expect((res.body as unknown as ErrorBody).validations).toEqual([
          { field: 'add_users[1]', detail: `user ${racer.id} is not a member of the organization` },
        ]);
        expect(await groupMemberIds(group)).toEqual([]);
      } finally {
        await remover.query('ROLLBACK').catch(() => undefined);
        remover.release();
      }
    });

    it.each([
      ['add_users with a non-uuid', { add_users: ['member-a'] }, ['add_users[0]']],
      ['remove_users with a non-uuid', { remove_users: ['x', 5] }, ['remove_users[0]', 'remove_users[1]']],
      ['add_users not an array', { add_users: 'x' }, ['add_users']],
      ['add_users null', { add_users: null }, ['add_users']],
      [
        'a user in both lists',
        { add_users: [MISSING_UUID], remove_users: [MISSING_UUID] },
        ['remove_users[0]'],
      ],
      ['name null', { name: null }, ['name']],
      ['name Everyone', { name: 'EVERYONE' }, ['name']],
      ['an empty name', { name: '' }, ['name']],
      ['a display_name that is not a string', { display_name: 1 }, ['display_name']],
      ['an unknown field', { members: [] }, ['members']],
    ])('400 for %s', async (_what, body, expectedFields) => {
      const group = await world.group(orgA, `invalid-${++seq}`);
      const res = await call('PATCH', `/api/v2/groups/${group}`, adminA, body);
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(expectedFields);
    });

    it('409 when renaming to a name taken in the organization', async () => {
      await world.group(orgA, 'taken');
      const group = await world.group(orgA, 'renamer');
      const res = await call('PATCH', `/api/v2/groups/${group}`, adminA, { name: 'taken' });
      expect(res.status).toBe(409);
      expect(fields(res)).toEqual(['name']);
    });

    it('400 for the Everyone group', async () => {
      const before = await auditCount();
      for (const body of [{ name: 'All' }, { add_users: [memberA.id] }, {}]) {
        const res = await call('PATCH', `/api/v2/groups/${orgA}`, adminA, body);
        expect(res.status).toBe(400);
      }
      expect(await auditCount()).toBe(before);
    });

    it('403 for a group member or organization auditor who can read the group', async () => {
      const group = await world.group(orgA, 'read-only', [memberA.id]);
      for (const who of [memberA, auditorA, siteAuditor]) {
        const res = await call('PATCH', `/api/v2/groups/${group}`, who, { name: 'mine-now' });
        expect(res.status).toBe(403);
      }
      // The Everyone group is readable by every member: 403 before the Everyone rule.
      expect((await call('PATCH', `/api/v2/groups/${orgA}`, memberA, {})).status).toBe(403);
    });

    it("404 for a group the caller cannot read (another organization's, a non-member's)", async () => {
      const groupB = await world.group(orgB, 'b-team', [memberB.id]);
      const res = await call('PATCH', `/api/v2/groups/${groupB}`, adminA, { add_users: [adminA.id] });
      expect(res.status).toBe(404);
      expect((await call('PATCH', `/api/v2/groups/${orgB}`, adminA, {})).status).toBe(404);
      expect(await groupMemberIds(groupB)).toEqual([memberB.id]);
      const groupA = await world.group(orgA, 'not-mine');
      expect((await call('PATCH', `/api/v2/groups/${groupA}`, memberA, {})).status).toBe(404);
      expect((await call('PATCH', `/api/v2/groups/${MISSING_UUID}`, owner, {})).status).toBe(404);
    });

    it('400 for a group id that is not a uuid; 401 without a token', async () => {
      const res = await call('PATCH', '/api/v2/groups/not-a-uuid', owner, {});
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['group']);
      expect((await call('PATCH', `/api/v2/groups/${orgA}`, null, {})).status).toBe(401);
    });
  });

  describe('DELETE /api/v2/groups/{group}', () => {
    it('deletes a group (organization-admin)', async () => {
      const group = await world.group(orgA, 'doomed', [memberA.id]);
      const res = await call('DELETE', `/api/v2/groups/${group}`, adminA);
      expect(res.status).toBe(204);
      expect((await call('GET', `/api/v2/groups/${group}`, owner)).status).toBe(404);
      expect((await call('DELETE', `/api/v2/groups/${group}`, adminA)).status).toBe(404);
    });

    it('organization-user-admin may delete groups too', async () => {
      const group = await world.group(orgA, 'doomed-2');
      expect((await call('DELETE', `/api/v2/groups/${group}`, userAdminA)).status).toBe(204);
    });

    it('400 for the Everyone group', async () => {
      const res = await call('DELETE', `/api/v2/groups/${orgA}`, owner);
      expect(res.status).toBe(400);
      expect((await call('GET', `/api/v2/groups/${orgA}`, owner)).status).toBe(200);
    });

    it('403 for a reader, 404 for another organization, 400 for a bad id, 401 without a token', async () => {
      const group = await world.group(orgA, 'survivor', [memberA.id]);
      expect((await call('DELETE', `/api/v2/groups/${group}`, memberA)).status).toBe(403);
      expect((await call('DELETE', `/api/v2/groups/${group}`, auditorA)).status).toBe(403);
      expect((await call('DELETE', `/api/v2/groups/${group}`, adminB)).status).toBe(404);
      expect((await call('DELETE', `/api/v2/groups/${group}`, memberA2)).status).toBe(404);
      expect((await call('DELETE', `/api/v2/groups/${group}`, null)).status).toBe(401);
      expect((await call('DELETE', '/api/v2/groups/survivor', owner)).status).toBe(400);
      expect((await call('GET', `/api/v2/groups/${group}`, owner)).status).toBe(200);
    });
  });

  describe('cross-organization isolation', () => {
    it('an organization-admin of A can neither see nor change anything of B', async () => {
      const groupB = await world.group(orgB, 'isolated', [memberB.id]);
      const before = await auditCount();
      const attempts: [string, string, unknown?][] = [
        ['GET', `/api/v2/organizations/${orgB}`],
        ['GET', '/api/v2/organizations/org-b'],
        ['GET', `/api/v2/organizations/${orgB}/members`],
        ['PUT', `/api/v2/organizations/${orgB}/members/${memberA.id}`, {}],
        ['DELETE', `/api/v2/organizations/${orgB}/members/${memberB.id}`],
        ['GET', `/api/v2/organizations/${orgB}/groups`],
        ['POST', `/api/v2/organizations/${orgB}/groups`, { name: 'intruders' }],
        ['GET', `/api/v2/groups/${groupB}`],
        ['GET', `/api/v2/groups/${orgB}`],
        ['PATCH', `/api/v2/groups/${groupB}`, { name: 'owned', remove_users: [memberB.id] }],
        ['DELETE', `/api/v2/groups/${groupB}`],
      ];
      for (const [method, path, body] of attempts) {
        const res = await call(method, path, adminA, body);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
      }
      const listed = await call<{ organizations: { id: string }[] }>('GET', '/api/v2/organizations', adminA);
      expect(listed.body.organizations.map((o) => o.id)).toEqual([orgA]);
      expect(await groupMemberIds(groupB)).toEqual([memberB.id]);
      expect(await isOrgMember(orgB, memberB.id)).toBe(true);
      expect(await auditCount()).toBe(before);
    });
  });
});
