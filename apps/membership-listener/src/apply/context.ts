import type { IdentitySyncStore } from '@aigov/authz';
import { MEMBERSHIP_LISTENER_ACTOR } from '@aigov/contracts';
import type { IdentityEntity } from '@aigov/db';
import type { ApplyOutcome } from './applier';

/** The listener's actor: every change it makes is authorized and audited as this one. */
export const A = MEMBERSHIP_LISTENER_ACTOR;
export const APPLIED: ApplyOutcome = { kind: 'applied' };
export const STALE: ApplyOutcome = { kind: 'stale' };

/** One event's data and the bookkeeping every handler needs. */
export interface EventContext {
  store: IdentitySyncStore;
  id: string;
  time: Date;
}

/**
 * Is a referenced entity there? If not: `stale` when it was removed at or after the event's time
 * (the event lost the race and never applies), else `retry` (it may still arrive).
 */
export async function reference(
  c: EventContext,
  entity: IdentityEntity,
  key: string,
  exists: boolean,
): Promise<'ok' | ApplyOutcome> {
  if (exists) return 'ok';
  const removedAt = await c.store.versionOf(A, entity, key);
  if (removedAt && removedAt >= c.time) return STALE;
  return { kind: 'retry', reason: `unknown ${entity.replace('_', ' ')} ${key}` };
}

/** Claims one key for the event: false when a newer event has been applied to it. */
export const claim = async (c: EventContext, entity: IdentityEntity, key: string) =>
  (await c.store.claimVersions(A, entity, [key], c.time, c.id)).has(key);

/**
 * Where the time an organization membership last ended is kept, beside the membership's own key
 * (which a rejoin moves on): every group membership of that organization older than it ended
 * with it, also one whose `added` event is still to come.
 */
export const membershipEndedKey = (organizationId: string, userId: string) =>
  `${organizationId}/${userId}/ended`;

/** True when the user's organization membership ended after `time` (so a group add then is stale). */
export async function endedSince(c: EventContext, organizationId: string, userId: string, time: Date) {
  const ended = await c.store.versionOf(A, 'organization_member', membershipEndedKey(organizationId, userId));
  return ended !== null && ended > time;
}
