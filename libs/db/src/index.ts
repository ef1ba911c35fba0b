// The only home of TypeORM. Guarantees: one DataSource per process for DATABASE_URL or the
// embedded PGlite host (exactly one hosting process per DATA_DIR), migrations applied under an
// advisory lock, and repositories whose subtle statements are plain SQL in one visible place.
export * from './data-source';
export * from './embedded';
export * from './migrate';
export * from './entities/ai-model-price.entity';
export * from './repositories/price-book.repository';
export * from './database.module';
