import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor, type UserActor } from '@aigov/authz';
import {
  OrganizationRepository,
  UserRepository,
  type Organization,
  type Page,
  type SiteRole,
  type User,
} from '@aigov/db';
import { DomainError, validationFailed } from '@aigov/errors';
import { DataSource } from 'typeorm';
import { newToken } from '../auth/tokens';

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
   * calls create one). Creates organization `default` and the user's first key, through the
   * stores as the new owner, so each change is audited like any other.
   */
  async createFirstUser(requestId: string, u: { username: string; email: string; name: string | null }) {
    return this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [FIRST_USER_LOCK]);
      if ((await new UserRepository(em).countUsers()) > 0) {
        throw new DomainError('conflict', 'The first user already exists; ask an owner for an account.');
      }
      // Nobody can authorize the first user's creation: it is recorded as done by that user.
      const tx = new Stores(em, requestId);
      const { user, actor } = await tx.users.createFirstOwner(u);
      const org =
        (await new OrganizationRepository(em).getOrganizationByName(DEFAULT_ORGANIZATION)) ??
        (await tx.organizations.createOrganization(actor, DEFAULT_ORGANIZATION, 'Default'));
      await tx.organizations.upsertMember(actor, org, user, []);
      const t = newToken();
      await tx.keys.createKey(actor, user, {
        id: t.id,
        name: 'first',
        secretHash: t.secretHash,
        expiresAt: null,
      });
      return { user, token: t.token };
    });
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
      for (const org of await this.resolveOrganizations(actor, tx, u.organizationIds)) {
        await tx.organizations.upsertMember(actor, org, user, []);
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

  /** What goes with the user is removed and recorded by the database (CONTRACT 1.5). */
  async deleteUser(actor: Actor, requestId: string, ref: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      await tx.users.deleteUser(actor, await tx.users.getUser(actor, ref));
    });
  }

  async setRoles(actor: Actor, requestId: string, ref: string, roles: SiteRole[]): Promise<User> {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      return (await tx.users.setRoles(actor, user, [...new Set(roles)])).after;
    });
  }

  async setStatus(actor: Actor, requestId: string, ref: string, status: User['status']): Promise<User> {
    return this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      return (await tx.users.setStatus(actor, user, status)).after;
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
      const key = await tx.keys.createKey(actor, user, {
        id: t.id,
        name,
        secretHash: t.secretHash,
        expiresAt,
      });
      return { key, token: t.token };
    });
  }

  async listKeys(actor: Actor, ref: string, page: Page) {
    const user = await this.stores.users.getUser(actor, ref);
    return this.stores.keys.listKeys(actor, user, page);
  }

  async deleteKey(actor: Actor, requestId: string, ref: string, keyId: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const user = await tx.users.getUser(actor, ref);
      await tx.keys.deleteKey(actor, user, keyId);
    });
  }
}
