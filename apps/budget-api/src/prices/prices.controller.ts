import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import type { PriceTierRow } from '@aigov/db';
import { Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { listBody, page } from '../http/query.dto';
import { priceChangeResponse, priceResponse } from '../http/responses';
import { ModelParam, ProviderParam } from './price-params';
import {
  ListPriceChangesQuery,
  ListPricesQuery,
  PutPriceDto,
  SyncPricesDto,
  type PriceTierDto,
} from './prices.dto';
import { PricesService } from './prices.service';

/**
 * `{model}` is the rest of the path (a wildcard), so that model ids containing `/` work whether a
 * client percent-encodes them (`accounts%2Ffireworks%2Fmodels%2Fx`, decoded by the router) or not,
 * and so that ids up to 255 characters are not cut off by the router's 100-character limit on
 * named parameters.
 */
const PRICE_PATH = ':provider/*';
const MODEL = '*';

const big = (v: number | null): bigint | null => (v === null ? null : BigInt(v));

const tierRow = (t: PriceTierDto): PriceTierRow => ({
  min_context_tokens: t.min_context_tokens,
  input_price: t.input_price,
  output_price: t.output_price,
  cache_read_price: t.cache_read_price,
  cache_write_price: t.cache_write_price,
});

/**
 * `.../{provider}/{model}/history`: here `{model}` is one named parameter, so the model id must be
 * percent-encoded (as the contract asks of clients); the router matches on the raw path and decodes
 * the parameter afterwards. The router prefers this route's static `/history` over the wildcard,
 * so `GET openai/accounts%2Fx%2Fmodels%2Fm/history` is the history of `accounts/x/models/m`, while
 * `GET openai/m%2Fhistory` (a model id ending in `/history`) and any path of more segments stay
 * the wildcard's: the price itself.
 */
const HISTORY_PATH = ':provider/:model/history';

/** The price book (docs/api.md). */
@Controller('api/v2/ai/model-prices')
@Authenticated()
export class PricesController {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(PricesService) private readonly prices: PricesService,
  ) {}

  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: ListPricesQuery) {
    const { prices, ...counted } = await this.stores.prices.listPrices(
      actor,
      { provider: query.provider, model: query.model, source: query.source },
      page(query),
    );
    return listBody('prices', prices.map(priceResponse), counted);
  }

  @Post('sync')
  @HttpCode(200)
  async sync(@CurrentActor() actor: UserActor, @RequestId() requestId: string, @Body() body: SyncPricesDto) {
    return this.prices.sync(actor, requestId, body.source);
  }

  /** The effective price: the custom row when there is one, else the default row. */
  @Get(PRICE_PATH)
  async get(
    @CurrentActor() actor: UserActor,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
  ) {
    return priceResponse(await this.stores.prices.getEffectivePrice(actor, provider, model));
  }

  /** Every change of the model's price rows, newest first. */
  @Get(HISTORY_PATH)
  async history(
    @CurrentActor() actor: UserActor,
    @Param('provider', ProviderParam) provider: string,
    @Param('model', ModelParam) model: string,
    @Query() query: ListPriceChangesQuery,
  ) {
    const { changes, ...counted } = await this.stores.prices.listPriceChanges(
      actor,
      provider,
      model,
      page(query),
    );
    return listBody('changes', changes.map(priceChangeResponse), counted);
  }

  /** Sets the custom row (create or update). */
  @Put(PRICE_PATH)
  @HttpCode(200)
  async put(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
    @Body() body: PutPriceDto,
  ) {
    const input = {
      inputPrice: big(body.input_price),
      outputPrice: big(body.output_price),
      cacheReadPrice: big(body.cache_read_price),
      cacheWritePrice: big(body.cache_write_price),
      // No tiers has one spelling: an empty list is stored as null, like an absent one.
      tiers: body.tiers && body.tiers.length > 0 ? body.tiers.map(tierRow) : null,
    };
    const { after } = await this.stores.transaction(requestId, (tx) =>
      tx.prices.upsertCustomPrice(actor, provider, model, input),
    );
    return priceResponse(after);
  }

  @Delete(PRICE_PATH)
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
  ): Promise<void> {
    await this.stores.transaction(requestId, (tx) => tx.prices.deleteCustomPrice(actor, provider, model));
  }
}
