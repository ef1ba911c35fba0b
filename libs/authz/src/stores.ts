import {
  ApiKeyRepository,
  AuditRepository,
  GroupBudgetRepository,
  GroupRepository,
  IdentitySyncRepository,
  OrganizationRepository,
  OverrideRepository,
  PriceQueryRepository,
  SpendRepository,
  UserRepository,
  isRetryableTransactionError,
} from '@aigov/db';
import { DataSource, type EntityManager } from 'typeorm';
import { ApiKeyStore } from './api-keys.store';
import { AuditTrail, DeferredAudit } from './audit-trail';
import { AuditStore } from './audit.store';
import { BudgetStore } from './group-budgets.store';
import { GroupStore } from './groups.store';
import { IdentitySyncStore } from './identity-sync.store';
import { OrganizationStore } from './organizations.store';
import { OverrideStore } from './overrides.store';
import { PriceStore } from './prices.store';
import { SpendStore } from './spend.store';
import { UserStore } from './users.store';

/**
 * The stores mirror the repositories (one file per aggregate) and add the permission check and
 * the audit entry of each change (the idea of coder's dbauthz). Every method takes the actor
 * first. A resource the actor cannot read is reported as not found (no existence leak); one it
 * can read but not change is forbidden.
 */

/** The stores over one database handle; `transaction` gives the same stores inside one. */
export class Stores {
  readonly groups: GroupStore;
  readonly budgets: BudgetStore;
  readonly prices: PriceStore;
  readonly audit: AuditStore;
  readonly users: UserStore;
  readonly keys: ApiKeyStore;
  readonly organizations: OrganizationStore;
  readonly overrides: OverrideStore;
  readonly identity: IdentitySyncStore;
  readonly spend: SpendStore;

  /**
   * `requestId`: the request the changes belong to, written to their audit entries. Changing
   * methods are meant to run inside `transaction` (so a change and its entries commit together).
   */
  constructor(
    private readonly db: DataSource | EntityManager,
    requestId: string | null = null,
    deferred: DeferredAudit | null = null,
  ) {
    const users = new UserRepository(db);
    const groups = new GroupRepository(db);
    const auditRepository = new AuditRepository(db);
    const trail = new AuditTrail(auditRepository, requestId, deferred);
    this.groups = new GroupStore(groups, db, trail);
    this.budgets = new BudgetStore(this.groups, new GroupBudgetRepository(db), trail);
    this.prices = new PriceStore(new PriceQueryRepository(db), trail);
    this.audit = new AuditStore(auditRepository);
    this.users = new UserStore(users, trail);
    this.keys = new ApiKeyStore(users, new ApiKeyRepository(db), trail);
    this.organizations = new OrganizationStore(new OrganizationRepository(db), trail);
    this.overrides = new OverrideStore(this.users, this.groups, new OverrideRepository(db), groups, trail);
    this.identity = new IdentitySyncStore(new IdentitySyncRepository(db), trail);
    this.spend = new SpendStore(new SpendRepository(db), this.users);
  }

  /**
   * Runs `fn` in one transaction; the request id is handed to the database (set_config) so
   * that entries written by triggers can carry it. A deadlock or serialization failure rolls
   * the whole attempt back and runs it again (a bounded number of times, with a short jittered
   * pause); one that outlives the retries surfaces as the driver error, which the transports
   * map to "unavailable, retry later".
   */
  /**
   * The same stores in the same open transaction, recording `requestId` from here on, in the
   * audit entries they write and (set_config) in those the database's triggers write: a batch
   * of events applied in one transaction, each under its own id.
   */
  async forRequest(requestId: string): Promise<Stores> {
    await this.db.query(`SELECT set_config('aigov.request_id', $1, true)`, [requestId]);
    return new Stores(this.db, requestId);
  }

  /**
   * The same stores recording `requestId` in their audit entries, without telling the database:
   * for callers whose first statement sets `aigov.request_id` itself (the listener's beginEvent).
   */
  withRequestId(requestId: string, deferred: DeferredAudit | null = null): Stores {
    return new Stores(this.db, requestId, deferred);
  }

  /** Collects audit entries for `withRequestId` stores; flush it before the transaction ends. */
  deferredAudit(): DeferredAudit {
    return new DeferredAudit(new AuditRepository(this.db));
  }

  /**
   * Runs `fn` inside a savepoint of the open transaction: what it changed is kept when it
   * returns `keep: true`, undone when it returns `keep: false` or throws (the error goes on).
   */
  async savepoint<T>(fn: () => Promise<{ keep: boolean; value: T }>): Promise<T> {
    await this.db.query('SAVEPOINT aigov_step');
    let result: { keep: boolean; value: T };
    try {
      result = await fn();
    } catch (err) {
      // A broken connection fails the rollback too; the original error says why.
      await this.db.query('ROLLBACK TO SAVEPOINT aigov_step').catch(() => undefined);
      throw err;
    }
    await this.db.query(result.keep ? 'RELEASE SAVEPOINT aigov_step' : 'ROLLBACK TO SAVEPOINT aigov_step');
    return result.value;
  }

  async transaction<T>(requestId: string | null, fn: (tx: Stores) => Promise<T>): Promise<T> {
    const ds = this.db instanceof DataSource ? this.db : this.db.connection;
    for (let attempt = 1; ; attempt++) {
      try {
        return await ds.transaction(async (em) => {
          if (requestId) await em.query(`SELECT set_config('aigov.request_id', $1, true)`, [requestId]);
          return fn(new Stores(em, requestId));
        });
      } catch (err) {
        if (attempt >= TRANSACTION_ATTEMPTS || !isRetryableTransactionError(err)) throw err;
        await sleep(Math.random() * 10 * attempt);
      }
    }
  }
}

/** Attempts of one transaction that keeps losing deadlock/serialization races. */
export const TRANSACTION_ATTEMPTS = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
