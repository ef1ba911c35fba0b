import { type DynamicModule, Module } from '@nestjs/common';
import { NatsModule } from '@aigov/contracts';
import type { AppConfig } from '@aigov/config';
import { DatabaseModule } from '@aigov/db';
import { ObservabilityModule, type Logger, type Metrics, type Readiness } from '@aigov/observability';
import { PriceBookReadiness } from './price-book-readiness';

export interface BudgetApiDeps {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
}

@Module({})
export class BudgetApiModule {
  static forRoot(deps: BudgetApiDeps): DynamicModule {
    return {
      module: BudgetApiModule,
      imports: [
        ObservabilityModule.forApp(deps.logger, deps.metrics, deps.readiness),
        DatabaseModule.forRoot({
          databaseUrl: deps.config.databaseUrl,
          dataDir: deps.config.dataDir,
          poolSize: deps.config.databasePoolSize,
          applicationName: 'aigov-budget-api',
          log: (msg) => deps.logger.info(msg),
          migrate: true,
        }),
        NatsModule.forRoot({
          servers: deps.config.natsUrl,
          name: 'aigov-budget-api',
          enabled: deps.config.natsEnabled,
          readiness: deps.readiness,
        }),
      ],
      providers: [PriceBookReadiness],
    };
  }
}
