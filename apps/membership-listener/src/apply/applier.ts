import type { IdentityEvent } from '@aigov/contracts';

/**
 * What became of one identity event. `applied`, `duplicate` (its id was applied before) and
 * `stale` (older than what was applied for the same entity or membership) are acknowledged;
 * `retry` (it references something not known yet, or a conflicting row that may change) is
 * redelivered with backoff and dead-lettered after max_deliver; `dead` (it can never be applied,
 * e.g. it targets an Everyone group) is dead-lettered at once.
 */
export type ApplyOutcome =
  | { kind: 'applied' }
  | { kind: 'duplicate' }
  | { kind: 'stale' }
  | { kind: 'retry'; reason: string }
  | { kind: 'dead'; reason: string; errors: string[] };

export interface IdentityEventApplier {
  /**
   * Applies the events in the given order in one database transaction, each in a savepoint of
   * its own, and returns one outcome per event (same order). Resolves only after the commit.
   * Rejects when the database cannot be used (unreachable, or the transaction failed as a
   * whole): then none of the events was applied and the caller keeps them for another try.
   */
  applyBatch(events: readonly IdentityEvent[]): Promise<ApplyOutcome[]>;
}

export const IDENTITY_EVENT_APPLIER = Symbol('IDENTITY_EVENT_APPLIER');
