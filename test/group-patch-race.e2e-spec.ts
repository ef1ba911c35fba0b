import { ApiHarness, World, type Person } from './helpers/api';

// Concurrent PATCH /groups/{id} with the same users in crossing orders: once deadlock-prone (rows
// locked in request order) and able to end in a state no serial order gives. Every answer must be
// 200 (never a 5xx) and every final state one that some serial order of the requests produces.

const ROUNDS = 100;

describe('concurrent PATCH of one group', () => {
  let api: ApiHarness;
  let owner: Person;
  let group: string;
  let a: string;
  let b: string;
  let c: string;

  beforeAll(async () => {
    api = await ApiHarness.start({ DATABASE_POOL_SIZE: '6' });
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
    const org = boot.defaultOrg;
    [a, b, c] = (
      await Promise.all(['ra', 'rb', 'rc'].map((u) => world.person(owner, u, { orgs: [{ id: org }] })))
    ).map((p) => p.id);
    group = await world.group(org, 'racers');
  });

  afterAll(async () => {
    await api.close();
  });

  const patch = (body: { add_users?: string[]; remove_users?: string[] }) =>
    api.call('PATCH', `/api/v2/groups/${group}`, owner, body);

  async function members(): Promise<string[]> {
    const rows = await api.sql<{ user_id: string }>(
      'SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id',
      [group],
    );
    return rows.map((r) => r.user_id);
  }

  const sorted = (ids: string[]) => [...ids].sort();

  it('adds and removes the same users in crossing orders without a 5xx, ending in a serial state', async () => {
    const statuses = new Map<number, number>();
    const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
    const auditBefore = await api.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_logs WHERE resource_type = 'group_member'`,
    );
    let changes = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Everyone adds the same users in different orders: all end up members, added once each.
      const adds = await Promise.all([
        patch({ add_users: [a, b] }),
        patch({ add_users: [b, a] }),
        patch({ add_users: [c, b, a] }),
        patch({ add_users: [a, c] }),
      ]);
      adds.forEach((r) => count(r.status));
      expect(await members()).toEqual(sorted([a, b, c]));
      changes += 3;

      // Everyone removes them in different orders.
      const removes = await Promise.all([
        patch({ remove_users: [a, b, c] }),
        patch({ remove_users: [c, b, a] }),
        patch({ remove_users: [b, a] }),
      ]);
      removes.forEach((r) => count(r.status));
      expect(await members()).toEqual([]);
      changes += 3;

      // Each adds one and removes the other: a serial order ends with exactly one of them.
      const swaps = await Promise.all([
        patch({ add_users: [a], remove_users: [b] }),
        patch({ add_users: [b], remove_users: [a] }),
      ]);
      swaps.forEach((r) => count(r.status));
      const after = await members();
      expect([[a], [b]].map(sorted)).toContainEqual(after);
      changes += 3; // one add, then the other request's add and its removal of the first
      await api.sql('DELETE FROM group_members WHERE group_id = $1', [group]);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 200: ROUNDS * 9 });
    // One audit entry per membership really added or removed, none for the no-ops.
    const auditAfter = await api.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_logs WHERE resource_type = 'group_member'`,
    );
    expect(auditAfter[0].n - auditBefore[0].n).toBe(changes);
  }, 300_000);
});
