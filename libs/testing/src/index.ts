// Test helpers only: a database per test file cloned from a migrated template, a private real
// nats-server per test file, and a local HTTP fixture server. Never imported by app code.
export * from './database';
export * from './http-fixture';
export * from './nats-server';
export * from './private-postgres';
export * from './ports';
export * from './wait';
