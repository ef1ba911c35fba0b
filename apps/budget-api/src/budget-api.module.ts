import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import { NatsModule } from '@aigov/contracts';
import type { AppConfig } from '@aigov/config';
import { DatabaseModule } from '@aigov/db';
import { ObservabilityModule, type Logger, type Metrics, type Readiness } from '@aigov/observability';
import { AuditModule } from './audit/audit.module';
import { AuthGuard } from './auth/auth.guard';
import { Authenticator } from './auth/authenticator';
import { BudgetsModule } from './budgets/budgets.module';
import { CoreModule } from './core.module';
import { GroupsModule } from './groups/groups.module';
import { ErrorFilter } from './http/error.filter';
import { StrictValidationPipe } from './http/validation.pipe';
import { OrganizationsModule } from './organizations/organizations.module';
import { OverridesModule } from './overrides/overrides.module';
import { PriceBookReadiness } from './price-book-readiness';
import { PricesModule } from './prices/prices.module';
import { SpendModule } from './spend/spend.module';
import { UsersModule } from './users/users.module';

export interface BudgetApiDeps {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
}

/** The feature modules: each owns its routes (controller), logic (service) and DTOs. */
export const FEATURE_MODULES = [
  UsersModule,
  OrganizationsModule,
  GroupsModule,
  BudgetsModule,
  OverridesModule,
  PricesModule,
  SpendModule,
  AuditModule,
];

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
          connection: deps.config.nats,
          name: 'aigov-budget-api',
          enabled: deps.config.natsEnabled,
          readiness: deps.readiness,
        }),
        CoreModule.forRoot({
          aiBudgetsEnabled: deps.config.aiBudgetsEnabled,
          maxSpendLimitMicros: deps.config.maxSpendLimitMicros,
          natsEnabled: deps.config.natsEnabled,
          priceSyncTimeoutMs: deps.config.priceSyncTimeoutMs,
          budgetPeriod: deps.config.budgetPeriod,
          unpricedUsage: deps.config.unpricedUsage,
          spendUpkeep: deps.config.spendUpkeep,
        }),
        ...FEATURE_MODULES,
      ],
      providers: [
        Authenticator,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ErrorFilter },
        { provide: APP_PIPE, useClass: StrictValidationPipe },
        PriceBookReadiness,
      ],
    };
  }
}
