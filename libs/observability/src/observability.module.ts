import { type DynamicModule, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { HealthController } from './health.controller';
import { Metrics } from './metrics';
import { Readiness } from './readiness';

export const APP_LOGGER = Symbol('APP_LOGGER');

/** Logger, metrics and readiness of one app, plus its /healthz, /readyz and /metrics routes. */
@Module({})
export class ObservabilityModule {
  static forApp(logger: Logger, metrics: Metrics, readiness: Readiness): DynamicModule {
    return {
      module: ObservabilityModule,
      global: true,
      controllers: [HealthController],
      providers: [
        { provide: APP_LOGGER, useValue: logger },
        { provide: Metrics, useValue: metrics },
        { provide: Readiness, useValue: readiness },
      ],
      exports: [APP_LOGGER, Metrics, Readiness],
    };
  }
}
