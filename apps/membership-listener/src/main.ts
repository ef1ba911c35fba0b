import 'reflect-metadata';
import { configureOrExit, exitOnStartupFailure, startApp } from '@aigov/observability';
import { MembershipListenerModule } from './membership-listener.module';

const NAME = 'membership-listener';
const { config, logger, metrics, readiness } = configureOrExit(NAME);

startApp({
  name: NAME,
  module: MembershipListenerModule.forRoot({ config, logger, metrics, readiness }),
  port: config.membershipListenerPort,
  logger,
  metrics,
  nats: null,
  readiness,
}).catch(exitOnStartupFailure(logger, NAME));
