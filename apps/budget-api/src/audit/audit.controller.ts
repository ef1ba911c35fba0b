import { Controller, Get, Inject, Query } from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import { Authenticated, CurrentActor } from '../auth/decorators';
import { listBody, page } from '../http/query.dto';
import { auditLogResponse } from './audit-log.response';
import { AuditLogQuery, parseRfc3339 } from './audit.dto';

@Controller('api/v2/audit-logs')
@Authenticated()
export class AuditController {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  /** Newest first; `since` is inclusive, `until` exclusive (the DTO refuses until before since). */
  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: AuditLogQuery) {
    const { entries, ...counted } = await this.stores.audit.list(
      actor,
      {
        resourceType: query.resource_type,
        resourceId: query.resource_id,
        actor: query.actor,
        action: query.action,
        since: parseRfc3339(query.since) ?? undefined,
        until: parseRfc3339(query.until) ?? undefined,
      },
      page(query),
    );
    return listBody('audit_logs', entries.map(auditLogResponse), counted);
  }
}
