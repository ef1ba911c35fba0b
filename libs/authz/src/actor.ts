import type { SystemActor } from '@aigov/contracts';
import type { KeyPrincipal, OrgRole, SiteRole } from '@aigov/db';

/** A person calling with a token: who they are and what their roles and memberships are. */
export interface UserActor {
  kind: 'user';
  id: string;
  username: string;
  status: 'active' | 'suspended';
  siteRoles: ReadonlySet<SiteRole>;
  /** organization id -> the user's roles there; every organization the user is a member of. */
  orgRoles: ReadonlyMap<string, ReadonlySet<OrgRole>>;
  /** explicit group memberships (Everyone memberships follow from orgRoles). */
  groupIds: ReadonlySet<string>;
}

export type Actor = UserActor | SystemActor;

export function userActor(p: KeyPrincipal): UserActor {
  return {
    kind: 'user',
    id: p.userId,
    username: p.username,
    status: p.status,
    siteRoles: new Set(p.siteRoles),
    orgRoles: new Map(Object.entries(p.orgRoles).map(([org, roles]) => [org, new Set(roles)])),
    groupIds: new Set(p.groupIds),
  };
}

/** Name written to the audit log's `actor` column. */
export function actorName(actor: Actor): string {
  return actor.kind === 'user' ? actor.username : actor.name;
}

export function actorId(actor: Actor): string | null {
  return actor.kind === 'user' ? actor.id : null;
}
