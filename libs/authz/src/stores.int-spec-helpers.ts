// Fixtures for stores.int-spec.ts: rows inserted with plain SQL, and user actors built from the
// same spec as their rows (what userActor() would make of the user's key principal), so an
// actor's roles and memberships always match the database the stores read.
import type { SystemActor } from '@aigov/contracts';
import { q, type Group, type Organization, type OrgRole, type SiteRole, type User } from '@aigov/db';
import type { Actor, UserActor } from '@aigov/authz';
import {
  everyoneGroup,
  insertApiKey,
  insertGroup,
  insertMember,
  insertOrganization,
  uniqueName,
  waitForNoConnections,
} from '@aigov/testing';
import type { DataSource } from 'typeorm';

export async function rows<T = Record<string, unknown>>(
  ds: DataSource,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return q<T[]>(ds, sql, params);
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
  const user = await insertMember(ds, { roles: spec.site, orgs: spec.orgs, groups: spec.groups });
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

export const SYSTEM: Record<
  'pricingWorker' | 'membershipListener' | 'database' | 'aiGateway' | 'budgetApi',
  SystemActor
> = {
  pricingWorker: { kind: 'system', name: 'system:pricing-worker' },
  membershipListener: { kind: 'system', name: 'system:membership-listener' },
  database: { kind: 'system', name: 'system:database' },
  aiGateway: { kind: 'system', name: 'system:ai-gateway' },
  budgetApi: { kind: 'system', name: 'system:budget-api' },
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
  aiGateway: 'system:ai-gateway',
  budgetApi: 'system:budget-api',
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
    everyoneA: await everyoneGroup(ds, orgA.id),
    groupA1,
    groupA2,
    groupB,
    people,
    memberKeyId: await insertApiKey(ds, people.groupMember.user.id),
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
