import { type DynamicModule, Module } from '@nestjs/common';
import { NatsModule, PRICING_WORKER_ACTOR } from '@aigov/contracts';
import type { AppConfig } from '@aigov/config';
import { DatabaseModule } from '@aigov/db';
import { ObservabilityModule, type Logger, type Metrics, type Readiness } from '@aigov/observability';
import { embeddedSeedPath } from './pricing/embedded-seed';
import { PricingHandlers } from './pricing/pricing.handlers';
import { PRICING_OPTIONS, type PricingOptions } from './pricing/pricing.options';
import { PriceSyncService } from './pricing/price-sync.service';

export interface PricingWorkerDeps {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
  /** Tests point this at a seed of their own. */
  seedFile?: string;
}

@Module({})
export class PricingWorkerModule {
  static forRoot(deps: PricingWorkerDeps): DynamicModule {
    const options: PricingOptions = {
      actor: PRICING_WORKER_ACTOR,
      seedFile: deps.seedFile ?? embeddedSeedPath(),
      modelsDevUrl: deps.config.modelsDevUrl,
      providers: deps.config.priceProviders,
      upstreamTimeoutMs: 15_000,
      upstreamMaxBytes: 32 * 1024 * 1024,
    };
    return {
      module: PricingWorkerModule,
      imports: [
        ObservabilityModule.forApp(deps.logger, deps.metrics, deps.readiness),
        DatabaseModule.forRoot({
          databaseUrl: deps.config.databaseUrl,
          dataDir: deps.config.dataDir,
          poolSize: deps.config.databasePoolSize,
          applicationName: 'aigov-pricing-worker',
          log: (msg) => deps.logger.info(msg),
          migrate: true,
        }),
        NatsModule.forRoot({
          connection: deps.config.nats,
          name: 'aigov-pricing-worker',
          enabled: deps.config.natsEnabled,
          readiness: deps.readiness,
        }),
      ],
      controllers: [PricingHandlers],
      providers: [{ provide: PRICING_OPTIONS, useValue: options }, PriceSyncService],
    };
  }
}
