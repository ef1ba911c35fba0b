import 'reflect-metadata';
import { QUEUE_GROUPS } from '@aigov/contracts';
import { configureOrExit, exitOnStartupFailure, startApp } from '@aigov/observability';
import { PricingWorkerModule } from './pricing-worker.module';

const NAME = 'pricing-worker';
const { config, logger, metrics, readiness } = configureOrExit(NAME);

startApp({
  name: NAME,
  module: PricingWorkerModule.forRoot({ config, logger, metrics, readiness }),
  port: config.pricingWorkerPort,
  logger,
  metrics,
  nats: config.natsEnabled ? { connection: config.nats, queue: QUEUE_GROUPS.pricingWorker } : null,
  readiness,
}).catch(exitOnStartupFailure(logger, NAME));
