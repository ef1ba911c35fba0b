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
  ) {}

  async record(actor: Actor, e: Omit<AuditEntryInput, 'actor' | 'actorId' | 'requestId'>): Promise<void> {
    await this.audit.insert({
      ...e,
      actor: actorName(actor),
      actorId: actorId(actor),
      requestId: this.requestId,
    });
  }
}
