import 'reflect-metadata';
import { Test, type TestingModule } from '@nestjs/testing';
import { loadConfig } from '@aigov/config';
import { Metrics, Readiness, createLogger } from '@aigov/observability';
import { BudgetApiModule } from '../budget-api.module';

// For the spend int-specs only (no app code imports it): budget-api's whole app module as
// `npm start` builds it, without its HTTP server, logging nothing.

/** One running budget-api module and what the tests read from it. */
export interface BudgetApiInstance {
  module: TestingModule;
  metrics: Metrics;
  readiness: Readiness;
  /** Closes the module (its subscriptions, timers and pool); closing it again does nothing. */
  close(): Promise<void>;
}

/**
 * Compiles and initializes the module on the settings `env`, as loadConfig reads them from the
 * environment (DATABASE_URL, and NATS_URL or NATS_ENABLED=false, at least). A module whose init
 * fails is closed again before the error is thrown.
 */
export async function startBudgetApi(env: Record<string, string>): Promise<BudgetApiInstance> {
  const config = loadConfig(env);
  const metrics = new Metrics('budget-api');
  const readiness = new Readiness();
  const module = await Test.createTestingModule({
    imports: [
      BudgetApiModule.forRoot({ config, logger: createLogger('budget-api', 'silent'), metrics, readiness }),
    ],
  }).compile();
  let closed = false;
  const instance: BudgetApiInstance = {
    module,
    metrics,
    readiness,
    close: async () => {
      if (closed) return;
      closed = true;
      await module.close();
    },
  };
  try {
    await module.init();
  } catch (err) {
    await instance.close().catch(() => undefined);
    throw err;
  }
  return instance;
}

/** The sum of a metric's values over the series whose labels include `labels` (all by default). */
export async function metricTotal(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}
