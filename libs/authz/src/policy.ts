import type { SystemActorName } from '@aigov/contracts';
import type { OrgRole, SiteRole } from '@aigov/db';
import type { Actor } from './actor';

/**
 * docs/permissions.md as data. A rule grants an action to: site roles; organization roles in an
 * organization the subject belongs to; members of the subject group (or of the subject
 * organization); the subject user themself; every authenticated user; named system actors.
 * Nothing is granted by default and no actor is granted everything.
 */
export interface Rule {
  site?: readonly SiteRole[];
  org?: readonly OrgRole[];
  groupMember?: boolean;
  orgMember?: boolean;
  self?: boolean;
  authenticated?: boolean;
  system?: readonly SystemActorName[];
}

const ORG_ADMINS: readonly OrgRole[] = ['organization-admin', 'organization-user-admin'];
const ORG_READERS: readonly OrgRole[] = [
  'organization-admin',
  'organization-user-admin',
  'organization-auditor',
];

export const ROLE_TABLE = {
  'group.read': { site: ['owner', 'user-admin', 'auditor'], org: ORG_READERS, groupMember: true },
  'group.update': { site: ['owner', 'user-admin'], org: ORG_ADMINS },
  'user.read': { site: ['owner', 'user-admin', 'auditor'], org: ORG_READERS, self: true },
  'user.list': { site: ['owner', 'user-admin', 'auditor'] },
  'user.create': { site: ['owner', 'user-admin'] },
  'user.update': { site: ['owner', 'user-admin'] },
  'user.delete': { site: ['owner', 'user-admin'] },
  'user.roles.update': { site: ['owner'] },
  // A user-admin may not suspend an owner: UserStore.setStatus adds that rule.
  'user.status.update': { site: ['owner', 'user-admin'] },
  'user.keys.manage': { site: ['owner', 'user-admin'], self: true },
  'organization.create': { site: ['owner'] },
  'organization.read': { site: ['owner', 'user-admin', 'auditor'], org: ORG_READERS, orgMember: true },
  'organization.members.read': {
    site: ['owner', 'user-admin', 'auditor'],
    org: ORG_READERS,
    orgMember: true,
  },
  'organization.members.manage': { site: ['owner', 'user-admin'], org: ORG_ADMINS },
  'organization.groups.create': { site: ['owner', 'user-admin'], org: ORG_ADMINS },
  'price.read': { authenticated: true, system: ['system:pricing-worker'] },
  'price.write': { site: ['owner'] },
  'price.sync': { site: ['owner'] },
  'audit.read': { site: ['owner', 'auditor'] },
  'budget.enforce': { site: ['owner', 'ai-gateway'], system: ['system:ai-gateway'] },
  // Expiring reservations, publishing threshold events, reconciling counters with the ledger.
  'spend.maintain': { system: ['system:budget-api'] },
  // Identities, organizations, groups and memberships as the identity system publishes them.
  'identity.sync': { system: ['system:membership-listener'] },
} as const satisfies Record<string, Rule>;

export type Action = keyof typeof ROLE_TABLE;

/** What the action is about: the organizations it lives in, the group, the user. */
export interface Subject {
  organizationIds?: readonly string[];
  groupId?: string;
  userId?: string;
}

export function can(actor: Actor, action: Action, subject: Subject = {}): boolean {
  const rule: Rule = ROLE_TABLE[action];
  if (actor.kind === 'system') return rule.system?.includes(actor.name) ?? false;
  // Authentication refuses suspended users already; a suspended actor built elsewhere gets nothing.
  if (actor.status !== 'active') return false;
  if (rule.authenticated) return true;
  if (rule.site?.some((r) => actor.siteRoles.has(r))) return true;
  if (rule.self && subject.userId !== undefined && subject.userId === actor.id) return true;
  const orgs = subject.organizationIds ?? [];
  if (rule.org && orgs.some((o) => rule.org?.some((r) => actor.orgRoles.get(o)?.has(r)))) return true;
  if (rule.orgMember && orgs.some((o) => actor.orgRoles.has(o))) return true;
  if (rule.groupMember && subject.groupId !== undefined) {
    if (actor.groupIds.has(subject.groupId)) return true;
    // The Everyone group's id is its organization's id; its members are the organization's.
    if (orgs.includes(subject.groupId) && actor.orgRoles.has(subject.groupId)) return true;
  }
  return false;
}

/**
 * Granting organization roles (CONTRACT 3): nobody grants a role more powerful than the ones
 * they hold. Owners, user-admins and organization-admins grant any organization role; an
 * organization-user-admin only these two. Whoever cannot grant a role a member holds may
 * neither change that member's roles nor remove the member (so an organization-user-admin
 * cannot demote or remove an organization-admin).
 */
const ORG_ROLE_GRANTS: Readonly<Record<OrgRole, readonly OrgRole[]>> = {
  'organization-admin': ORG_READERS,
  'organization-user-admin': ['organization-user-admin', 'organization-auditor'],
  'organization-auditor': [],
};
const SITE_ROLES_GRANTING_ANY_ORG_ROLE: readonly SiteRole[] = ['owner', 'user-admin'];

/** The organization roles `actor` may grant (and take away) in organization `organizationId`. */
export function grantableOrgRoles(actor: Actor, organizationId: string): ReadonlySet<OrgRole> {
  if (actor.kind !== 'user' || actor.status !== 'active') return new Set();
  if (SITE_ROLES_GRANTING_ANY_ORG_ROLE.some((r) => actor.siteRoles.has(r))) return new Set(ORG_READERS);
  const held = actor.orgRoles.get(organizationId) ?? new Set<OrgRole>();
  return new Set([...held].flatMap((r) => ORG_ROLE_GRANTS[r]));
}
