import type { DynamicModule, INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  PlainJsonDeserializer,
  PlainJsonSerializer,
  natsConnectFailure,
  natsSecurityOptions,
} from '@aigov/contracts';
import type { Logger } from 'pino';
import { fastifyServerOptions, installHttpObservability } from './http';
import { describeNatsSettings, loadConfig, type AppConfig, type NatsSettings } from '@aigov/config';
import { PinoNestLogger, createLogger } from './logger';
import { Metrics } from './metrics';
import { Readiness } from './readiness';

export interface StartAppOptions {
  name: string;
  module: DynamicModule;
  port: number;
  logger: Logger;
  metrics: Metrics;
  /** Core-NATS request handlers (Nest microservice) with this queue group; null: none. */
  nats: { connection: NatsSettings; queue: string } | null;
  /** NATS the app serves requests on with a connection of its own (named in the ready line). */
  ownNats?: NatsSettings | null;
  /** The app's readiness: "<app> ready" is logged once it reports ready (when given). */
  readiness?: Readiness;
  /** Lets an app add routes' global pieces (filters, pipes) before listening. */
  configure?: (app: NestFastifyApplication) => void | Promise<void>;
}

/**
 * The operational shell every app shares: Nest on Fastify with JSON logs, request ids and
 * metrics, an optional NATS microservice speaking plain JSON, health routes on the app's own
 * port, and a graceful shutdown on SIGTERM/SIGINT (NATS drained, database closed by the
 * modules' shutdown hooks). Nest's own boot chatter is at debug; the app logs one line when
 * ready and one when stopped. A failure to start is rethrown; callers exit non-zero.
 */
export async function startApp(opts: StartAppOptions): Promise<INestApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    opts.module,
    // skipMiddie: no app registers Express-style middleware, and middie's onRequest hook would
    // otherwise run on every request for nothing. A middleware added later fails at start-up
    // (Fastify has no use() without middie) rather than being skipped silently.
    new FastifyAdapter({ ...fastifyServerOptions(), skipMiddie: true }),
    // bodyParser: false keeps Fastify's own JSON parser (1 MiB limit) as the only one: Nest would
    // otherwise add a form-urlencoded parser and accept bodies that are not JSON.
    { logger: new PinoNestLogger(opts.logger), abortOnError: false, bufferLogs: false, bodyParser: false },
  );
  installHttpObservability(app.getHttpAdapter().getInstance(), opts.logger, opts.metrics);
  if (opts.nats) {
    app.connectMicroservice<MicroserviceOptions>(
      {
        transport: Transport.NATS,
        options: {
          ...natsSecurityOptions(opts.nats.connection),
          name: `${opts.name}-handlers`,
          queue: opts.nats.queue,
          serializer: new PlainJsonSerializer(),
          deserializer: new PlainJsonDeserializer(),
          gracefulShutdown: true,
          // After unsubscribing, in-flight handlers (a price sync) get this long to reply.
          gracePeriod: 2_000,
          timeout: 5_000,
          maxReconnectAttempts: -1,
        },
      },
      { inheritAppConfig: true },
    );
  }
  if (opts.configure) await opts.configure(app);
  const releaseSignals = stopOnSignals(app, opts);
  try {
    await app.init();
    if (opts.nats) {
      const connection = opts.nats.connection;
      // Connecting is all this start does: a refusal (credentials, TLS) is explained like the
      // app's own client's, naming the setting to fix.
      await app.startAllMicroservices().catch((err: unknown) => {
        throw natsConnectFailure(err, connection);
      });
    }
    await app.listen({ port: opts.port, host: '0.0.0.0' });
  } catch (err) {
    releaseSignals();
    await app.close().catch(() => undefined);
    throw err;
  }
  announceReady(app, opts);
  return app;
}

/** "<app> ready" once the app serves and its readiness checks pass. */
function announceReady(app: NestFastifyApplication, opts: StartAppOptions): void {
  const { name, logger } = opts;
  const server = app.getHttpServer();
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  const natsShown = opts.nats?.connection ?? opts.ownNats ?? null;
  const fields = { port, ...(natsShown ? { nats: describeNatsSettings(natsShown) } : {}) };
  // Ready means what /readyz says (the API also waits for the price book the worker seeds): if
  // it is not yet, say what it waits for, then log "ready" once, when it is.
  let waiting: NodeJS.Timeout | null = null;
  let closed = false;
  server.once('close', () => {
    closed = true;
    if (waiting) clearTimeout(waiting);
  });
  const announceWhenReady = async (first: boolean): Promise<void> => {
    const report = opts.readiness ? await opts.readiness.report() : { ready: true, checks: {} };
    if (report.ready) {
      logger.info(fields, `${name} ready on port ${port}`);
      return;
    }
    if (first) {
      const pending = Object.entries(report.checks)
        .filter(([, c]) => !c.ok)
        .map(([check, c]) => `${check} (${c.detail ?? 'not ok'})`);
      logger.info(
        { ...fields, waiting_for: pending },
        `${name} listening on port ${port}, not ready yet: ${pending.join(', ')}`,
      );
    }
    if (closed) return;
    waiting = setTimeout(() => void announceWhenReady(false), 1_000);
    waiting.unref();
  };
  void announceWhenReady(true);
}

/**
 * SIGTERM/SIGINT close the app (HTTP, NATS drained, database) and exit 0 after one
 * "<app> stopped" line; a signal during start-up waits for it to settle first (Nest's close
 * does). A second signal during the shutdown falls through to the default: it ends at once.
 */
function stopOnSignals(app: NestFastifyApplication, opts: StartAppOptions): () => void {
  const { name, logger } = opts;
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, `${name} stopping (${signal})`);
    app.close().then(
      () => {
        logger.info(`${name} stopped`);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, `${name} did not stop cleanly`);
        process.exit(1);
      },
    );
  };
  for (const signal of signals) process.once(signal, onSignal);
  const release = (): void => {
    for (const signal of signals) process.removeListener(signal, onSignal);
  };
  // An app closed by its owner (tests start many in one process) lets go of the signals too.
  app.getHttpServer().once('close', release);
  return release;
}

/** For main.ts: log a startup failure as one clear fatal line and exit non-zero. */
export function exitOnStartupFailure(logger: Pick<Logger, 'fatal'>, app: string) {
  return (err: unknown): never => {
    const e = err as Error;
    logger.fatal({ err: e }, `${app} failed to start: ${e.message}`);
    process.exit(1);
  };
}

/**
 * For main.ts: the validated config and a logger at its level. Bad configuration is logged as
 * one fatal line naming every bad variable, and the process exits 1.
 */
export function configureOrExit(app: string): {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
} {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    return exitOnStartupFailure(createLogger(app, 'info'), app)(err);
  }
  return {
    config,
    logger: createLogger(app, config.logLevel),
    metrics: new Metrics(app),
    readiness: new Readiness(),
  };
}
