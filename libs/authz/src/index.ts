// The one place that decides who may do what: actors (users and named system actors), the role
// table of docs/permissions.md as data, and stores that wrap every data access with its check.
// Denied reads are "not found" (no existence leak); denied changes of readable things are "forbidden".
export * from './actor';
export * from './policy';
export * from './stores';
export * from './users.store';
export * from './api-keys.store';
export * from './organizations.store';
export * from './groups.store';
export * from './group-budgets.store';
export * from './overrides.store';
export * from './prices.store';
export * from './audit.store';
export * from './identity-sync.store';
export * from './spend.store';
export { UUID, notFound } from './store-checks';
export type { DeferredAudit } from './audit-trail';
