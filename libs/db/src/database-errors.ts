import { DomainError } from '@aigov/errors';

/**
 * Database errors as domain errors, shared by every transport. Constraint violations are mapped
 * by the constraint's name (every constraint is named in its migration), never by pre-checking.
 * A database that is down, restarting or unreachable is `unavailable` (503 with Retry-After over
 * HTTP), as is a deadlock or serialization failure that outlived its retries.
 */

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

interface PgLikeError {
  code?: string;
  constraint?: string;
  message?: string;
  driverError?: PgLikeError;
  cause?: unknown;
}

/** The innermost driver error: TypeORM wraps pg's error in `driverError`. */
function driverErrorOf(err: unknown): PgLikeError {
  const e = (err ?? {}) as PgLikeError;
  return e.driverError ?? e;
}

/** The constraint a database error names, if any. */
export function constraintOf(err: unknown): string | undefined {
  const e = (err ?? {}) as PgLikeError;
  return e.constraint ?? e.driverError?.constraint;
}

/** SQLSTATEs of a transaction that lost a lock-order or serialization race: retrying it may succeed. */
const RETRYABLE_SQLSTATES = new Set(['40P01', '40001']);

export function isRetryableTransactionError(err: unknown): boolean {
  return RETRYABLE_SQLSTATES.has(driverErrorOf(err).code ?? '');
}

/** Socket-level error codes of Node and the messages pg uses when the server went away. */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);
const CONNECTION_ERROR_MESSAGES = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /not queryable/i,
  /Client was closed/i,
  /terminating connection/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /Cannot use a pool after calling end/i,
];

/**
 * True when the error says the database cannot be reached right now: a connection that failed
 * or broke, or SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown, cannot connect
 * now) and 53300 (too many connections).
 */
export function isDatabaseUnavailableError(err: unknown): boolean {
  for (const e of [
    err as PgLikeError,
    driverErrorOf(err),
    ((err as PgLikeError)?.cause ?? {}) as PgLikeError,
  ]) {
    if (!e) continue;
    const code = e.code ?? '';
    if (CONNECTION_ERROR_CODES.has(code)) return true;
    if (code.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
    if (typeof e.message === 'string' && CONNECTION_ERROR_MESSAGES.some((re) => re.test(e.message!))) {
      return true;
    }
  }
  return false;
}

export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is unavailable; try again shortly.';
export const DATABASE_BUSY_MESSAGE = 'The database is busy with conflicting changes; try again.';

/** The domain error a database error stands for, or null when it is not one we can name. */
export function fromDatabaseError(err: unknown): DomainError | null {
  if (err instanceof DomainError) return err;
  const constraint = constraintOf(err);
  if (constraint && CONSTRAINT_ERRORS[constraint]) return CONSTRAINT_ERRORS[constraint]();
  if (isRetryableTransactionError(err)) return new DomainError('unavailable', DATABASE_BUSY_MESSAGE);
  if (isDatabaseUnavailableError(err)) return new DomainError('unavailable', DATABASE_UNAVAILABLE_MESSAGE);
  return null;
}
