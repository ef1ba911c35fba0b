// The only home of TypeORM. Guarantees: one DataSource per process for DATABASE_URL or the
// embedded PostgreSQL cluster of DATA_DIR (started by `npm start`), migrations applied under an
// advisory lock, and repositories whose statements are plain SQL in one visible place.
export * from './data-source';
export * from './database.module';
export * from './embedded';
export * from './migrate';
export * from './pool';
export * from './repositories/api-key.repository';
export * from './repositories/audit.repository';
export * from './repositories/group-budget.repository';
export * from './repositories/user.repository';
export * from './repositories/organization.repository';
export * from './repositories/group.repository';
export * from './repositories/price-book.repository';
export * from './repositories/types';
export * from './repositories/override.repository';
export * from './repositories/identity-sync.repository';
export * from './database-errors';
export * from './repositories/paging';
export * from './repositories/spend.repository';
