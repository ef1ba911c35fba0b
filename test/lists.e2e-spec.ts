import { insertMember } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Bounded lists (CONTRACT 2, 2.1): the group visibility filter, paging and count in SQL; a
// group's member_count and first 1,000 members; GET /groups/{group}/members; key paging; the
// offset ceiling; counts that stop at 10,000 and say so.

interface ErrorBody {
  validations: { field: string; detail: string }[];
}
interface Member {
  user_id: string;
  username: string;
  name: string | null;
  created_at: string;
}
interface MemberList {
  members: Member[];
  count: number;
  count_capped?: boolean;
}
interface GroupBody {
  id: string;
  member_count: number;
  members: { user_id: string; username: string; name: string | null }[];
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MISSING_UUID = '00000000-0000-4000-8000-000000000000';

describe('bounded lists', () => {
  let api: ApiHarness;
  let world: World;
  let owner: Person;
  let org: string;
  let otherOrg: string;
  let admin: Person;
  let member: Person;
  let outsider: Person;
  /** Groups of `org` by name; `member` is in "b-team" and "d-team" only. */
  const groups: Record<string, string> = {};

  const call = <T = Record<string, unknown>>(
    method: string,
    path: string,
    who: Person | null,
    body?: unknown,
  ) => api.call<T>(method, path, who, body);
  const fields = (res: ApiResponse<unknown>) => (res.body as ErrorBody).validations.map((v) => v.field);

  /** `n` users named `<prefix>-0001`...: created, made members of `orgId` and of `groupId`, set-based. */
  async function bulkMembers(
    prefix: string,
    n: number,
    orgId: string,
    groupId: string | null,
  ): Promise<void> {
    await api.sql(
      `WITH u AS (
         INSERT INTO users (username, email)
         SELECT $1 || '-' || lpad(i::text, 4, '0'), $1 || '-' || i || '@example.com' FROM generate_series(1, $2::int) i
         RETURNING id)
       INSERT INTO organization_members (organization_id, user_id) SELECT $3, id FROM u`,
      [prefix, n, orgId],
    );
    if (groupId) {
      await api.sql(
        `INSERT INTO group_members (group_id, user_id)
         SELECT $1, id FROM users WHERE username LIKE $2 || '-%'`,
        [groupId, prefix],
      );
    }
  }

  beforeAll(async () => {
    api = await ApiHarness.start();
    world = new World(api);
    ({ owner } = await world.bootstrap());
    org = await world.organization('lists-org');
    otherOrg = await world.organization('lists-other');
    admin = await world.person(owner, 'lists-admin', { orgs: [{ id: org, roles: ['organization-admin'] }] });
    member = await world.person(owner, 'lists-member', { orgs: [{ id: org }] });
    outsider = await world.person(owner, 'lists-outsider', { orgs: [{ id: otherOrg }] });
    for (const name of ['e-team', 'a-team', 'd-team', 'c-team', 'b-team']) {
      groups[name] = await world.group(org, name, name === 'b-team' || name === 'd-team' ? [member.id] : []);
    }
  }, 120_000);

  afterAll(async () => {
    await api?.close();
  });

  describe('GET /organizations/{organization}/groups: the visibility filter runs in SQL', () => {
    type GroupList = { groups: { id: string; name: string }[]; count: number };

    it('a plain member sees exactly Everyone and its own groups, with their count', async () => {
      const res = await call<GroupList>('GET', `/api/v2/organizations/${org}/groups`, member);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        groups: [
          expect.objectContaining({ id: org, name: 'Everyone' }),
          expect.objectContaining({ id: groups['b-team'], name: 'b-team' }),
          expect.objectContaining({ id: groups['d-team'], name: 'd-team' }),
        ],
        count: 3,
      });
    });

    it('pages within what the member may see (count stays the visible total)', async () => {
      const res = await call<GroupList>(
        'GET',
        `/api/v2/organizations/${org}/groups?limit=1&offset=2`,
        member,
      );
      expect(res.status).toBe(200);
      expect(res.body.groups.map((g) => g.id)).toEqual([groups['d-team']]);
      expect(res.body.count).toBe(3);
      const beyond = await call<GroupList>('GET', `/api/v2/organizations/${org}/groups?offset=3`, member);
      expect(beyond.body).toEqual({ groups: [], count: 3 });
    });

    it('an organization admin sees every group, Everyone first and then by name', async () => {
      const res = await call<GroupList>('GET', `/api/v2/organizations/${org}/groups`, admin);
      expect(res.status).toBe(200);
      expect(res.body.groups.map((g) => g.name)).toEqual([
        'Everyone',
        'a-team',
        'b-team',
        'c-team',
        'd-team',
        'e-team',
      ]);
      expect(res.body.count).toBe(6);
    });
  });

  describe('GET /groups/{group}/members', () => {
    let team: string;
    const names = ['mem-delta', 'mem-alpha', 'mem-echo', 'mem-charlie', 'mem-bravo'];
    const sorted = [...names].sort();

    beforeAll(async () => {
      const ids: string[] = [];
      for (const n of names) {
        const u = await insertMember(api.pg, {
          username: n,
          email: `${n}@example.com`,
          name: n.toUpperCase(),
          orgs: { [org]: [] },
        });
        ids.push(u.id);
      }
      team = await world.group(org, 'paging-team', ids);
    });

    it('pages the members by username with their fields and the total count', async () => {
      const all = await call<MemberList>('GET', `/api/v2/groups/${team}/members`, admin);
      expect(all.status).toBe(200);
      expect(all.body.count).toBe(5);
      expect(all.body.members.map((m) => m.username)).toEqual(sorted);
      expect(all.body.members[0]).toEqual({
        user_id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
        username: 'mem-alpha',
        name: 'MEM-ALPHA',
        created_at: expect.stringMatching(ISO) as unknown,
      });
      expect('count_capped' in all.body).toBe(false);

      const page = await call<MemberList>('GET', `/api/v2/groups/${team}/members?limit=2&offset=2`, admin);
      expect(page.status).toBe(200);
      expect(page.body.members.map((m) => m.username)).toEqual(sorted.slice(2, 4));
      expect(page.body.count).toBe(5);

      const beyond = await call<MemberList>('GET', `/api/v2/groups/${team}/members?offset=5`, admin);
      expect(beyond.body).toEqual({ members: [], count: 5 });
    });

    it("the Everyone group's members are the organization's members", async () => {
      const res = await call<MemberList>('GET', `/api/v2/groups/${org}/members?limit=1000`, member);
      expect(res.status).toBe(200);
      const expected = await api.sql<{ username: string }>(
        `SELECT u.username FROM organization_members m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = $1 ORDER BY u.username`,
        [org],
      );
      expect(expected.length).toBeGreaterThan(5);
      expect(res.body.members.map((m) => m.username)).toEqual(expected.map((r) => r.username));
      expect(res.body.count).toBe(expected.length);
    });

    it('404 when the caller may not read the group, or it does not exist; 401 without a token', async () => {
      expect((await call('GET', `/api/v2/groups/${groups['a-team']}/members`, member)).status).toBe(404);
      expect((await call('GET', `/api/v2/groups/${org}/members`, outsider)).status).toBe(404);
      expect((await call('GET', `/api/v2/groups/${MISSING_UUID}/members`, owner)).status).toBe(404);
      expect((await call('GET', `/api/v2/groups/${groups['b-team']}/members`, member)).status).toBe(200);
      expect((await call('GET', `/api/v2/groups/${team}/members`, null)).status).toBe(401);
    });

    it('400 naming the field for a bad limit, offset or group id', async () => {
      const cases: [string, string][] = [
        ['limit=0', 'limit'],
        ['limit=1001', 'limit'],
        ['limit=abc', 'limit'],
        ['offset=-1', 'offset'],
        ['offset=1.5', 'offset'],
        ['offset=100001', 'offset'],
      ];
      for (const [query, field] of cases) {
        const res = await call('GET', `/api/v2/groups/${team}/members?${query}`, admin);
        expect({ query, status: res.status, fields: fields(res) }).toEqual({
          query,
          status: 400,
          fields: [field],
        });
      }
      const bad = await call('GET', '/api/v2/groups/paging-team/members', admin);
      expect(bad.status).toBe(400);
      expect(fields(bad)).toEqual(['group']);
    });

    it('offset up to 100,000 is served (the ceiling is the same on every list)', async () => {
      const deepest = await call<MemberList>('GET', `/api/v2/groups/${team}/members?offset=100000`, admin);
      expect(deepest.body).toEqual({ members: [], count: 5 });
      const users = await call('GET', '/api/v2/users?offset=100001', owner);
      expect(users.status).toBe(400);
      expect(fields(users)).toEqual(['offset']);
    });
  });

  describe('GET /groups/{group}: member_count and at most 1,000 members', () => {
    let big: string;

    beforeAll(async () => {
      big = await world.group(org, 'big-team');
      await bulkMembers('bulk', 1050, org, big);
    });

    it('a group of 1,050 shows member_count 1050 and its first 1,000 members by username', async () => {
      const res = await call<GroupBody>('GET', `/api/v2/groups/${big}`, admin);
      expect(res.status).toBe(200);
      expect(res.body.member_count).toBe(1050);
      expect(res.body.members).toHaveLength(1000);
      expect(res.body.members[0].username).toBe('bulk-0001');
      expect(res.body.members[999].username).toBe('bulk-1000');
      expect(Object.keys(res.body.members[0]).sort()).toEqual(['name', 'user_id', 'username']);
    });

    it('the members route pages the rest', async () => {
      const rest = await call<MemberList>(
        'GET',
        `/api/v2/groups/${big}/members?limit=1000&offset=1000`,
        admin,
      );
      expect(rest.status).toBe(200);
      expect(rest.body.count).toBe(1050);
      expect(rest.body.members.map((m) => m.username)).toEqual(
        Array.from({ length: 50 }, (_, i) => `bulk-${String(1001 + i).padStart(4, '0')}`),
      );
    });

    it("the Everyone group's member_count is the organization's member count", async () => {
      const res = await call<GroupBody>('GET', `/api/v2/groups/${org}`, member);
      const [row] = await api.sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM organization_members WHERE organization_id = $1',
        [org],
      );
      expect(row.n).toBeGreaterThan(1050);
      expect(res.body.member_count).toBe(row.n);
      expect(res.body.members).toHaveLength(1000);
    });

    it('PATCH answers the same shape', async () => {
      const res = await call<GroupBody>('PATCH', `/api/v2/groups/${big}`, admin, { remove_users: [] });
      expect(res.status).toBe(200);
      expect(res.body.member_count).toBe(1050);
      expect(res.body.members).toHaveLength(1000);
    });
  });

  describe('GET /users/{user}/keys: paged in SQL', () => {
    type KeyList = { keys: { id: string; name: string | null }[]; count: number; count_capped?: boolean };

    it('pages the keys oldest first with the total count', async () => {
      const p = await world.person(owner, 'lists-keyholder');
      for (const name of ['k2', 'k3', 'k4']) {
        const made = await call('POST', `/api/v2/users/${p.id}/keys`, p, { name });
        expect(made.status).toBe(201);
      }
      const all = await call<KeyList>('GET', `/api/v2/users/${p.id}/keys`, p);
      expect(all.status).toBe(200);
      expect(all.body.keys.map((k) => k.name)).toEqual(['test', 'k2', 'k3', 'k4']);
      expect(all.body.count).toBe(4);
      const page = await call<KeyList>('GET', `/api/v2/users/me/keys?limit=2&offset=1`, p);
      expect(page.body).toEqual({ keys: [all.body.keys[1], all.body.keys[2]], count: 4 });
      const bad = await call('GET', `/api/v2/users/me/keys?limit=1001`, p);
      expect(bad.status).toBe(400);
      expect(fields(bad)).toEqual(['limit']);
    });

    it('a count above 10,000 stops there and says count_capped; the pages are still exact', async () => {
      const p = await world.person(owner, 'lists-hoarder');
      await api.sql(
        `INSERT INTO api_keys (id, user_id, name, secret_hash, created_at)
         SELECT substr(md5('hoard' || i), 1, 10), $1, 'bulk-' || i, '\\x00'::bytea, now() + i * interval '1 ms'
           FROM generate_series(1, 10050) i`,
        [p.id],
      );
      const first = await call<KeyList>('GET', `/api/v2/users/${p.id}/keys?limit=5`, owner);
      expect(first.status).toBe(200);
      expect(first.body.count).toBe(10_000);
      expect(first.body.count_capped).toBe(true);
      expect(first.body.keys.map((k) => k.name)).toEqual(['test', 'bulk-1', 'bulk-2', 'bulk-3', 'bulk-4']);
      // A page that is neither empty nor full tells the exact total.
      const last = await call<KeyList>('GET', `/api/v2/users/${p.id}/keys?limit=100&offset=10000`, owner);
      expect(last.body.keys).toHaveLength(51);
      expect(last.body.count).toBe(10_051);
      expect('count_capped' in last.body).toBe(false);
    });
  });
});
