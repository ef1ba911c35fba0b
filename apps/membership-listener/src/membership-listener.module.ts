import { type DynamicModule, Module } from '@nestjs/common';
import { Stores } from '@aigov/authz';
import { DataSource } from 'typeorm';
import { NatsModule } from '@aigov/contracts';
import type { AppConfig } from '@aigov/config';
import { DatabaseModule } from '@aigov/db';
import { ObservabilityModule, type Logger, type Metrics, type Readiness } from '@aigov/observability';
import { IDENTITY_EVENT_APPLIER } from './apply/applier';
import { IdentityApplier } from './apply/identity-applier';
import { IdentityConsumerService } from './consumer/identity-consumer.service';
import { IDENTITY_CONSUMER_OPTIONS, identityConsumerOptions } from './consumer/identity-consumer.options';

export interface MembershipListenerDeps {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
}

/**
 * Ready: database reachable and migrated, NATS connected, the identity consumer set up and
 * running, and the last attempt to apply a batch went through.
 */
@Module({})
export class MembershipListenerModule {
  static forRoot(deps: MembershipListenerDeps): DynamicModule {
    return {
      module: MembershipListenerModule,
      imports: [
        ObservabilityModule.forApp(deps.logger, deps.metrics, deps.readiness),
        DatabaseModule.forRoot({
          databaseUrl: deps.config.databaseUrl,
          dataDir: deps.config.dataDir,
          poolSize: deps.config.databasePoolSize,
          applicationName: 'aigov-membership-listener',
          log: (msg) => deps.logger.info(msg),
          migrate: true,
        }),
        NatsModule.forRoot({
          connection: deps.config.nats,
          name: 'aigov-membership-listener',
          enabled: deps.config.natsEnabled,
          readiness: deps.readiness,
        }),
      ],
      providers: [
        { provide: IDENTITY_CONSUMER_OPTIONS, useValue: identityConsumerOptions(deps.config.identity) },
        IdentityConsumerService,
        { provide: Stores, useFactory: (ds: DataSource) => new Stores(ds), inject: [DataSource] },
        { provide: IDENTITY_EVENT_APPLIER, useClass: IdentityApplier },
      ],
    };
  }
}
