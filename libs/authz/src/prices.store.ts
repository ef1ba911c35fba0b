import { moneyDiff } from '@aigov/contracts';
import type {
  Counted,
  Page,
  PriceFilter,
  PriceChangeRow,
  PriceInput,
  PriceQueryRepository,
  PriceRow,
  PriceTierRow,
} from '@aigov/db';
import { DomainError } from '@aigov/errors';
import { actorName, type Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import { forbidden, requireAllowed } from './store-checks';

const big = (v: number | null): bigint | null => (v === null ? null : BigInt(v));

/** A tier list as people read it in the audit log: each price in dollars next to its micros. */
function tiersDiff(tiers: PriceTierRow[] | null | undefined) {
  if (!tiers) return null;
  return tiers.map((t) => ({
    min_context_tokens: t.min_context_tokens,
    input_price: moneyDiff(big(t.input_price)),
    output_price: moneyDiff(big(t.output_price)),
    cache_read_price: moneyDiff(big(t.cache_read_price)),
    cache_write_price: moneyDiff(big(t.cache_write_price)),
  }));
}

/** Every price and the tiers before and after (prices are micro-USD per million tokens). */
function priceDiff(provider: string, model: string, before: PriceRow | null, after: PriceRow | null) {
  return {
    provider,
    model,
    input_price: {
      before: moneyDiff(before?.inputPrice ?? null),
      after: moneyDiff(after?.inputPrice ?? null),
    },
    output_price: {
      before: moneyDiff(before?.outputPrice ?? null),
      after: moneyDiff(after?.outputPrice ?? null),
    },
    cache_read_price: {
      before: moneyDiff(before?.cacheReadPrice ?? null),
      after: moneyDiff(after?.cacheReadPrice ?? null),
    },
    cache_write_price: {
      before: moneyDiff(before?.cacheWritePrice ?? null),
      after: moneyDiff(after?.cacheWritePrice ?? null),
    },
    tiers: { before: tiersDiff(before?.tiers), after: tiersDiff(after?.tiers) },
  };
}

export class PriceStore {
  constructor(
    private readonly prices: PriceQueryRepository,
    private readonly trail: AuditTrail,
  ) {}

  async listPrices(actor: Actor, f: PriceFilter, page: Page): Promise<{ prices: PriceRow[] } & Counted> {
    requireAllowed(actor, 'price.read', {}, forbidden('read prices'));
    return this.prices.list(f, page);
  }

  async getEffectivePrice(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    requireAllowed(actor, 'price.read', {}, forbidden('read prices'));
    const p = await this.prices.getEffective(provider, model);
    if (!p) throw new DomainError('not_found', `No price for ${provider}/${model}.`);
    return p;
  }

  /**
   * Every change of the model's price rows (both sources), newest first. Not found only when the
   * model has neither history nor a price row: a row older than the history has an empty one.
   */
  async listPriceChanges(
    actor: Actor,
    provider: string,
    model: string,
    page: Page,
  ): Promise<{ changes: PriceChangeRow[] } & Counted> {
    requireAllowed(actor, 'price.read', {}, forbidden('read prices'));
    const result = await this.prices.listChanges(provider, model, page);
    if (result.count === 0 && !(await this.prices.exists(provider, model))) {
      throw new DomainError('not_found', `No price history for ${provider}/${model}.`);
    }
    return result;
  }

  async upsertCustomPrice(actor: Actor, provider: string, model: string, input: PriceInput) {
    requireAllowed(actor, 'price.write', {}, forbidden('set custom prices'));
    const { before, after } = await this.prices.upsertCustom(provider, model, input, actorName(actor));
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'ai_model_price',
      resourceId: `${provider}/${model}`,
      organizationId: null,
      diff: priceDiff(provider, model, before, after),
    });
    return { before, after };
  }

  async deleteCustomPrice(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    requireAllowed(actor, 'price.write', {}, forbidden('delete custom prices'));
    const before = await this.prices.deleteCustom(provider, model, actorName(actor));
    if (!before) throw new DomainError('not_found', `No custom price for ${provider}/${model}.`);
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'ai_model_price',
      resourceId: `${provider}/${model}`,
      organizationId: null,
      diff: priceDiff(provider, model, before, null),
    });
    return before;
  }

  /** Asking the pricing worker to sync is checked here; the request itself goes over NATS. */
  assertCanSync(actor: Actor): void {
    requireAllowed(actor, 'price.sync', {}, forbidden('sync prices'));
  }
}
