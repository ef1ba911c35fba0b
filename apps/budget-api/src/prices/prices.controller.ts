import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import { Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { page } from '../http/query.dto';
import { priceResponse } from '../http/responses';
import { ModelParam, ProviderParam } from './price-params';
import { ListPricesQuery, PutPriceDto, SyncPricesDto } from './prices.dto';
import { PricesService } from './prices.service';

/**
 * The price book (CONTRACT 2.4). `{model}` is one path segment: model ids containing `/` arrive
 * percent-encoded (`%2F`) and the router decodes them after matching.
 */
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

  @Get(':provider/:model')
  async get(
    @CurrentActor() actor: UserActor,
    @Param('provider', ProviderParam) provider: string,
    @Param('model', ModelParam) model: string,
  ) {
    return priceResponse(await this.prices.get(actor, provider, model));
  }

  @Put(':provider/:model')
  @HttpCode(200)
  async put(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param('model', ModelParam) model: string,
    @Body() body: PutPriceDto,
  ) {
    return priceResponse(await this.prices.putCustom(actor, requestId, provider, model, body));
  }

  @Delete(':provider/:model')
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('provider', ProviderParam) provider: string,
    @Param('model', ModelParam) model: string,
  ): Promise<void> {
    await this.prices.deleteCustom(actor, requestId, provider, model);
  }
}
