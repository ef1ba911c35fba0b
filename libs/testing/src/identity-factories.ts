import { randomBytes } from 'node:crypto';
import type { Group, Organization, OrgRole, SiteRole, User } from '@aigov/db';

// The one way tests make identity rows (users, organizations, groups, memberships, overrides,
// keys): plain SQL on whatever the test holds, so the database's own triggers and constraints
// run exactly as they do for the app (an organization gets its Everyone group from a trigger).
// Only types come from @aigov/db: a test on a bare pg Pool does not load TypeORM or Nest.

/**
 * Anything that runs a parameterised statement: a pg Pool, PoolClient or Client (which answer
 * `{ rows }`), or a TypeORM DataSource or EntityManager (which answer the rows of an INSERT or
 * SELECT themselves).
 */
export interface SqlTarget {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** The rows of one INSERT or SELECT, whichever kind of SqlTarget ran it. */
export async function sqlRows<T>(db: SqlTarget, text: string, values: unknown[] = []): Promise<T[]> {
  const result = await db.query(text, values);
  return Array.isArray(result) ? (result as T[]) : (result as { rows: T[] }).rows;
}

let seq = 0;
/**
 * A name no other call in this process returns (the database is the test file's own); valid as
 * username, organization name and group name.
 */
export function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${process.pid}-${seq}`;
}

const KEY_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** A valid api_keys id: 10 characters of [a-z0-9]. */
export function newKeyId(): string {
  return Array.from(randomBytes(10), (b) => KEY_ALPHABET[b % KEY_ALPHABET.length]).join('');
}

const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;
const GROUP_COLUMNS = `id, organization_id AS "organizationId", name, display_name AS "displayName",
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** An organization; the database creates its Everyone group (id = the organization's id) with it. */
export async function insertOrganization(db: SqlTarget, name = uniqueName('org')): Promise<Organization> {
  const [o] = await sqlRows<Organization>(
    db,
    `INSERT INTO organizations (name) VALUES ($1) RETURNING ${ORG_COLUMNS}`,
    [name],
  );
  return o;
}

/** The Everyone group of an organization (made by the database with the organization). */
export async function everyoneGroup(db: SqlTarget, organizationId: string): Promise<Group> {
  const [g] = await sqlRows<Group>(db, `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1`, [organizationId]);
  return g;
}

export async function insertGroup(
  db: SqlTarget,
  organizationId: string,
  name = uniqueName('group'),
): Promise<Group> {
  const [g] = await sqlRows<Group>(
    db,
    `INSERT INTO groups (organization_id, name) VALUES ($1, $2) RETURNING ${GROUP_COLUMNS}`,
    [organizationId, name],
  );
  return g;
}

export interface UserSpec {
  /** default: a unique name */
  username?: string;
  /** default: `<username>@example.test` */
  email?: string;
  name?: string | null;
  /** site roles; default none */
  roles?: readonly SiteRole[];
  status?: User['status'];
}

export async function insertUser(db: SqlTarget, spec: UserSpec = {}): Promise<User> {
  const username = spec.username ?? uniqueName('user');
  const [u] = await sqlRows<User>(
    db,
    `INSERT INTO users (username, email, name, roles, status) VALUES ($1, $2, $3, $4::text[], $5)
     RETURNING ${USER_COLUMNS}`,
    [
      username,
      spec.email ?? `${username}@example.test`,
      spec.name ?? null,
      spec.roles ?? [],
      spec.status ?? 'active',
    ],
  );
  return u;
}

/**
 * Makes the user a member of the organization with exactly these roles: a new membership, or an
 * existing one whose roles are replaced (tests that move a member between roles use it too).
 */
export async function addOrganizationMember(
  db: SqlTarget,
  organizationId: string,
  userId: string,
  roles: readonly OrgRole[] = [],
): Promise<void> {
  await sqlRows(
    db,
    `INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3::text[])
     ON CONFLICT (organization_id, user_id) DO UPDATE SET roles = EXCLUDED.roles`,
    [organizationId, userId, roles],
  );
}

/** An explicit group membership; the user must be a member of the group's organization (trigger). */
export async function addGroupMember(db: SqlTarget, groupId: string, userId: string): Promise<void> {
  await sqlRows(db, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [groupId, userId]);
}

export interface MemberSpec extends UserSpec {
  /** organization id -> the user's roles there */
  orgs?: Record<string, readonly OrgRole[]>;
  /** explicit group memberships (never an Everyone group), after the organization memberships */
  groups?: readonly string[];
}

/** A user with organization and group memberships, in the order the database requires. */
export async function insertMember(db: SqlTarget, spec: MemberSpec = {}): Promise<User> {
  const user = await insertUser(db, spec);
  for (const [org, roles] of Object.entries(spec.orgs ?? {})) {
    await addOrganizationMember(db, org, user.id, roles);
  }
  for (const g of spec.groups ?? []) await addGroupMember(db, g, user.id);
  return user;
}

/** A user budget override; the user must be a member of the group, Everyone included (trigger). */
export async function insertOverride(
  db: SqlTarget,
  userId: string,
  groupId: string,
  micros: bigint | number,
): Promise<void> {
  await sqlRows(
    db,
    'INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, $3)',
    [userId, groupId, micros.toString()],
  );
}

/** An API key of the user with a random 32-byte secret hash; returns its id. */
export async function insertApiKey(db: SqlTarget, userId: string, name = 'fixture key'): Promise<string> {
  const id = newKeyId();
  await sqlRows(db, 'INSERT INTO api_keys (id, user_id, name, secret_hash) VALUES ($1, $2, $3, $4)', [
    id,
    userId,
    name,
    randomBytes(32),
  ]);
  return id;
}

/**
 * Many sets at once for the race tests (thousands of rounds): per index i, organization orgs[i]
 * named names[i], user users[i] of the same name who is its member, and group groups[i]
 * ("racers") of it. Four statements on the caller's client, inside its transaction.
 */
export async function insertMembershipSets(
  db: SqlTarget,
  sets: { orgs: string[]; users: string[]; groups: string[]; names: string[] },
): Promise<void> {
  await sqlRows(db, 'INSERT INTO organizations (id, name) SELECT * FROM unnest($1::uuid[], $2::text[])', [
    sets.orgs,
    sets.names,
  ]);
  await sqlRows(
    db,
    `INSERT INTO users (id, username, email)
       SELECT id, name, name || '@example.test' FROM unnest($1::uuid[], $2::text[]) AS u (id, name)`,
    [sets.users, sets.names],
  );
  await sqlRows(
    db,
    'INSERT INTO organization_members (organization_id, user_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])',
    [sets.orgs, sets.users],
  );
  await sqlRows(
    db,
    `INSERT INTO groups (id, organization_id, name)
       SELECT id, org, 'racers' FROM unnest($1::uuid[], $2::uuid[]) AS g (id, org)`,
    [sets.groups, sets.orgs],
  );
}

/**
 * Whether a connection to the database of `db` waits for a lock, polled for up to 10 s first: a
 * race test's sign that the statement it started has reached the lock held by the test's own
 * transaction (the lock is the point; the deadline only bounds a test that would hang).
 */
export async function someoneWaitsForLock(db: SqlTarget): Promise<boolean> {
  const waiting = async () =>
    (
      await sqlRows(
        db,
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      )
    ).length > 0;
  for (let i = 0; i < 1000 && !(await waiting()); i++) await new Promise((r) => setTimeout(r, 10));
  return waiting();
}

/**
 * In `tx` (an open transaction the test commits later): what the membership listener's
 * `organization.member.removed` does first when a rejoin keeps the membership row: the row
 * locked FOR UPDATE and the end of the user's group memberships recorded at `time` (the
 * `<org>/<user>/ended` key). For race tests of group membership adds against that removal.
 */
export async function beginOrganizationRemoval(
  tx: SqlTarget,
  organizationId: string,
  userId: string,
  time: Date,
): Promise<void> {
  await tx.query(
    'SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE',
    [organizationId, userId],
  );
  await tx.query(
    `INSERT INTO identity_versions (entity, key, time, event_id)
     VALUES ('organization_member', $1 || '/' || $2 || '/ended', $3, 'other')`,
    [organizationId, userId, time],
  );
}
