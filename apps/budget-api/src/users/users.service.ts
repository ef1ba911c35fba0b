import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor, type UserActor } from '@aigov/authz';
import { IdentityRepository, type ApiKey, type Organization, type SiteRole, type User } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import { DataSource } from 'typeorm';
import { newToken } from '../auth/tokens';
import { validationFailed } from '../http/validation.pipe';

const FIRST_USER_LOCK = 4_702_113_903;
const DEFAULT_ORGANIZATION = 'default';

@Injectable()
export class UsersService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(DataSource) private readonly ds: DataSource,
  ) {}

  /**
   * Bootstraps the first owner: only while no user exists (an advisory lock makes two racing
   * calls create one). Creates organization `default` and the user's first key.
   */
  async createFirstUser(requestId: string, u: { username: string; email: string; name: string | null }) {
    return this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [FIRST_USER_LOCK]);
      const identity = new IdentityRepository(em);
      if ((await identity.countUsers()) > 0) {
        throw new DomainError('conflict', 'The first user already exists; ask an owner for an account.');
      }
      const user = await identity.createUser({ ...u, roles: ['owner'] });
      const org =
        (await identity.getOrganizationByName(DEFAULT_ORGANIZATION)) ??
        (await identity.createOrganization({ name: DEFAULT_ORGANIZATION, displayName: 'Default' }));
      await identity.upsertOrganizationMember(org.id, user.id, []);
      const t = newToken();
      await em.query(`INSERT INTO api_keys (id, user_id, name, secret_hash) VALUES ($1, $2, $3, $4)`, [
        t.id,
        user.id,
        'first',
        t.secretHash,
      ]);
      const audit = { actorId: user.id, actor: user.username, organizationId: org.id, requestId };
      await em.query(
        `INSERT INTO audit_logs (actor_id, actor, action, resource_type, resource_id, organization_id, diff, request_id)
         VALUES ($1, $2, 'create', 'user_roles', $3, NULL, $4::jsonb, $5),
                ($1, $2, 'create', 'organization_member', $6, $7, $8::jsonb, $5),
                ($1, $2, 'create', 'api_key', $9, NULL, $10::jsonb, $5)`,
        [
          audit.actorId,
          audit.actor,
          user.id,
          JSON.stringify({ roles: { before: [], after: ['owner'] } }),
          requestId,
          `${org.id}/${user.id}`,
          org.id,
          JSON.stringify({
            user: { id: user.id, username: user.username },
            roles: { before: null, after: [] },
          }),
          t.id,
          JSON.stringify({ user_id: user.id, name: 'first', expires_at: null }),
        ],
      );
      return { user, token: t.token };
    });
  }

  getUser(actor: Actor, ref: string): Promise<User> {
    return this.stores.users.getUser(actor, ref);
  }

  listUsers(actor: Actor, q: string | null, page: { limit: number; offset: number }) {
    return this.stores.users.listUsers(actor, q, page);
  }

  async createUser(
    actor: UserActor,
    requestId: string,
    u: {
      username: string;
      email: string;
      name: string | null;
      roles: SiteRole[];
      organizationIds: string[] | null;
    },
  ): Promise<User> {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.createUser(actor, {
        username: u.username,
        email: u.email,
        name: u.name,
        roles: u.roles,
      });
      if (u.roles.length > 0) {
        await tx.audit.record(actor, {
          action: 'create',
          resourceType: 'user_roles',
          resourceId: user.id,
          organizationId: null,
          diff: { user: { id: user.id, username: user.username }, roles: { before: [], after: u.roles } },
          requestId,
        });
      }
      const orgs = await this.resolveOrganizations(actor, tx, u.organizationIds);
      for (const org of orgs) {
        const { after } = await tx.organizations.upsertMember(actor, org, user, []);
        await tx.audit.record(actor, {
          action: 'create',
          resourceType: 'organization_member',
          resourceId: `${org.id}/${user.id}`,
          organizationId: org.id,
          diff: {
            user: { id: user.id, username: user.username },
            roles: { before: null, after: after.roles },
          },
          requestId,
        });
      }
      return user;
    });
  }

  /** `null`: the `default` organization (when it exists); `[]`: none. Unknown ids are 400. */
  private async resolveOrganizations(
    actor: UserActor,
    tx: Stores,
    ids: string[] | null,
  ): Promise<Organization[]> {
    if (ids === null) {
      try {
        return [await tx.organizations.getOrganization(actor, DEFAULT_ORGANIZATION)];
      } catch (err) {
        if (err instanceof DomainError && err.code === 'not_found') return [];
        throw err;
      }
    }
    const orgs: Organization[] = [];
    const invalid: { field: string; detail: string }[] = [];
    for (const [i, id] of [...new Set(ids.map((x) => x.toLowerCase()))].entries()) {
      try {
        orgs.push(await tx.organizations.getOrganization(actor, id));
      } catch (err) {
        if (!(err instanceof DomainError && err.code === 'not_found')) throw err;
        invalid.push({ field: `organization_ids[${i}]`, detail: `organization ${id} does not exist` });
      }
    }
    if (invalid.length > 0) throw validationFailed(invalid);
    return orgs;
  }

  async deleteUser(actor: Actor, requestId: string, ref: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      const gone = await tx.users.deleteUser(actor, user);
      // What went with the user, as the audit log records memberships, roles and keys.
      const who = { id: user.id, username: user.username };
      for (const organizationId of gone.organizationIds) {
        await tx.audit.record(actor, {
          action: 'delete',
          resourceType: 'organization_member',
          resourceId: `${organizationId}/${user.id}`,
          organizationId,
          diff: { user: who },
          requestId,
          reason: 'user_deleted',
        });
      }
      if (user.roles.length > 0) {
        await tx.audit.record(actor, {
          action: 'delete',
          resourceType: 'user_roles',
          resourceId: user.id,
          organizationId: null,
          diff: { user: who, roles: { before: user.roles, after: [] } },
          requestId,
          reason: 'user_deleted',
        });
      }
      for (const key of gone.keys) {
        await tx.audit.record(actor, {
          action: 'delete',
          resourceType: 'api_key',
          resourceId: key.id,
          organizationId: null,
          diff: { user: who, name: key.name },
          requestId,
          reason: 'user_deleted',
        });
      }
    });
  }

  async setRoles(actor: Actor, requestId: string, ref: string, roles: SiteRole[]): Promise<User> {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      const { before, after } = await tx.users.setRoles(actor, user, [...new Set(roles)]);
      await tx.audit.record(actor, {
        action: 'write',
        resourceType: 'user_roles',
        resourceId: user.id,
        organizationId: null,
        diff: {
          user: { id: user.id, username: user.username },
          roles: { before: before.roles, after: after.roles },
        },
        requestId,
      });
      return after;
    });
  }

  async createKey(
    actor: Actor,
    requestId: string,
    ref: string,
    name: string | null,
    lifetimeSeconds: number | null,
  ) {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      const t = newToken();
      const expiresAt = lifetimeSeconds === null ? null : new Date(Date.now() + lifetimeSeconds * 1000);
      const key = await tx.users.createKey(actor, user, {
        id: t.id,
        name,
        secretHash: t.secretHash,
        expiresAt,
      });
      await tx.audit.record(actor, {
        action: 'create',
        resourceType: 'api_key',
        resourceId: key.id,
        organizationId: null,
        diff: { user: { id: user.id, username: user.username }, name, expires_at: key.expiresAt },
        requestId,
      });
      return { key, token: t.token };
    });
  }

  async listKeys(actor: Actor, ref: string): Promise<ApiKey[]> {
    const user = await this.stores.users.getUser(actor, ref);
    return this.stores.users.listKeys(actor, user);
  }

  async deleteKey(actor: Actor, requestId: string, ref: string, keyId: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      const key = await tx.users.deleteKey(actor, user, keyId);
      await tx.audit.record(actor, {
        action: 'delete',
        resourceType: 'api_key',
        resourceId: key.id,
        organizationId: null,
        diff: { user: { id: user.id, username: user.username }, name: key.name },
        requestId,
      });
    });
  }
}
