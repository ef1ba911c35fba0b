import type { AuditEntry, AuditFilter, AuditRepository, Counted, Page } from '@aigov/db';
import type { Actor } from './actor';
import { forbidden, requireAllowed } from './store-checks';

export class AuditStore {
  constructor(private readonly audit: AuditRepository) {}

  async list(actor: Actor, f: AuditFilter, page: Page): Promise<{ entries: AuditEntry[] } & Counted> {
    requireAllowed(actor, 'audit.read', {}, forbidden('read the audit log'));
    return this.audit.list(f, page);
  }
}
