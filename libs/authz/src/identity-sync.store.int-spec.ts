import { randomUUID } from 'node:crypto';
import { MEMBERSHIP_LISTENER_ACTOR } from '@aigov/contracts';
import { Stores } from '@aigov/authz';
import { createDataSource } from '@aigov/db';
import { createTestDatabase, waitForNoConnections, type TestDatabase } from '@aigov/testing';
import type { DataSource } from 'typeorm';
import {
  joinGroup,
  joinOrganization,
  newGroup,
  newOrganization,
  newUser,
  sql,
} from './identity-sync.store.int-spec-cases';

// The calls of IdentitySyncStore that change nothing: a redelivered or repeated identity event
// must leave the rows as they were and write no audit entry. (stores.int-spec.ts has the allowed
// and refused calls that do change something; its harness requires a change of every allowed write.)

const A = MEMBERSHIP_LISTENER_ACTOR;
let db: TestDatabase;
let ds: DataSource;
let stores: Stores;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'aigov-identity-sync-store-test' });
  await ds.initialize();
  stores = new Stores(ds);
});
afterAll(async () => {
  // The DataSource ends its own pool; the drop below would kill a connection still closing.
  if (ds?.isInitialized) {
    await ds.destroy();
    await waitForNoConnections(db.name);
  }
  await db?.drop();
});

const w = () => ({ ds });
const auditCount = async () =>
  Number((await sql<{ n: string }>(w(), 'SELECT count(*) AS n FROM audit_logs'))[0].n);
/** Every column of the rows, updated_at included: "unchanged" must not even touch them. */
const snapshot = () =>
  Promise.all([
    sql(w(), 'SELECT * FROM users ORDER BY id'),
    sql(w(), 'SELECT * FROM organizations ORDER BY id'),
    sql(w(), 'SELECT * FROM groups ORDER BY id'),
    sql(w(), 'SELECT * FROM organization_members ORDER BY organization_id, user_id'),
    sql(w(), 'SELECT * FROM group_members ORDER BY group_id, user_id'),
  ]);

/** Runs `call` and expects its result, the same rows after as before, and no new audit entry. */
async function expectNoChange<R>(call: () => Promise<R>, result: R): Promise<void> {
  const before = await snapshot();
  const entries = await auditCount();
  await expect(call()).resolves.toEqual(result);
  expect(await snapshot()).toEqual(before);
  expect(await auditCount()).toBe(entries);
}

describe('IdentitySyncStore: calls that change nothing write nothing', () => {
  it('upsertUser with the same fields, or leaving out name and status, is unchanged', async () => {
    const u = await newUser(w());
    await sql(w(), `UPDATE users SET name = 'Di', status = 'suspended' WHERE id = $1`, [u.id]);
    await expectNoChange(
      () => stores.identity.upsertUser(A, { ...u, name: 'Di', status: 'suspended' }),
      'unchanged',
    );
    await expectNoChange(() => stores.identity.upsertUser(A, u), 'unchanged');
  });

  it('upsertOrganization with the same name, with or without the same display name, is unchanged', async () => {
    const org = await newOrganization(w());
    await sql(w(), `UPDATE organizations SET display_name = 'Acme' WHERE id = $1`, [org.id]);
    await expectNoChange(
      () => stores.identity.upsertOrganization(A, { ...org, displayName: 'Acme' }),
      'unchanged',
    );
    await expectNoChange(() => stores.identity.upsertOrganization(A, org), 'unchanged');
  });

  it('upsertOrganizationMember with the same roles in another order, or null roles, is unchanged', async () => {
    const org = await newOrganization(w());
    const u = await newUser(w());
    await joinOrganization(w(), org.id, u.id, ['organization-auditor', 'organization-admin']);
    await expectNoChange(
      () =>
        stores.identity.upsertOrganizationMember(A, org.id, u, [
          'organization-admin',
          'organization-auditor',
        ]),
      'unchanged',
    );
    await expectNoChange(() => stores.identity.upsertOrganizationMember(A, org.id, u, null), 'unchanged');
  });

  it('upsertGroup with the same name and display name is unchanged', async () => {
    const g = await newGroup(w(), (await newOrganization(w())).id);
    await expectNoChange(
      () =>
        stores.identity.upsertGroup(A, {
          id: g.id,
          organizationId: g.organizationId,
          name: g.name,
          displayName: g.displayName,
        }),
      'unchanged',
    );
    await expectNoChange(
      () => stores.identity.upsertGroup(A, { id: g.id, organizationId: g.organizationId, name: g.name }),
      'unchanged',
    );
  });

  it('deleting a user, organization or group that does not exist returns false', async () => {
    await expectNoChange(() => stores.identity.deleteUser(A, randomUUID()), false);
    await expectNoChange(() => stores.identity.deleteOrganization(A, randomUUID()), false);
    await expectNoChange(() => stores.identity.deleteGroup(A, randomUUID()), false);
  });

  it('removing a membership that does not exist, or adding one that does, returns false', async () => {
    const org = await newOrganization(w());
    const g = await newGroup(w(), org.id);
    const member = await newUser(w());
    const outsider = await newUser(w());
    await joinOrganization(w(), org.id, member.id);
    await joinGroup(w(), g.id, member.id);
    await expectNoChange(() => stores.identity.removeOrganizationMember(A, org.id, outsider.id), false);
    await expectNoChange(() => stores.identity.addGroupMember(A, g, member), false);
    await expectNoChange(() => stores.identity.removeGroupMember(A, g.id, outsider.id), false);
  });
});
