import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { AuditEntry, AuditFilter, Counted, Page } from '@aigov/db';
import { validationFailed } from '../http/validation.pipe';

@Injectable()
export class AuditService {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  /** Entries matching every given filter, newest first; `since` is inclusive, `until` exclusive. */
  list(actor: Actor, filter: AuditFilter, page: Page): Promise<{ entries: AuditEntry[] } & Counted> {
    if (filter.since && filter.until && filter.until < filter.since) {
      throw validationFailed([{ field: 'until', detail: 'must not be before since' }]);
    }
    return this.stores.audit.list(actor, filter, page);
  }
}
