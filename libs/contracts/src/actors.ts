/**
 * Named, least-privilege system actors (docs/permissions.md). There is no all-powerful one.
 * User actors arrive with the API's authorization layer.
 */
export const SYSTEM_ACTORS = [
  'system:pricing-worker',
  'system:membership-listener',
  'system:database',
] as const;
export type SystemActorName = (typeof SYSTEM_ACTORS)[number];

export interface SystemActor {
  kind: 'system';
  name: SystemActorName;
}

export const PRICING_WORKER_ACTOR: SystemActor = Object.freeze({
  kind: 'system',
  name: 'system:pricing-worker',
});
export const MEMBERSHIP_LISTENER_ACTOR: SystemActor = Object.freeze({
  kind: 'system',
  name: 'system:membership-listener',
});
