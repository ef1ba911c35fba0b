import type { SystemActor } from '@aigov/contracts';
import type { OrgRole, SiteRole } from '@aigov/db';
import type { UserActor } from './actor';
import { ROLE_TABLE, can, grantableOrgRoles, type Action } from './policy';

const ORG_A = 'aaaaaaaa-0000-4000-8000-000000000000';
const ORG_B = 'bbbbbbbb-0000-4000-8000-000000000000';
const GROUP_A = 'aaaaaaaa-1111-4000-8000-000000000000';

function user(
  opts: { id?: string; site?: SiteRole[]; orgs?: Record<string, OrgRole[]>; groups?: string[] } = {},
): UserActor {
  return {
    kind: 'user',
    id: opts.id ?? 'u-1',
    username: 'someone',
    status: 'active',
    siteRoles: new Set(opts.site ?? []),
    orgRoles: new Map(Object.entries(opts.orgs ?? {}).map(([o, r]) => [o, new Set(r)])),
    groupIds: new Set(opts.groups ?? []),
  };
}

const groupA = { organizationIds: [ORG_A], groupId: GROUP_A };
const everyoneA = { organizationIds: [ORG_A], groupId: ORG_A };

describe('can (docs/permissions.md)', () => {
  it.each<[string, UserActor, Action, object, boolean]>([
    ['owner reads any group', user({ site: ['owner'] }), 'group.read', groupA, true],
    ['auditor reads any group', user({ site: ['auditor'] }), 'group.read', groupA, true],
    ['ai-gateway does not read groups', user({ site: ['ai-gateway'] }), 'group.read', groupA, false],
    [
      'org auditor of the group org reads it',
      user({ orgs: { [ORG_A]: ['organization-auditor'] } }),
      'group.read',
      groupA,
      true,
    ],
    [
      'org admin of another org does not',
      user({ orgs: { [ORG_B]: ['organization-admin'] } }),
      'group.read',
      groupA,
      false,
    ],
    [
      'a group member reads it',
      user({ orgs: { [ORG_A]: [] }, groups: [GROUP_A] }),
      'group.read',
      groupA,
      true,
    ],
    [
      'an org member outside the group does not',
      user({ orgs: { [ORG_A]: [] } }),
      'group.read',
      groupA,
      false,
    ],
    [
      'every org member reads the Everyone group',
      user({ orgs: { [ORG_A]: [] } }),
      'group.read',
      everyoneA,
      true,
    ],
    [
      'a member of another org does not read Everyone',
      user({ orgs: { [ORG_B]: [] } }),
      'group.read',
      everyoneA,
      false,
    ],
    [
      'group member cannot update',
      user({ orgs: { [ORG_A]: [] }, groups: [GROUP_A] }),
      'group.update',
      groupA,
      false,
    ],
    [
      'org user-admin updates groups of its org',
      user({ orgs: { [ORG_A]: ['organization-user-admin'] } }),
      'group.update',
      groupA,
      true,
    ],
    [
      'org auditor cannot update',
      user({ orgs: { [ORG_A]: ['organization-auditor'] } }),
      'group.update',
      groupA,
      false,
    ],
    ['user-admin updates any group', user({ site: ['user-admin'] }), 'group.update', groupA, true],
    ['auditor cannot update', user({ site: ['auditor'] }), 'group.update', groupA, false],
    ['a user reads themself', user({ id: 'me' }), 'user.read', { userId: 'me', organizationIds: [] }, true],
    [
      'a plain member cannot read another user',
      user({ orgs: { [ORG_A]: [] } }),
      'user.read',
      { userId: 'x', organizationIds: [ORG_A] },
      false,
    ],
    [
      'org admin reads users of its org',
      user({ orgs: { [ORG_A]: ['organization-admin'] } }),
      'user.read',
      { userId: 'x', organizationIds: [ORG_A] },
      true,
    ],
    [
      'org admin cannot update users site-wide',
      user({ orgs: { [ORG_A]: ['organization-admin'] } }),
      'user.update',
      { userId: 'x', organizationIds: [ORG_A] },
      false,
    ],
    ['any authenticated user reads prices', user(), 'price.read', {}, true],
    ['only owners write prices', user({ site: ['user-admin'] }), 'price.write', {}, false],
    ['owner syncs prices', user({ site: ['owner'] }), 'price.sync', {}, true],
    ['auditor reads the audit log', user({ site: ['auditor'] }), 'audit.read', {}, true],
    [
      'org admin does not read the audit log',
      user({ orgs: { [ORG_A]: ['organization-admin'] } }),
      'audit.read',
      {},
      false,
    ],
    ['ai-gateway enforces budgets', user({ site: ['ai-gateway'] }), 'budget.enforce', {}, true],
    ['a plain user does not enforce budgets', user(), 'budget.enforce', {}, false],
  ])('%s', (_name, actor, action, subject, expected) => {
    expect(can(actor, action, subject)).toBe(expected);
  });

  it('system actors get only what the table names for them', () => {
    const worker: SystemActor = { kind: 'system', name: 'system:pricing-worker' };
    const db: SystemActor = { kind: 'system', name: 'system:database' };
    const granted = (Object.keys(ROLE_TABLE) as Action[]).filter((a) => can(worker, a, groupA));
    expect(granted).toEqual(['price.read']);
    expect((Object.keys(ROLE_TABLE) as Action[]).filter((a) => can(db, a, groupA))).toEqual([]);
  });

  it('no actor without roles or memberships is granted anything but authenticated reads', () => {
    const nobody = user();
    const granted = (Object.keys(ROLE_TABLE) as Action[]).filter((a) => can(nobody, a, groupA));
    expect(granted).toEqual(['price.read']);
  });
});

describe('grantableOrgRoles (CONTRACT 3: nobody grants more than they hold)', () => {
  const all = ['organization-admin', 'organization-user-admin', 'organization-auditor'];
  it.each<[string, UserActor | SystemActor, string[]]>([
    ['owner: every role anywhere', user({ site: ['owner'] }), all],
    ['site user-admin: every role anywhere', user({ site: ['user-admin'] }), all],
    ['site auditor: none', user({ site: ['auditor'] }), []],
    ['organization-admin of A: every role', user({ orgs: { [ORG_A]: ['organization-admin'] } }), all],
    [
      'organization-user-admin of A: only organization-user-admin and organization-auditor',
      user({ orgs: { [ORG_A]: ['organization-user-admin'] } }),
      ['organization-user-admin', 'organization-auditor'],
    ],
    ['organization-auditor of A: none', user({ orgs: { [ORG_A]: ['organization-auditor'] } }), []],
    ['organization-admin of B: none in A', user({ orgs: { [ORG_B]: ['organization-admin'] } }), []],
    ['a system actor: none', { kind: 'system', name: 'system:membership-listener' }, []],
  ])('%s', (_title, actor, expected) => {
    expect([...grantableOrgRoles(actor, ORG_A)].sort()).toEqual([...expected].sort());
  });

  it('a suspended owner grants nothing and may do nothing', () => {
    const suspended = { ...user({ site: ['owner'] }), status: 'suspended' as const };
    expect([...grantableOrgRoles(suspended, ORG_A)]).toEqual([]);
    expect(can(suspended, 'price.read')).toBe(false);
    expect(can(suspended, 'group.read', groupA)).toBe(false);
  });
});
