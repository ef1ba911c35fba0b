/**
 * What of an error reaches the logs: its type, message, stack and the machine-readable codes
 * (SQLSTATE, constraint, table) that help an operator; never the values it carries. TypeORM's
 * QueryFailedError holds the statement's `parameters` (emails, diffs, hashes), and pg's errors
 * put row values in `detail` ("Key (email)=(...) already exists") and `where`: those stay out.
 */
const KEPT_FIELDS = ['code', 'constraint', 'table', 'column', 'schema', 'routine', 'severity'] as const;

export interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  [field: string]: unknown;
}

export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & Record<string, unknown>;
  const out: SerializedError = { type: e.constructor?.name ?? 'Error', message: e.message, stack: e.stack };
  for (const field of KEPT_FIELDS) {
    const v = e[field] ?? (e.driverError as Record<string, unknown> | undefined)?.[field];
    if (typeof v === 'string' || typeof v === 'number') out[field] = v;
  }
  if (e.cause !== undefined && depth < 3) out.cause = serializeError(e.cause, depth + 1);
  return out;
}
