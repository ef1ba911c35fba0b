import { DataSource, type EntityManager } from 'typeorm';
import type { Pool } from 'pg';

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
    // Outside a transaction, one statement goes straight to the driver's pg pool: TypeORM's
    // query runner (acquire, subscriber broadcast, release) roughly doubles the cost of a
    // short query on the hot read paths (see bench/api).
    const pool = (db.driver as unknown as { master?: Pool }).master;
    if (pool) {
      const result = prepareAs
        ? await pool.query({ name: prepareAs, text, values: params })
        : await pool.query(text, params);
      return result.rows as T;
    }
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
