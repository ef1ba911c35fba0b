/**
 * Named, least-privilege system actors (docs/permissions.md). There is no all-powerful one.
 * User actors arrive with the API's authorization layer.
 */
export const SYSTEM_ACTORS = [
  'system:pricing-worker',
  'system:membership-listener',
  'system:database',
  // Budget checks, reservations and usage arriving over NATS, where the server's subject
  // permissions (docs/nats-security.md) are what admits the gateway.
  'system:ai-gateway',
  // budget-api's own upkeep: the reservation sweeper and the threshold-event outbox; also
  // `npm run spend:reconcile`.
  'system:budget-api',
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
export const AI_GATEWAY_ACTOR: SystemActor = Object.freeze({ kind: 'system', name: 'system:ai-gateway' });
export const BUDGET_API_ACTOR: SystemActor = Object.freeze({ kind: 'system', name: 'system:budget-api' });
