import { MigrationExecutor, type DataSource } from 'typeorm';

/** Arbitrary but fixed: every aigov process takes this advisory lock to migrate. */
export const MIGRATION_LOCK_KEY = 4_702_113_901;

/**
 * Runs the pending migrations in one transaction that first takes a transaction-scoped
 * advisory lock. Several instances may start at once: the first migrates, the others wait on
 * the lock, then read the migrations table afresh (READ COMMITTED) and find nothing to do.
 * Returns the names of the migrations it applied.
 */
export async function runMigrationsLocked(ds: DataSource): Promise<string[]> {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.startTransaction();
    await qr.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    const executor = new MigrationExecutor(ds, qr);
    executor.transaction = 'all';
    const applied = await executor.executePendingMigrations();
    await qr.commitTransaction();
    return applied.map((m) => m.name);
  } catch (err) {
    if (qr.isTransactionActive) await qr.rollbackTransaction();
    throw err;
  } finally {
    await qr.release();
  }
}

/** Reverts the newest applied migration under the same lock. Returns its name, or null. */
export async function revertLastMigrationLocked(ds: DataSource): Promise<string | null> {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.startTransaction();
    await qr.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    const executor = new MigrationExecutor(ds, qr);
    executor.transaction = 'all';
    const before = await executor.getExecutedMigrations();
    await executor.undoLastMigration();
    await qr.commitTransaction();
    const newest = [...before].sort((a, b) => b.timestamp - a.timestamp)[0];
    return newest ? newest.name : null;
  } catch (err) {
    if (qr.isTransactionActive) await qr.rollbackTransaction();
    throw err;
  } finally {
    await qr.release();
  }
}

/** Names of migrations known to the code but not applied to the database. */
export async function pendingMigrations(ds: DataSource): Promise<string[]> {
  const executor = new MigrationExecutor(ds);
  const pending = await executor.getPendingMigrations();
  return pending.map((m) => m.name);
}
