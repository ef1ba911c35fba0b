import { Inject, Injectable } from '@nestjs/common';
import { PriceBookRepository } from '@aigov/db';
import { Readiness } from '@aigov/observability';
import { DataSource } from 'typeorm';

/** The API is not ready before the pricing worker has seeded the price book. */
@Injectable()
export class PriceBookReadiness {
  constructor(@Inject(Readiness) readiness: Readiness, @Inject(DataSource) ds: DataSource) {
    const prices = new PriceBookRepository(ds);
    readiness.register('price_book', async () =>
      (await prices.countDefaultPrices()) > 0
        ? null
        : 'price book not seeded yet (the pricing worker seeds it)',
    );
  }
}
