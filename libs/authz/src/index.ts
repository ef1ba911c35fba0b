// The one place that decides who may do what: actors (users and named system actors), the role
// table of docs/permissions.md as data, and stores that wrap every data access with its check.
// Denied reads are "not found" (no existence leak); denied changes of readable things are "forbidden".
export * from './actor';
export * from './policy';
export * from './stores';
