import 'reflect-metadata';
import { QUEUE_GROUPS } from '@aigov/contracts';
import { configureOrExit, exitOnStartupFailure, startApp } from '@aigov/observability';
import { BudgetApiModule } from './budget-api.module';
import { configureHttp } from './http/setup';

const NAME = 'budget-api';
const { config, logger, metrics, readiness } = configureOrExit(NAME);

startApp({
  name: NAME,
  module: BudgetApiModule.forRoot({ config, logger, metrics, readiness }),
  port: config.port,
  logger,
  metrics,
  nats: config.natsEnabled ? { connection: config.nats, queue: QUEUE_GROUPS.budgetApi } : null,
  readiness,
  configure: configureHttp,
}).catch(exitOnStartupFailure(logger, NAME));
