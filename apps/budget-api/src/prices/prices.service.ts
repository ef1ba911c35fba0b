import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import { moneyDiff, type PriceSyncSource } from '@aigov/contracts';
import type { Counted, Page, PriceFilter, PriceRow, PriceTierRow } from '@aigov/db';
import type { FieldValidation } from '@aigov/errors';
import { validationFailed } from '../http/validation.pipe';
import { PRICE_FIELDS, type PriceTierDto, type PutPriceDto } from './prices.dto';
import { PriceSyncClient } from './price-sync.client';

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

/** What the DTO cannot say about one field: at least one price, tiers in increasing order. */
function checkPrice(body: PutPriceDto): FieldValidation[] {
  const problems: FieldValidation[] = [];
  if (PRICE_FIELDS.every((f) => body[f] === null)) {
    for (const f of PRICE_FIELDS) {
      problems.push({ field: f, detail: 'at least one of the four prices must not be null' });
    }
  }
  const tiers = body.tiers ?? [];
  for (let i = 1; i < tiers.length; i++) {
    if (tiers[i].min_context_tokens <= tiers[i - 1].min_context_tokens) {
      problems.push({
        field: `tiers[${i}].min_context_tokens`,
        detail: `must be greater than tiers[${i - 1}].min_context_tokens (${tiers[i - 1].min_context_tokens}): tiers are in strictly increasing order`,
      });
    }
  }
  return problems;
}

const tierRow = (t: PriceTierDto): PriceTierRow => ({
  min_context_tokens: t.min_context_tokens,
  input_price: t.input_price,
  output_price: t.output_price,
  cache_read_price: t.cache_read_price,
  cache_write_price: t.cache_write_price,
});

@Injectable()
export class PricesService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(PriceSyncClient) private readonly syncClient: PriceSyncClient,
  ) {}

  list(actor: Actor, filter: PriceFilter, page: Page): Promise<{ prices: PriceRow[] } & Counted> {
    return this.stores.prices.listPrices(actor, filter, page);
  }

  /** The effective price: the custom row when there is one, else the default row. */
  get(actor: Actor, provider: string, model: string): Promise<PriceRow> {
    return this.stores.prices.getEffectivePrice(actor, provider, model);
  }

  /** Sets the custom row (create or update), with its audit entry in the same transaction. */
  async putCustom(
    actor: Actor,
    requestId: string,
    provider: string,
    model: string,
    body: PutPriceDto,
  ): Promise<PriceRow> {
    const problems = checkPrice(body);
    if (problems.length > 0) throw validationFailed(problems);
    const input = {
      inputPrice: big(body.input_price),
      outputPrice: big(body.output_price),
      cacheReadPrice: big(body.cache_read_price),
      cacheWritePrice: big(body.cache_write_price),
      // No tiers has one spelling: an empty list is stored as null, like an absent one.
      tiers: body.tiers && body.tiers.length > 0 ? body.tiers.map(tierRow) : null,
    };
    return this.stores.transaction(requestId, async (tx) => {
      const { before, after } = await tx.prices.upsertCustomPrice(actor, provider, model, input);
      await tx.audit.record(actor, {
        action: before ? 'write' : 'create',
        resourceType: 'ai_model_price',
        resourceId: `${provider}/${model}`,
        organizationId: null,
        diff: priceDiff(provider, model, before, after),
        requestId,
      });
      return after;
    });
  }

  async deleteCustom(actor: Actor, requestId: string, provider: string, model: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const before = await tx.prices.deleteCustomPrice(actor, provider, model);
      await tx.audit.record(actor, {
        action: 'delete',
        resourceType: 'ai_model_price',
        resourceId: `${provider}/${model}`,
        organizationId: null,
        diff: priceDiff(provider, model, before, null),
        requestId,
      });
    });
  }

  /** Asks the pricing worker to sync and answers its result data. */
  async sync(actor: Actor, requestId: string, source: PriceSyncSource): Promise<unknown> {
    this.stores.prices.assertCanSync(actor);
    return this.syncClient.sync(requestId, { source });
  }
}
