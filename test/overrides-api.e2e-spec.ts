import { addGroupMember } from '@aigov/testing';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// User budget overrides over HTTP (docs/api.md) on real PostgreSQL.

const MAX = 1_000_000_000_000;
const MISSING_UUID = '00000000-0000-4000-8000-000000000000';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const NOT_A_MEMBER = {
  message: 'User is not a member of the referenced group.',
  validations: [{ field: 'group_id', detail: 'user must be a member of this group' }],
};
// Jest's asymmetric matchers are typed `any`; this keeps the object literals typed.
const isoTime = (): unknown => expect.stringMatching(ISO) as unknown;

interface OverrideBody {
  user_id: string;
  group_id: string;
  spend_limit_micros: number;
  created_at: string;
  updated_at: string;
}

interface ErrorBody {
  message: string;
  detail?: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

interface Money {
  usd: string;
  micros: number;
}

interface GroupRef {
  id: string;
  name: string;
}

interface OverrideDiff {
  group: { before: GroupRef | null; after: GroupRef | null };
  spend_limit: { before: Money | null; after: Money | null };
}

interface AuditRow {
  actor: string;
  actor_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  diff: OverrideDiff;
  request_id: string | null;
  reason: string | null;
}

const path = (user: string) => `/api/v2/users/${user}/ai/budget`;

describe('user budget overrides over HTTP (real PostgreSQL)', () => {
  let api: ApiHarness;
  let world: World;
  let owner: Person;
  let defaultOrg: string;
  let orgA: string;
  let orgB: string;
  /** The subject: a plain member of A, in `eng` and `sales` (not in `ops`). */
  let alice: Person;
  let siteUserAdmin: Person;
  let orgAdminA: Person;
  let orgUserAdminA: Person;
  let memberA: Person;
  let memberB: Person;
  let eng: string;
  let sales: string;
  let ops: string;
  let groupB: string;
  let seq = 0;

  /** A fresh request id, so that the audit entries of one request can be found. */
  const rid = () => `overrides-test-${process.pid}-${++seq}`;

  const call = <T = Record<string, unknown>>(...args: Parameters<ApiHarness['call']>) => api.call<T>(...args);

  const put = (who: Person | null, user: string, groupId: string, limit: number, requestId?: string) =>
    call<OverrideBody>('PUT', path(user), who, { group_id: groupId, spend_limit_micros: limit }, requestId);

  const errorOf = (res: ApiResponse<unknown>) => res.body as ErrorBody;

  /** The override row as stored (null when none). */
  async function stored(userId: string): Promise<{ group_id: string; spend_limit_micros: string } | null> {
    const rows = await api.sql<{ group_id: string; spend_limit_micros: string }>(
      'SELECT group_id, spend_limit_micros::text FROM user_ai_budget_overrides WHERE user_id = $1',
      [userId],
    );
    return rows[0] ?? null;
  }

  function overrideAudit(where: string, param: string): Promise<AuditRow[]> {
    return api.sql<AuditRow>(
      `SELECT actor, actor_id, action, resource_type, resource_id, diff, request_id, reason
         FROM audit_logs WHERE resource_type = 'user_ai_budget_override' AND ${where} = $1
        ORDER BY time`,
      [param],
    );
  }

  async function auditCount(): Promise<number> {
    const [row] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    return row.n;
  }

  /** A plain member of organization A with a token, in the given groups. */
  async function memberOfA(username: string, groups: string[] = []): Promise<Person> {
    const p = await world.person(owner, username, { orgs: [{ id: orgA }] });
    for (const g of groups) await addGroupMember(api.pg, g, p.id);
    return p;
  }

  beforeAll(async () => {
    api = await ApiHarness.start();
    world = new World(api);
    ({ owner, defaultOrg } = await world.bootstrap());
    orgA = await world.organization('org-a');
    orgB = await world.organization('org-b');
    alice = await world.person(owner, 'alice', { orgs: [{ id: orgA }] });
    siteUserAdmin = await world.person(owner, 'site-user-admin', { siteRoles: ['user-admin'] });
    orgAdminA = await world.person(owner, 'org-admin-a', {
      orgs: [{ id: orgA, roles: ['organization-admin'] }],
    });
    orgUserAdminA = await world.person(owner, 'org-user-admin-a', {
      orgs: [{ id: orgA, roles: ['organization-user-admin'] }],
    });
    memberA = await world.person(owner, 'member-a', { orgs: [{ id: orgA }] });
    memberB = await world.person(owner, 'member-b', { orgs: [{ id: orgB }] });
    eng = await world.group(orgA, 'eng', [alice.id, memberA.id]);
    sales = await world.group(orgA, 'sales', [alice.id]);
    ops = await world.group(orgA, 'ops', [memberA.id]);
    groupB = await world.group(orgB, 'b-team', [memberB.id]);
  });

  afterAll(async () => {
    await api?.close();
  });

  /** Make sure alice has no override before a test that needs a clean slate. */
  async function clearAlice(): Promise<void> {
    await api.sql('DELETE FROM user_ai_budget_overrides WHERE user_id = $1', [alice.id]);
  }

  describe('GET / PUT / DELETE', () => {
    beforeEach(clearAlice);

    it('creates then updates (200 both), with the documented shape', async () => {
      const created = await put(owner, alice.id, eng, 5_000_000);
      expect(created.status).toBe(200);
      expect(created.body).toEqual({
        user_id: alice.id,
        group_id: eng,
        spend_limit_micros: 5_000_000,
        created_at: isoTime(),
        updated_at: isoTime(),
      });
      const updated = await put(owner, alice.id, eng, 7_500_000);
      expect(updated.status).toBe(200);
      expect(updated.body).toEqual({
        user_id: alice.id,
        group_id: eng,
        spend_limit_micros: 7_500_000,
        created_at: created.body.created_at,
        updated_at: isoTime(),
      });
      const got = await call<OverrideBody>('GET', path(alice.id), owner);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(updated.body);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '7500000' });
    });

    it('reassigns to another group of the user', async () => {
      const created = await put(owner, alice.id, eng, 1_000_000);
      expect(created.status).toBe(200);
      const moved = await put(owner, alice.id, sales, 2_000_000);
      expect(moved.status).toBe(200);
      expect(moved.body).toEqual({
        user_id: alice.id,
        group_id: sales,
        spend_limit_micros: 2_000_000,
        created_at: created.body.created_at,
        updated_at: isoTime(),
      });
      expect(await stored(alice.id)).toEqual({ group_id: sales, spend_limit_micros: '2000000' });
    });

    it('accepts the Everyone group (group_id = organization id)', async () => {
      const res = await put(owner, alice.id, orgA, 3_000_000);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ user_id: alice.id, group_id: orgA, spend_limit_micros: 3_000_000 });
    });

    it('accepts zero and the maximum', async () => {
      const zero = await put(owner, alice.id, eng, 0);
      expect(zero.status).toBe(200);
      expect(zero.body.spend_limit_micros).toBe(0);
      const max = await put(owner, alice.id, eng, MAX);
      expect(max.status).toBe(200);
      expect(max.body.spend_limit_micros).toBe(MAX);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: String(MAX) });
    });

    it('a negative limit is 400', async () => {
      const res = await put(owner, alice.id, eng, -1);
      expect(res.status).toBe(400);
      expect(errorOf(res).validations).toEqual([
        { field: 'spend_limit_micros', detail: 'must not be negative' },
      ]);
      expect(await stored(alice.id)).toBeNull();
    });

    it('a limit above MAX_SPEND_LIMIT_MICROS is 400 (Must not exceed ...)', async () => {
      const res = await put(owner, alice.id, eng, MAX + 1);
      expect(res.status).toBe(400);
      expect(errorOf(res).validations).toEqual([
        { field: 'spend_limit_micros', detail: 'Must not exceed 1000000000000.' },
      ]);
      expect(await stored(alice.id)).toBeNull();
    });

    it('other invalid bodies are 400, each naming the field', async () => {
      const cases: [unknown, string][] = [
        [{ group_id: eng, spend_limit_micros: 1.5 }, 'spend_limit_micros'],
        [{ group_id: eng, spend_limit_micros: '100' }, 'spend_limit_micros'],
        [{ group_id: eng, spend_limit_micros: null }, 'spend_limit_micros'],
        [{ group_id: eng }, 'spend_limit_micros'],
        [{ group_id: 'nope', spend_limit_micros: 1 }, 'group_id'],
        [{ spend_limit_micros: 1 }, 'group_id'],
        [{ group_id: eng, spend_limit_micros: 1, extra: true }, 'extra'],
      ];
      for (const [body, field] of cases) {
        const res = await call('PUT', path(alice.id), owner, body);
        expect({ body, status: res.status }).toEqual({ body, status: 400 });
        expect(errorOf(res).validations.map((v) => v.field)).toContain(field);
      }
      expect(await stored(alice.id)).toBeNull();
    });

    it('numbers are strict: 1e3 and 100.0 are whole numbers, 1e30 is out of range; group ids are case-blind', async () => {
      const e3 = await api.request<OverrideBody>('PUT', path(alice.id), {
        token: owner.token,
        rawBody: `{"group_id": "${eng}", "spend_limit_micros": 1e3}`,
      });
      expect(e3.status).toBe(200);
      expect(e3.body.spend_limit_micros).toBe(1000);
      const hundred = await api.request<OverrideBody>('PUT', path(alice.id), {
        token: owner.token,
        rawBody: `{"group_id": "${eng}", "spend_limit_micros": 100.0}`,
      });
      expect(hundred.status).toBe(200);
      expect(hundred.body.spend_limit_micros).toBe(100);
      const huge = await api.request('PUT', path(alice.id), {
        token: owner.token,
        rawBody: `{"group_id": "${eng}", "spend_limit_micros": 1e30}`,
      });
      expect(huge.status).toBe(400);
      expect(errorOf(huge).validations.map((v) => v.field)).toEqual(['spend_limit_micros']);
      const upper = await put(owner, alice.id, sales.toUpperCase(), 5);
      expect(upper.status).toBe(200);
      expect(upper.body.group_id).toBe(sales);
      expect(await stored(alice.id)).toEqual({ group_id: sales, spend_limit_micros: '5' });
    });

    it('an unknown group is 404', async () => {
      const res = await put(owner, alice.id, MISSING_UUID, 1);
      expect(res.status).toBe(404);
      expect(await stored(alice.id)).toBeNull();
    });

    it('a group of an organization the user is not in is 400 with the exact body', async () => {
      const res = await put(owner, alice.id, groupB, 1);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ ...NOT_A_MEMBER, request_id: res.headers.get('x-request-id') });
      // so is that organization's Everyone group
      const everyoneB = await put(owner, alice.id, orgB, 1);
      expect(everyoneB.status).toBe(400);
      expect(everyoneB.body).toEqual({ ...NOT_A_MEMBER, request_id: everyoneB.headers.get('x-request-id') });
      expect(await stored(alice.id)).toBeNull();
    });

    it("a group of the user's organization the user is not in is the same 400", async () => {
      const res = await put(owner, alice.id, ops, 1);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ ...NOT_A_MEMBER, request_id: res.headers.get('x-request-id') });
      // also on a reassignment: the existing override stays as it was
      expect((await put(owner, alice.id, eng, 9)).status).toBe(200);
      const moved = await put(owner, alice.id, ops, 1);
      expect(moved.status).toBe(400);
      expect(moved.body).toEqual({ ...NOT_A_MEMBER, request_id: moved.headers.get('x-request-id') });
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '9' });
    });

    it('GET without an override is 404', async () => {
      const res = await call('GET', path(alice.id), owner);
      expect(res.status).toBe(404);
      expect(errorOf(res).request_id).toBe(res.headers.get('x-request-id'));
    });

    it('an unknown user is 404 (by username and by id) for GET, PUT and DELETE', async () => {
      for (const ref of ['nobody', MISSING_UUID]) {
        expect((await call('GET', path(ref), owner)).status).toBe(404);
        expect((await put(owner, ref, eng, 1)).status).toBe(404);
        expect((await call('DELETE', path(ref), owner)).status).toBe(404);
      }
    });

    it('`me` works for GET, PUT and DELETE (owner on themself)', async () => {
      expect((await call('GET', path('me'), owner)).status).toBe(404);
      const created = await put(owner, 'me', defaultOrg, 4_000_000);
      expect(created.status).toBe(200);
      expect(created.body).toMatchObject({
        user_id: owner.id,
        group_id: defaultOrg,
        spend_limit_micros: 4_000_000,
      });
      const got = await call<OverrideBody>('GET', path('me'), owner);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(created.body);
      expect((await call('DELETE', path('me'), owner)).status).toBe(204);
      expect((await call('GET', path('me'), owner)).status).toBe(404);
      expect(await stored(owner.id)).toBeNull();
    });

    it('the username and the id both name the user', async () => {
      const byName = await put(owner, alice.username, eng, 11);
      expect(byName.status).toBe(200);
      expect(byName.body.user_id).toBe(alice.id);
      const byId = await call<OverrideBody>('GET', path(alice.id), owner);
      expect(byId.body).toEqual(byName.body);
      const byNameGet = await call<OverrideBody>('GET', path(alice.username), owner);
      expect(byNameGet.body).toEqual(byName.body);
      const byUpperId = await call<OverrideBody>('GET', path(alice.id.toUpperCase()), owner);
      expect(byUpperId.status).toBe(200);
      expect(byUpperId.body).toEqual(byName.body);
      expect((await call('DELETE', path(alice.username), owner)).status).toBe(204);
      expect(await stored(alice.id)).toBeNull();
    });

    it('DELETE round trip: 204 with no body, then GET 404; DELETE without an override is 404', async () => {
      expect((await put(owner, alice.id, eng, 1)).status).toBe(200);
      const del = await call('DELETE', path(alice.id), owner);
      expect(del.status).toBe(204);
      expect(del.body).toBeNull();
      expect((await call('GET', path(alice.id), owner)).status).toBe(404);
      const again = await call('DELETE', path(alice.id), owner);
      expect(again.status).toBe(404);
      expect(errorOf(again).request_id).toBe(again.headers.get('x-request-id'));
    });
  });

  describe('order of checks (docs/api.md)', () => {
    beforeEach(clearAlice);

    it('an unknown user with an invalid body is 404, not 400', async () => {
      for (const ref of ['nobody', MISSING_UUID]) {
        const res = await call('PUT', path(ref), owner, { group_id: 'nope', spend_limit_micros: -1 });
        expect(res.status).toBe(404);
      }
      // a user the caller cannot see is the same 404
      const hidden = await call('PUT', path(alice.id), memberB, { group_id: 'nope', spend_limit_micros: -1 });
      expect(hidden.status).toBe(404);
    });

    it('a visible user with an invalid body and an unknown group is 400', async () => {
      const res = await put(owner, alice.id, MISSING_UUID, -1);
      expect(res.status).toBe(400);
      expect(errorOf(res).validations).toEqual([
        { field: 'spend_limit_micros', detail: 'must not be negative' },
      ]);
      const tooLarge = await put(owner, alice.id, MISSING_UUID, MAX + 1);
      expect(tooLarge.status).toBe(400);
    });

    it('a visible user with a valid body and an unknown group is 404', async () => {
      const res = await put(owner, alice.id, MISSING_UUID, 1);
      expect(res.status).toBe(404);
      // a group the caller cannot see is the same 404, before any 403
      const hidden = await put(orgAdminA, alice.id, groupB, 1);
      expect(hidden.status).toBe(404);
    });

    it('permission failures (403) come before the membership 400', async () => {
      // alice is not in ops; the organization's admins see both alice and ops but may not write
      // overrides (site-wide user update is missing): 403, not the membership 400
      for (const who of [orgAdminA, orgUserAdminA]) {
        const res = await put(who, alice.id, ops, 1);
        expect(res.status).toBe(403);
      }
      // the same on a reassignment away from an existing override
      expect((await put(owner, alice.id, eng, 3)).status).toBe(200);
      expect((await put(orgAdminA, alice.id, ops, 1)).status).toBe(403);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '3' });
    });
  });

  describe('roles (docs/permissions.md)', () => {
    beforeEach(clearAlice);

    it('organization-level readers see an override only when its group is in their organization', async () => {
      // A member of B with an override on B's group; an organization admin of A adds them to A
      // (member management needs no read right on the user), which makes the user readable to A.
      const roamer = await world.person(owner, 'roamer', { orgs: [{ id: orgB }] });
      await addGroupMember(api.pg, groupB, roamer.id);
      expect((await put(owner, roamer.id, groupB, 4_200_000)).status).toBe(200);
      const added = await call(
        'PUT',
        `/api/v2/organizations/${orgA}/members/${roamer.username}`,
        orgAdminA,
        {},
      );
      expect(added.status).toBe(200);
      expect((await call('GET', `/api/v2/users/${roamer.id}`, orgAdminA)).status).toBe(200);

      for (const who of [orgAdminA, orgUserAdminA]) {
        const hidden = await call<ErrorBody>('GET', path(roamer.id), who);
        expect(hidden.status).toBe(404);
        // The same answer as no override at all: neither the group id nor the limit leaks.
        expect(hidden.body.message).toBe('User has no AI budget override.');
        expect(JSON.stringify(hidden.body)).not.toContain(groupB);
      }
      // Readers of B, the user and site readers still see it.
      const adminB = await world.person(owner, 'override-admin-b', {
        orgs: [{ id: orgB, roles: ['organization-admin'] }],
      });
      for (const who of [adminB, roamer, owner]) {
        const seen = await call<OverrideBody>('GET', path(roamer.id), who);
        expect(seen.status).toBe(200);
        expect(seen.body).toMatchObject({ group_id: groupB, spend_limit_micros: 4_200_000 });
      }
      // Moved to A's Everyone group, it becomes visible to A's readers.
      expect((await put(owner, roamer.id, orgA, 1_000)).status).toBe(200);
      expect((await call('GET', path(roamer.id), orgAdminA)).status).toBe(200);
    });

    it('the owner and a site user-admin can do everything', async () => {
      for (const who of [owner, siteUserAdmin]) {
        const created = await put(who, alice.id, eng, 10);
        expect(created.status).toBe(200);
        const moved = await put(who, alice.username, sales, 20);
        expect(moved.status).toBe(200);
        expect(moved.body).toMatchObject({ group_id: sales, spend_limit_micros: 20 });
        const got = await call<OverrideBody>('GET', path(alice.id), who);
        expect(got.status).toBe(200);
        expect(got.body).toEqual(moved.body);
        expect((await call('DELETE', path(alice.id), who)).status).toBe(204);
        expect(await stored(alice.id)).toBeNull();
      }
    });

    it("organization-admin and organization-user-admin of the user's org read (200) but may not write (403)", async () => {
      const created = await put(owner, alice.id, eng, 123);
      expect(created.status).toBe(200);
      for (const who of [orgAdminA, orgUserAdminA]) {
        const got = await call<OverrideBody>('GET', path(alice.id), who);
        expect(got.status).toBe(200);
        expect(got.body).toEqual(created.body);
        expect((await put(who, alice.id, eng, 1)).status).toBe(403);
        expect((await put(who, alice.id, orgA, 1)).status).toBe(403);
        expect((await call('DELETE', path(alice.id), who)).status).toBe(403);
      }
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '123' });
      expect((await call('GET', path(alice.id), owner)).body).toEqual(created.body);
    });

    it('the user reads their own override (200) but may not write it (403)', async () => {
      const created = await put(owner, alice.id, eng, 55);
      for (const ref of ['me', alice.id, alice.username]) {
        const got = await call<OverrideBody>('GET', path(ref), alice);
        expect(got.status).toBe(200);
        expect(got.body).toEqual(created.body);
      }
      expect((await put(alice, 'me', eng, 1_000_000)).status).toBe(403);
      expect((await put(alice, alice.id, eng, 1_000_000)).status).toBe(403);
      expect((await call('DELETE', path('me'), alice)).status).toBe(403);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '55' });
    });

    it('another plain member of the organization and a member of another organization get 404', async () => {
      expect((await put(owner, alice.id, eng, 77)).status).toBe(200);
      for (const who of [memberA, memberB]) {
        expect((await call('GET', path(alice.id), who)).status).toBe(404);
        expect((await call('GET', path(alice.username), who)).status).toBe(404);
        expect((await put(who, alice.id, eng, 1)).status).toBe(404);
        expect((await call('DELETE', path(alice.id), who)).status).toBe(404);
      }
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '77' });
    });

    it('no token is 401, before anything else', async () => {
      expect((await put(owner, alice.id, eng, 77)).status).toBe(200);
      for (const [method, body] of [
        ['GET', undefined],
        ['PUT', { group_id: 'nope', spend_limit_micros: -1 }],
        ['DELETE', undefined],
      ] as const) {
        const res = await call(method, path(alice.id), null, body);
        expect(res.status).toBe(401);
        expect(errorOf(res).request_id).toBe(res.headers.get('x-request-id'));
      }
      expect((await call('GET', path('nobody'), null)).status).toBe(401);
      const badToken = await api.request('GET', path(alice.id), {
        token: 'abcdefghij-notavalidsecretatall123456',
      });
      expect(badToken.status).toBe(401);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '77' });
    });
  });

  describe('cascades: one audit entry each, by system:database, with the request id', () => {
    /** The override entries written by the request with this id. */
    const cascadeEntries = (requestId: string) => overrideAudit('request_id', requestId);

    function expectCascadeEntry(
      rows: AuditRow[],
      userId: string,
      group: GroupRef,
      money: Money,
      reason: string,
      requestId: string,
    ): void {
      expect(rows).toEqual([
        {
          actor: 'system:database',
          actor_id: null,
          action: 'delete',
          resource_type: 'user_ai_budget_override',
          resource_id: userId,
          diff: expect.objectContaining({
            group: { before: group, after: null },
            spend_limit: { before: money, after: null },
          }) as unknown,
          request_id: requestId,
          reason,
        },
      ]);
    }

    it('removing the user from the attributed group (PATCH remove_users) deletes the override', async () => {
      const u = await memberOfA('cascade-pgm', [eng, sales]);
      expect((await put(owner, u.id, eng, 5_000_000)).status).toBe(200);

      // removing them from another group changes nothing
      const other = rid();
      const patchOther = await call(
        'PATCH',
        `/api/v2/groups/${sales}`,
        owner,
        { remove_users: [u.id] },
        other,
      );
      expect(patchOther.status).toBe(200);
      expect(await stored(u.id)).toEqual({ group_id: eng, spend_limit_micros: '5000000' });
      expect(await cascadeEntries(other)).toEqual([]);

      const requestId = rid();
      const res = await call('PATCH', `/api/v2/groups/${eng}`, owner, { remove_users: [u.id] }, requestId);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      expect(await stored(u.id)).toBeNull();
      expect((await call('GET', path(u.id), owner)).status).toBe(404);
      expectCascadeEntry(
        await cascadeEntries(requestId),
        u.id,
        { id: eng, name: 'eng' },
        { usd: '$5.00', micros: 5_000_000 },
        'membership_removed',
        requestId,
      );
      expect(await overrideAudit('resource_id', u.id)).toHaveLength(2); // the create, the cascade
    });

    it('removing the user from the organization deletes an override on Everyone', async () => {
      const u = await memberOfA('cascade-org-everyone', [eng]);
      expect((await put(owner, u.id, orgA, 1_500_000)).status).toBe(200);
      const requestId = rid();
      const res = await call(
        'DELETE',
        `/api/v2/organizations/${orgA}/members/${u.id}`,
        owner,
        undefined,
        requestId,
      );
      expect(res.status).toBe(204);
      expect(await stored(u.id)).toBeNull();
      expectCascadeEntry(
        await cascadeEntries(requestId),
        u.id,
        { id: orgA, name: 'Everyone' },
        { usd: '$1.50', micros: 1_500_000 },
        'membership_removed',
        requestId,
      );
    });

    it("removing the user from the organization deletes an override on another of the organization's groups", async () => {
      const u = await memberOfA('cascade-org-group', [eng, sales]);
      expect((await put(owner, u.id, sales, 9)).status).toBe(200);
      const requestId = rid();
      const res = await call(
        'DELETE',
        `/api/v2/organizations/${orgA}/members/${u.username}`,
        owner,
        undefined,
        requestId,
      );
      expect(res.status).toBe(204);
      expect(await stored(u.id)).toBeNull();
      const memberships = await api.sql('SELECT 1 FROM group_members WHERE user_id = $1', [u.id]);
      expect(memberships).toEqual([]);
      expectCascadeEntry(
        await cascadeEntries(requestId),
        u.id,
        { id: sales, name: 'sales' },
        { usd: '$0.000009', micros: 9 },
        'membership_removed',
        requestId,
      );
    });

    it('deleting the group deletes the override', async () => {
      const u = await memberOfA('cascade-group-deleted');
      const created = await call<{ id: string }>('POST', `/api/v2/organizations/${orgA}/groups`, owner, {
        name: 'doomed',
      });
      expect(created.status).toBe(201);
      const doomed = created.body.id;
      expect((await call('PATCH', `/api/v2/groups/${doomed}`, owner, { add_users: [u.id] })).status).toBe(
        200,
      );
      expect((await put(owner, u.id, doomed, 2_500_000)).status).toBe(200);
      const requestId = rid();
      const res = await call('DELETE', `/api/v2/groups/${doomed}`, owner, undefined, requestId);
      expect(res.status).toBe(204);
      expect(await stored(u.id)).toBeNull();
      expectCascadeEntry(
        await cascadeEntries(requestId),
        u.id,
        { id: doomed, name: 'doomed' },
        { usd: '$2.50', micros: 2_500_000 },
        'group_deleted',
        requestId,
      );
    });

    it('deleting the user deletes the override', async () => {
      const u = await memberOfA('cascade-user-deleted', [eng]);
      expect((await put(owner, u.id, eng, 1_234_567)).status).toBe(200);
      const requestId = rid();
      const res = await call('DELETE', `/api/v2/users/${u.id}`, owner, undefined, requestId);
      expect(res.status).toBe(204);
      expect(await stored(u.id)).toBeNull();
      expectCascadeEntry(
        await cascadeEntries(requestId),
        u.id,
        { id: eng, name: 'eng' },
        { usd: '$1.234567', micros: 1_234_567 },
        'user_deleted',
        requestId,
      );
    });
  });

  describe('audit for API writes (docs/api.md)', () => {
    it('create, write (same group), write (reassignment) and delete, each one entry by the caller', async () => {
      const u = await memberOfA('audited', [eng, sales]);
      const ids = [rid(), rid(), rid(), rid()];
      expect((await put(siteUserAdmin, u.id, eng, 5_000_000, ids[0])).status).toBe(200);
      expect((await put(siteUserAdmin, u.id, eng, 7_250_000, ids[1])).status).toBe(200);
      expect((await put(owner, u.username, sales, 9, ids[2])).status).toBe(200);
      expect((await call('DELETE', path(u.id), owner, undefined, ids[3])).status).toBe(204);

      const rows = await overrideAudit('resource_id', u.id);
      const common = { resource_type: 'user_ai_budget_override', resource_id: u.id, reason: null };
      const engRef = { id: eng, name: 'eng' };
      const salesRef = { id: sales, name: 'sales' };
      expect(rows).toEqual([
        {
          ...common,
          actor: 'site-user-admin',
          actor_id: siteUserAdmin.id,
          action: 'create',
          request_id: ids[0],
          diff: expect.objectContaining({
            group: { before: null, after: engRef },
            spend_limit: { before: null, after: { usd: '$5.00', micros: 5_000_000 } },
          }) as unknown,
        },
        {
          ...common,
          actor: 'site-user-admin',
          actor_id: siteUserAdmin.id,
          action: 'write',
          request_id: ids[1],
          diff: expect.objectContaining({
            group: { before: engRef, after: engRef },
            spend_limit: {
              before: { usd: '$5.00', micros: 5_000_000 },
              after: { usd: '$7.25', micros: 7_250_000 },
            },
          }) as unknown,
        },
        {
          ...common,
          actor: 'owner',
          actor_id: owner.id,
          action: 'write',
          request_id: ids[2],
          diff: expect.objectContaining({
            group: { before: engRef, after: salesRef },
            spend_limit: {
              before: { usd: '$7.25', micros: 7_250_000 },
              after: { usd: '$0.000009', micros: 9 },
            },
          }) as unknown,
        },
        {
          ...common,
          actor: 'owner',
          actor_id: owner.id,
          action: 'delete',
          request_id: ids[3],
          diff: expect.objectContaining({
            group: { before: salesRef, after: null },
            spend_limit: { before: { usd: '$0.000009', micros: 9 }, after: null },
          }) as unknown,
        },
      ]);
      // each request wrote exactly its one entry
      for (const id of ids) {
        const [row] = await api.sql<{ n: number }>(
          'SELECT count(*)::int AS n FROM audit_logs WHERE request_id = $1',
          [id],
        );
        expect(row.n).toBe(1);
      }
    });

    it('failed requests write no entry', async () => {
      await clearAlice();
      expect((await put(owner, alice.id, eng, 42)).status).toBe(200);
      const before = await auditCount();
      const failures: [number, () => Promise<ApiResponse<unknown>>][] = [
        [400, () => put(owner, alice.id, eng, -1)],
        [400, () => put(owner, alice.id, eng, MAX + 1)],
        [400, () => put(owner, alice.id, ops, 1)],
        [400, () => put(owner, alice.id, groupB, 1)],
        [404, () => put(owner, alice.id, MISSING_UUID, 1)],
        [404, () => put(owner, 'nobody', eng, 1)],
        [403, () => put(orgAdminA, alice.id, eng, 1)],
        [403, () => call('DELETE', path(alice.id), orgAdminA)],
        [403, () => put(alice, 'me', eng, 1)],
        [403, () => call('DELETE', path('me'), alice)],
        [404, () => put(memberA, alice.id, eng, 1)],
        [404, () => call('DELETE', path(alice.id), memberA)],
        [404, () => call('DELETE', path(memberA.id), owner)], // no override
        [401, () => put(null, alice.id, eng, 1)],
      ];
      const statuses: number[] = [];
      for (const [, send] of failures) statuses.push((await send()).status);
      expect(statuses).toEqual(failures.map(([status]) => status));
      expect(await auditCount()).toBe(before);
      expect(await stored(alice.id)).toEqual({ group_id: eng, spend_limit_micros: '42' });
    });
  });
});

describe('user budget overrides with AI_BUDGETS_ENABLED=false', () => {
  let api: ApiHarness;
  let owner: Person;
  let defaultOrg: string;

  beforeAll(async () => {
    api = await ApiHarness.start({ AI_BUDGETS_ENABLED: 'false' });
    ({ owner, defaultOrg } = await new World(api).bootstrap());
  });

  afterAll(async () => {
    await api?.close();
  });

  it('GET, PUT and DELETE answer 403 with the exact message (after 401)', async () => {
    const cases: [string, unknown][] = [
      ['GET', undefined],
      ['PUT', { group_id: defaultOrg, spend_limit_micros: 1 }],
      ['DELETE', undefined],
    ];
    for (const [method, body] of cases) {
      const res = await api.request<ErrorBody>(method, path('me'), { token: owner.token, body });
      expect(res.status).toBe(403);
      expect(res.body.message).toBe('AI budgets are disabled on this deployment.');
      expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
      expect((await api.request(method, path('me'), { body })).status).toBe(401);
    }
    const rows = await api.sql('SELECT 1 FROM user_ai_budget_overrides');
    expect(rows).toEqual([]);
    const audit = await api.sql(`SELECT 1 FROM audit_logs WHERE resource_type = 'user_ai_budget_override'`);
    expect(audit).toEqual([]);
  });
});
