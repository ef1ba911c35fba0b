import type { IdentitySyncStore } from '@aigov/authz';
import { MEMBERSHIP_LISTENER_ACTOR } from '@aigov/contracts';
import type { IdentityEntity } from '@aigov/db';
import type { ApplyOutcome } from './applier';

/** The listener's actor: every change it makes is authorized and audited as this one. */
export const A = MEMBERSHIP_LISTENER_ACTOR;
export const APPLIED: ApplyOutcome = { kind: 'applied' };
export const STALE: ApplyOutcome = { kind: 'stale' };
export const DUPLICATE: ApplyOutcome = { kind: 'duplicate' };
export const everyone = (what: string): ApplyOutcome => ({
  kind: 'dead',
  reason: 'targets_everyone_group',
  errors: [`${what}: the Everyone group is managed with its organization, not by group events`],
});

/** One event's identity and the store it is applied through. */
export interface EventContext {
  store: IdentitySyncStore;
  id: string;
  type: string;
  time: Date;
}

/**
 * Records the event and claims its key: the first write of every incremental event, made only
 * after the checks that could send it back (retry) or to the dead letters, so that those leave
 * nothing behind. Null when the event goes on; else its outcome.
 */
/** The event's part of a begin statement. */
export const start = (c: EventContext, entity: IdentityEntity, key: string) => ({
  eventId: c.id,
  type: c.type,
  time: c.time,
  entity,
  keys: [key],
});

export async function begin(
  c: EventContext,
  entity: IdentityEntity,
  key: string,
  unlessOrganization?: string,
): Promise<ApplyOutcome | null> {
  const state = await c.store.beginEvent(A, { ...start(c, entity, key), unlessOrganization });
  if (state === 'fresh') return null;
  if (state === 'everyone') return everyone('data.group_id');
  return state === 'duplicate' ? DUPLICATE : STALE;
}

/**
 * A referenced entity or membership that is not there: `stale` when it was removed at or after
 * the event's time (the event lost the race and never applies), else `retry` (it may still come).
 */
export function missing(c: EventContext, what: string, key: string, removedAt: Date | null): ApplyOutcome {
  if (removedAt && removedAt >= c.time) return STALE;
  return { kind: 'retry', reason: `unknown ${what} ${key}` };
}

/** True when a newer event than this one was applied to the key (read before claiming). */
export const newer = (c: EventContext, version: Date | null) => version !== null && version > c.time;

/**
 * Where the time an organization membership last ended is kept, beside the membership's own key
 * (which a rejoin moves on): every group membership of that organization older than it ended
 * with it, also one whose `added` event is still to come.
 */
export const membershipEndedKey = (organizationId: string, userId: string) =>
  `${organizationId}/${userId}/ended`;

/** True when the user's organization membership ended after the event (a group add then is stale). */
export async function endedSince(c: EventContext, organizationId: string, userId: string): Promise<boolean> {
  return newer(
    c,
    await c.store.versionOf(A, 'organization_member', membershipEndedKey(organizationId, userId)),
  );
}
