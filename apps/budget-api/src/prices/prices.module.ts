import { Module } from '@nestjs/common';
import { PriceSyncClient } from './price-sync.client';
import { PricesController } from './prices.controller';
import { PricesService } from './prices.service';

@Module({ controllers: [PricesController], providers: [PricesService, PriceSyncClient] })
export class PricesModule {}
