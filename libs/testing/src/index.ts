// Test helpers only: a database per test file cloned from a migrated template, the one set of
// identity row factories, a private real nats-server per test file, a private PostgreSQL server
// for the fault tests, ports, waiting, and a local HTTP fixture server. Never imported by app code.
export * from './database';
export * from './http-fixture';
export * from './identity-factories';
export * from './nats-server';
export * from './private-postgres';
export * from './ports';
export * from './wait';
