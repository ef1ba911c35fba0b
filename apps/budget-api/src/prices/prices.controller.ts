import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import { Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { page } from '../http/query.dto';
import { priceResponse } from '../http/responses';
import { ModelParam, ProviderParam } from './price-params';
import { ListPricesQuery, PutPriceDto, SyncPricesDto } from './prices.dto';
import { PricesService } from './prices.service';

/**
 * `{model}` is the rest of the path (a wildcard), so that model ids containing `/` work whether a
 * client percent-encodes them (`accounts%2Ffireworks%2Fmodels%2Fx`, decoded by the router) or not,
 * and so that ids up to 255 characters are not cut off by the router's 100-character limit on
 * named parameters.
 */
const PRICE_PATH = ':provider/*';
const MODEL = '*';

/** The price book (docs/api.md). */
@Controller('api/v2/ai/model-prices')
@Authenticated()
export class PricesController {
  constructor(@Inject(PricesService) private readonly prices: PricesService) {}

  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: ListPricesQuery) {
    const { prices, count } = await this.prices.list(
      actor,
      { provider: query.provider, model: query.model, source: query.source },
      page(query),
    );
    return { prices: prices.map(priceResponse), count };
  }

  @Post('sync')
  @HttpCode(200)
  async sync(@CurrentActor() actor: UserActor, @RequestId() requestId: string, @Body() body: SyncPricesDto) {
    return this.prices.sync(actor, requestId, body.source);
  }

  @Get(PRICE_PATH)
  async get(
    @CurrentActor() actor: UserActor,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
  ) {
    return priceResponse(await this.prices.get(actor, provider, model));
  }

  @Put(PRICE_PATH)
  @HttpCode(200)
  async put(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
    @Body() body: PutPriceDto,
  ) {
    return priceResponse(await this.prices.putCustom(actor, requestId, provider, model, body));
  }

  @Delete(PRICE_PATH)
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param(MODEL, ModelParam) model: string,
  ): Promise<void> {
    await this.prices.deleteCustom(actor, requestId, provider, model);
  }
}
