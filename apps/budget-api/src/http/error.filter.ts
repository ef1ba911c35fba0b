import { type ArgumentsHost, Catch, type ExceptionFilter, Inject } from '@nestjs/common';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bodyOf, statusOf, toDomainError } from './error-body';

/** Database errors mapped by constraint name (never by pre-checking). */
const groupGone = () => new DomainError('not_found', 'Group not found.');
const userGone = () => new DomainError('not_found', 'User not found.');

const CONSTRAINT_ERRORS: Record<string, () => DomainError> = {
  users_last_owner: () =>
    new DomainError('conflict', 'This is the last active owner; make another active user owner first.'),
  // Foreign keys: the referenced row was deleted by a concurrent request.
  group_ai_budgets_group_id_fkey: groupGone,
  group_members_group_id_fkey: groupGone,
  user_ai_budget_overrides_group_id_fkey: groupGone,
  groups_organization_id_fkey: () => new DomainError('not_found', 'Organization not found.'),
  organization_members_organization_id_fkey: () => new DomainError('not_found', 'Organization not found.'),
  organization_members_user_id_fkey: userGone,
  group_members_user_id_fkey: userGone,
  user_ai_budget_overrides_user_id_fkey: userGone,
  api_keys_user_id_fkey: userGone,
  user_ai_budget_overrides_must_be_group_member: () =>
    DomainError.invalid('User is not a member of the referenced group.', [
      { field: 'group_id', detail: 'user must be a member of this group' },
    ]),
  users_username_key: () =>
    new DomainError('conflict', 'A user with this username already exists.', [
      { field: 'username', detail: 'already taken' },
    ]),
  users_email_key: () =>
    new DomainError('conflict', 'A user with this email already exists.', [
      { field: 'email', detail: 'already taken' },
    ]),
  // Emails are unique regardless of case (also for writers that do not lowercase them).
  users_email_lower_key: () =>
    new DomainError('conflict', 'A user with this email already exists.', [
      { field: 'email', detail: 'already taken' },
    ]),
  organizations_name_key: () =>
    new DomainError('conflict', 'An organization with this name already exists.', [
      { field: 'name', detail: 'already taken' },
    ]),
  groups_organization_id_name_key: () =>
    new DomainError('conflict', 'A group with this name already exists in the organization.', [
      { field: 'name', detail: 'already taken' },
    ]),
  groups_everyone_reserved_check: () =>
    DomainError.invalid('The name Everyone is reserved.', [
      { field: 'name', detail: 'Everyone is reserved for the organization-wide group' },
    ]),
};

interface PgError {
  code?: string;
  constraint?: string;
  driverError?: { code?: string; constraint?: string };
}

export function fromDatabaseError(err: unknown): DomainError | null {
  const e = err as PgError;
  const constraint = e.constraint ?? e.driverError?.constraint;
  if (constraint && CONSTRAINT_ERRORS[constraint]) return CONSTRAINT_ERRORS[constraint]();
  return null;
}

@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(@Inject(APP_LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<FastifyRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const err = fromDatabaseError(exception) ?? toDomainError(exception);
    if (err.code === 'internal') {
      this.logger.error({ err: exception, request_id: req.id }, 'unhandled error');
    }
    void reply
      .status(statusOf(err.code))
      .header('Content-Type', 'application/json')
      .send(bodyOf(err, req.id));
  }
}
