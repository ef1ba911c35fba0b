import { Controller, Get, Inject, Query } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import { Authenticated, CurrentActor } from '../auth/decorators';
import { listBody, page } from '../http/query.dto';
import { auditLogResponse } from './audit-log.response';
import { AuditLogQuery, parseRfc3339 } from './audit.dto';
import { AuditService } from './audit.service';

@Controller('api/v2/audit-logs')
@Authenticated()
export class AuditController {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: AuditLogQuery) {
    const { entries, ...counted } = await this.audit.list(
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
