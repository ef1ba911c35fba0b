import 'reflect-metadata';
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
  // No Nest microservice: the budget subjects are subscribed on the app's own NATS connection
  // (EnforcementHandlers; docs/decisions/nats-hot-path.md).
  nats: null,
  ownNats: config.natsEnabled ? config.nats : null,
  readiness,
  configure: configureHttp,
}).catch(exitOnStartupFailure(logger, NAME));
