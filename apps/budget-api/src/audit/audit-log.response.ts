import type { AuditEntry } from '@aigov/db';

/** Wire shape of one audit log entry (snake_case, RFC 3339 UTC). */
export const auditLogResponse = (e: AuditEntry) => ({
  id: e.id,
  time: new Date(e.time).toISOString(),
  actor_id: e.actorId,
  actor: e.actor,
  action: e.action,
  resource_type: e.resourceType,
  resource_id: e.resourceId,
  organization_id: e.organizationId,
  diff: e.diff,
  request_id: e.requestId,
  reason: e.reason,
});
