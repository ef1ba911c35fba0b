import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { REQUEST_ID_HEADER, acceptOrGenerateRequestId, correlation } from './context';
import type { Metrics } from './metrics';

/** Fastify options shared by the apps: request ids from X-Request-Id, 1 MiB bodies. */
export function fastifyServerOptions(): FastifyServerOptions {
  return {
    logger: false,
    bodyLimit: 1024 * 1024,
    requestIdHeader: false,
    genReqId: (req) => acceptOrGenerateRequestId(req.headers[REQUEST_ID_HEADER]),
    // Long path values reach the routes, which answer 400 naming the parameter (not Fastify's 414).
    routerOptions: { maxParamLength: 2048 },
    // Errors Fastify raises before routing (a broken percent-encoding...) in the common body.
    frameworkErrors: (error, req, reply) => {
      const body = {
        message: `Bad request: ${error.message}`,
        validations: [{ field: 'path', detail: error.message }],
        request_id: req.id,
      };
      // The reply's generic types know no schema here; the plain shape is what we send.
      const r = reply as unknown as {
        code(n: number): typeof r;
        header(k: string, v: string): typeof r;
        send(b: unknown): void;
      };
      r.code(400).header('X-Request-Id', req.id).send(body);
    },
  };
}

/**
 * Runs every request inside its correlation context (so every log line carries request_id),
 * echoes the id in X-Request-Id, logs one line per request and records its duration.
 */
export function installHttpObservability(fastify: FastifyInstance, logger: Logger, metrics: Metrics): void {
  const duration = metrics.histogram(
    'aigov_http_request_duration_seconds',
    'HTTP request duration by route and status',
    ['method', 'route', 'status'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  fastify.addHook('onRequest', (req, reply, done) => {
    void reply.header('X-Request-Id', req.id);
    correlation.run({ requestId: req.id }, done);
  });
  fastify.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    duration.observe({ method: req.method, route, status: String(reply.statusCode) }, seconds);
    // The level check first: at warn and above nothing is built per request.
    if (
      logger.isLevelEnabled('info') &&
      route !== '/healthz' &&
      route !== '/readyz' &&
      route !== '/metrics'
    ) {
      logger.info(
        {
          request_id: req.id,
          method: req.method,
          route,
          status: reply.statusCode,
          duration_ms: Math.round(reply.elapsedTime),
        },
        'request',
      );
    }
    done();
  });
}
