import { DomainError } from '@aigov/errors';
import type { Group, User, UserRepository } from '@aigov/db';
import type { Actor } from './actor';
import { can, type Action, type Subject } from './policy';

// The checks the stores share. A resource the actor cannot read is reported as not found (no
// existence leak); one it can read but not change is forbidden.

export function requireAllowed(
  actor: Actor,
  action: Action,
  subject: Subject,
  onDeny: () => DomainError,
): void {
  if (!can(actor, action, subject)) throw onDeny();
}

export const forbidden = (what: string) => () => new DomainError('forbidden', `You may not ${what}.`);
export const notFound = (what: string) => () => new DomainError('not_found', `${what} not found.`);

export const groupSubject = (g: Pick<Group, 'id' | 'organizationId'>): Subject => ({
  organizationIds: [g.organizationId],
  groupId: g.id,
});
export const userRef = (u: { id: string; username: string }) => ({ id: u.id, username: u.username });
export const groupRef = (g: Pick<Group, 'id' | 'name'> | null) => (g ? { id: g.id, name: g.name } : null);

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The subject of a check on a user: the user and the organizations it belongs to. */
export async function userSubject(users: UserRepository, u: User): Promise<Subject> {
  return { userId: u.id, organizationIds: await users.organizationIdsOfUser(u.id) };
}

/**
 * Acting on another user's account (deleting it, or managing its keys, which lets one act as
 * it) needs at least every site role that user holds, unless the actor is an owner: a
 * user-admin cannot take over an owner or an auditor.
 */
export function assertOutranks(actor: Actor, u: User, what: string): void {
  if (actor.kind === 'user' && (actor.id === u.id || actor.siteRoles.has('owner'))) return;
  const lacking = u.roles.filter((r) => actor.kind !== 'user' || !actor.siteRoles.has(r));
  if (lacking.length > 0) throw forbidden(`${what} (the user holds ${lacking.join(', ')})`)();
}
