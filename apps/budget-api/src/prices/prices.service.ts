import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { PriceSyncSource } from '@aigov/contracts';
import { PriceSyncClient } from './price-sync.client';

@Injectable()
export class PricesService {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(PriceSyncClient) private readonly syncClient: PriceSyncClient,
  ) {}

  /** Asks the pricing worker to sync and answers its result data. */
  async sync(actor: Actor, requestId: string, source: PriceSyncSource): Promise<unknown> {
    this.stores.prices.assertCanSync(actor);
    return this.syncClient.sync(requestId, { source });
  }
}
