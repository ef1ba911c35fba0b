import { DataSource, type EntityManager } from 'typeorm';
import { statementPoolOf } from '../pool';

/** A DataSource, or the EntityManager of an open transaction: repositories work on either. */
export type Db = DataSource | EntityManager;

export type SiteRole = 'owner' | 'user-admin' | 'auditor' | 'ai-gateway';
export type OrgRole = 'organization-admin' | 'organization-user-admin' | 'organization-auditor';
export const SITE_ROLES: readonly SiteRole[] = ['owner', 'user-admin', 'auditor', 'ai-gateway'];
export const ORG_ROLES: readonly OrgRole[] = [
  'organization-admin',
  'organization-user-admin',
  'organization-auditor',
];

export interface Organization {
  id: string;
  name: string;
  displayName: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface User {
  id: string;
  username: string;
  email: string;
  name: string | null;
  status: 'active' | 'suspended';
  roles: SiteRole[];
  createdAt: Date;
  updatedAt: Date;
}

export interface OrganizationMember {
  organizationId: string;
  userId: string;
  username: string;
  name: string | null;
  roles: OrgRole[];
  createdAt: Date;
}

export interface Group {
  id: string;
  organizationId: string;
  name: string;
  displayName: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface GroupMember {
  userId: string;
  username: string;
  name: string | null;
  /** When the membership began (for the Everyone group: the organization membership). */
  createdAt: Date;
}

export interface ApiKey {
  id: string;
  userId: string;
  name: string | null;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  createdAt: Date;
}

export interface GroupBudget {
  groupId: string;
  spendLimitMicros: bigint;
  createdAt: Date;
  updatedAt: Date;
}

export interface Page {
  limit: number;
  offset: number;
}

interface PgClient {
  query(q: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * Runs one statement and returns its rows. TypeORM's postgres driver answers UPDATE and DELETE
 * (even with RETURNING) as `[rows, rowCount]`; this evens that out so callers always get rows.
 */
export async function q<T extends unknown[]>(
  db: Db,
  text: string,
  params: unknown[] = [],
  /** A name makes it a prepared statement on each connection: hot queries skip parsing and planning. */
  prepareAs?: string,
): Promise<T> {
  if (db instanceof DataSource) {
    // Outside a transaction, one statement goes to the statement pool that DatabaseModule opened
    // beside TypeORM's (see ../pool.ts): TypeORM's query runner roughly doubles the cost of a
    // short query on the hot read paths (see docs/benchmarks/api.md).
    const pool = statementPoolOf(db);
    if (pool) {
      const result = prepareAs
        ? await pool.query({ name: prepareAs, text, values: params })
        : await pool.query(text, params);
      return result.rows as T;
    }
  }
  if (prepareAs && !(db instanceof DataSource) && db.queryRunner && !db.queryRunner.isReleased) {
    // Inside a transaction: the same connection, asked for a named statement (QueryRunner.connect
    // hands out the driver's client), so that a statement run for every event of a batch is
    // parsed and planned once per connection instead of every time.
    const client = (await db.queryRunner.connect()) as PgClient;
    const result = await client.query({ name: prepareAs, text, values: params });
    return result.rows as T;
  }
  const result: unknown = await db.query(text, params);
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  ) {
    return result[0] as T;
  }
  return result as T;
}
