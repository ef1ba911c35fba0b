import type { AuditEntryInput, AuditRepository } from '@aigov/db';
import { actorId, actorName, type Actor } from './actor';

/**
 * The audit entries of the store methods' own changes (CONTRACT 1.5): written as the actor, with
 * the request id of the transaction the stores were opened in, by the method that made the
 * change, so no caller has to remember them. Not a store: it checks nothing, it is no part of the
 * stores' surface, and only store methods that have authorized their change call it.
 */
export class AuditTrail {
  constructor(
    private readonly audit: AuditRepository,
    private readonly requestId: string | null,
    private readonly deferred: DeferredAudit | null = null,
  ) {}

  async record(actor: Actor, e: Omit<AuditEntryInput, 'actor' | 'actorId' | 'requestId'>): Promise<void> {
    const entry = { ...e, actor: actorName(actor), actorId: actorId(actor), requestId: this.requestId };
    if (this.deferred) this.deferred.entries.push(entry);
    else await this.audit.insert(entry);
  }
}

/**
 * Entries collected over many changes of one transaction and written in one statement before it
 * commits: the membership listener applies a batch of events per transaction, and one insert per
 * entry would be a third of its round trips. Whoever opens it must `flush` it inside the same
 * transaction; `rollbackTo` drops the entries of changes undone by a savepoint.
 */
export class DeferredAudit {
  readonly entries: AuditEntryInput[] = [];

  constructor(private readonly audit: AuditRepository) {}

  /** A position to roll back to. */
  mark(): number {
    return this.entries.length;
  }

  rollbackTo(mark: number): void {
    this.entries.length = mark;
  }

  async flush(): Promise<void> {
    await this.audit.insertMany(this.entries);
    this.entries.length = 0;
  }
}
