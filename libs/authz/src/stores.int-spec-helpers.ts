// Fixtures for stores.int-spec.ts: rows inserted with plain SQL, and user actors built from the
// same spec as their rows (what userActor() would make of the user's key principal), so an
// actor's roles and memberships always match the database the stores read.
import { randomBytes } from 'node:crypto';
import type { SystemActor } from '@aigov/contracts';
import { q, type Group, type Organization, type OrgRole, type SiteRole, type User } from '@aigov/db';
import type { Actor, UserActor } from '@aigov/authz';
import { waitForNoConnections } from '@aigov/testing';
import type { DataSource } from 'typeorm';

let seq = 0;
/** A name no other fixture of this run uses; valid as username, organization and group name. */
export function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${process.pid}-${seq}`;
}

const KEY_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** An api_keys id: 10 characters of [a-z0-9]. */
export function newKeyId(): string {
  return Array.from(randomBytes(10), (b) => KEY_ALPHABET[b % KEY_ALPHABET.length]).join('');
}

export async function rows<T = Record<string, unknown>>(
  ds: DataSource,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return q<T[]>(ds, sql, params);
}

const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;
const GROUP_COLUMNS = `id, organization_id AS "organizationId", name, display_name AS "displayName",
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const USER_COLUMNS = `id, username, email, name, status, roles, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Inserting an organization also creates its Everyone group (database trigger). */
export async function insertOrganization(ds: DataSource, name = uniqueName('org')): Promise<Organization> {
  const [o] = await rows<Organization>(
    ds,
    `INSERT INTO organizations (name) VALUES ($1) RETURNING ${ORG_COLUMNS}`,
    [name],
  );
  return o;
}

export async function insertGroup(ds: DataSource, organizationId: string): Promise<Group> {
  const [g] = await rows<Group>(
    ds,
    `INSERT INTO groups (organization_id, name) VALUES ($1, $2) RETURNING ${GROUP_COLUMNS}`,
    [organizationId, uniqueName('group')],
  );
  return g;
}

export async function everyoneGroup(ds: DataSource, org: Organization): Promise<Group> {
  const [g] = await rows<Group>(ds, `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1`, [org.id]);
  return g;
}

/** A user row and the actor that calls as that user. */
export interface Person {
  user: User;
  actor: UserActor;
}

export interface PersonSpec {
  site?: SiteRole[];
  /** organization id -> the user's roles there */
  orgs?: Record<string, OrgRole[]>;
  /** explicit group memberships (never an Everyone group) */
  groups?: string[];
}

export async function insertPerson(ds: DataSource, spec: PersonSpec = {}): Promise<Person> {
  const username = uniqueName('user');
  const [user] = await rows<User>(
    ds,
    `INSERT INTO users (username, email, roles) VALUES ($1, $2, $3::text[]) RETURNING ${USER_COLUMNS}`,
    [username, `${username}@example.test`, spec.site ?? []],
  );
  for (const [org, roles] of Object.entries(spec.orgs ?? {})) {
    await rows(ds, 'INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, $3)', [
      org,
      user.id,
      roles,
    ]);
  }
  for (const g of spec.groups ?? []) {
    await rows(ds, 'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)', [g, user.id]);
  }
  const actor: UserActor = {
    kind: 'user',
    id: user.id,
    username: user.username,
    status: 'active',
    siteRoles: new Set(spec.site ?? []),
    orgRoles: new Map(Object.entries(spec.orgs ?? {}).map(([o, r]) => [o, new Set(r)])),
    groupIds: new Set(spec.groups ?? []),
  };
  return { user, actor };
}

export async function insertBudget(ds: DataSource, groupId: string, micros: bigint): Promise<void> {
  await rows(ds, 'INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, $2)', [
    groupId,
    micros.toString(),
  ]);
}

export async function insertPrice(
  ds: DataSource,
  p: { provider: string; model: string; source: 'default' | 'custom'; input: number },
): Promise<void> {
  await rows(
    ds,
    'INSERT INTO ai_model_prices (provider, model, source, input_price, output_price) VALUES ($1, $2, $3, $4, $4)',
    [p.provider, p.model, p.source, p.input],
  );
}

/** An API key of the user with a 32-byte secret hash; returns its id. */
export async function insertKey(ds: DataSource, userId: string): Promise<string> {
  const id = newKeyId();
  await rows(ds, 'INSERT INTO api_keys (id, user_id, name, secret_hash) VALUES ($1, $2, $3, $4)', [
    id,
    userId,
    'fixture key',
    randomBytes(32),
  ]);
  return id;
}

/** A user budget override: the user must be a member of the group (database trigger). */
export async function insertOverride(
  ds: DataSource,
  userId: string,
  groupId: string,
  micros: bigint,
): Promise<void> {
  await rows(
    ds,
    'INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros) VALUES ($1, $2, $3)',
    [userId, groupId, micros.toString()],
  );
}

export async function insertAuditEntry(
  ds: DataSource,
  resourceType: string,
  resourceId: string,
): Promise<void> {
  await rows(
    ds,
    `INSERT INTO audit_logs (actor, action, resource_type, resource_id) VALUES ('fixture', 'create', $1, $2)`,
    [resourceType, resourceId],
  );
}

export const SYSTEM: Record<'pricingWorker' | 'membershipListener' | 'database', SystemActor> = {
  pricingWorker: { kind: 'system', name: 'system:pricing-worker' },
  membershipListener: { kind: 'system', name: 'system:membership-listener' },
  database: { kind: 'system', name: 'system:database' },
};

/** The people of the world and how test titles name them. */
export const PEOPLE = {
  owner: 'site owner',
  userAdmin: 'site user-admin',
  auditor: 'site auditor',
  gateway: 'site ai-gateway',
  orgAdminA: 'organization-admin of A',
  orgUserAdminA: 'organization-user-admin of A',
  orgAuditorA: 'organization-auditor of A',
  groupMember: 'member of group A1',
  orgMember: 'member of A outside its groups',
  memberB: 'member of B',
  orgAdminB: 'organization-admin of B',
} as const;
export type PersonName = keyof typeof PEOPLE;
export type ActorName = PersonName | keyof typeof SYSTEM;

export const ACTOR_LABELS: Record<ActorName, string> = {
  ...PEOPLE,
  pricingWorker: 'system:pricing-worker',
  membershipListener: 'system:membership-listener',
  database: 'system:database',
};

/**
 * A small world: site-role holders outside every organization, the three organization roles of A,
 * a member of group A1, a member of A in no group, and people of B. A2 is a group of A nobody is in.
 * Prices and one audit entry live under names no other test file uses.
 */
export interface World {
  ds: DataSource;
  orgA: Organization;
  orgB: Organization;
  everyoneA: Group;
  groupA1: Group;
  groupA2: Group;
  groupB: Group;
  people: Record<PersonName, Person>;
  /** the key of `groupMember` */
  memberKeyId: string;
  provider: string;
  auditResourceType: string;
  /** group A1's budget */
  budgetMicros: bigint;
}

export function actorOf(w: World, name: ActorName): Actor {
  return name in SYSTEM ? SYSTEM[name as keyof typeof SYSTEM] : w.people[name as PersonName].actor;
}

export async function setup(ds: DataSource): Promise<World> {
  const orgA = await insertOrganization(ds);
  const orgB = await insertOrganization(ds);
  const groupA1 = await insertGroup(ds, orgA.id);
  const groupA2 = await insertGroup(ds, orgA.id);
  const groupB = await insertGroup(ds, orgB.id);
  const A = orgA.id;
  const B = orgB.id;
  const specs: Record<PersonName, PersonSpec> = {
    owner: { site: ['owner'] },
    userAdmin: { site: ['user-admin'] },
    auditor: { site: ['auditor'] },
    gateway: { site: ['ai-gateway'] },
    orgAdminA: { orgs: { [A]: ['organization-admin'] } },
    orgUserAdminA: { orgs: { [A]: ['organization-user-admin'] } },
    orgAuditorA: { orgs: { [A]: ['organization-auditor'] } },
    groupMember: { orgs: { [A]: [] }, groups: [groupA1.id] },
    orgMember: { orgs: { [A]: [] } },
    memberB: { orgs: { [B]: [] }, groups: [groupB.id] },
    orgAdminB: { orgs: { [B]: ['organization-admin'] } },
  };
  const people = {} as Record<PersonName, Person>;
  for (const name of Object.keys(specs) as PersonName[]) people[name] = await insertPerson(ds, specs[name]);

  const budgetMicros = 50_000_000n;
  await insertBudget(ds, groupA1.id, budgetMicros);
  const provider = uniqueName('acme');
  await insertPrice(ds, { provider, model: 'm1', source: 'default', input: 1000 });
  await insertPrice(ds, { provider, model: 'm1', source: 'custom', input: 2000 });
  await insertPrice(ds, { provider, model: 'm2', source: 'default', input: 3000 });
  const auditResourceType = uniqueName('fixture');
  await insertAuditEntry(ds, auditResourceType, 'x');

  return {
    ds,
    orgA,
    orgB,
    everyoneA: await everyoneGroup(ds, orgA),
    groupA1,
    groupA2,
    groupB,
    people,
    memberKeyId: await insertKey(ds, people.groupMember.user.id),
    provider,
    auditResourceType,
    budgetMicros,
  };
}

/**
 * Destroys the DataSource and waits until the server has no connection to its database left:
 * the pool's end() resolves before its sockets are closed, and DROP DATABASE ... WITH (FORCE)
 * right after would kill a live connection (the same reason as closePool in @aigov/testing,
 * which cannot be used here because the DataSource ends its own pool). Public means only: the
 * database is asked for its name before, and `pg_stat_activity` after.
 */
export async function destroyDataSource(ds: DataSource): Promise<void> {
  if (!ds.isInitialized) return;
  const [{ name }] = await rows<{ name: string }>(ds, 'SELECT current_database() AS name');
  await ds.destroy();
  await waitForNoConnections(name);
}
