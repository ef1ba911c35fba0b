import type { ApiKey, ApiKeyRepository, Counted, Page, User, UserRepository } from '@aigov/db';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import { assertOutranks, forbidden, notFound, requireAllowed, userRef, userSubject } from './store-checks';

/**
 * A user's API keys. Managing them lets one act as the user, so it needs the right on the user and
 * at least the user's site roles (assertOutranks). Never the secret, nor its hash, in an entry.
 */
export class ApiKeyStore {
  constructor(
    private readonly users: UserRepository,
    private readonly keys: ApiKeyRepository,
    private readonly trail: AuditTrail,
  ) {}

  async createKey(
    actor: Actor,
    u: User,
    k: { id: string; name: string | null; secretHash: Buffer; expiresAt: Date | null },
  ): Promise<ApiKey> {
    requireAllowed(
      actor,
      'user.keys.manage',
      await userSubject(this.users, u),
      forbidden("manage this user's keys"),
    );
    assertOutranks(actor, u, "manage this user's keys");
    const key = await this.keys.create({ ...k, userId: u.id });
    // Never the secret, nor its hash.
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'api_key',
      resourceId: key.id,
      organizationId: null,
      diff: { user: userRef(u), name: key.name, expires_at: key.expiresAt },
    });
    return key;
  }

  async listKeys(actor: Actor, u: User, page: Page): Promise<{ keys: ApiKey[] } & Counted> {
    requireAllowed(
      actor,
      'user.keys.manage',
      await userSubject(this.users, u),
      forbidden("manage this user's keys"),
    );
    assertOutranks(actor, u, "manage this user's keys");
    return this.keys.listPageForUser(u.id, page);
  }

  async deleteKey(actor: Actor, u: User, id: string): Promise<ApiKey> {
    requireAllowed(
      actor,
      'user.keys.manage',
      await userSubject(this.users, u),
      forbidden("manage this user's keys"),
    );
    assertOutranks(actor, u, "manage this user's keys");
    const key = await this.keys.get(u.id, id);
    if (!key || !(await this.keys.delete(u.id, id))) throw notFound('API key')();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'api_key',
      resourceId: key.id,
      organizationId: null,
      diff: { user: userRef(u), name: key.name },
    });
    return key;
  }
}
