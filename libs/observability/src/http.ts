import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { REQUEST_ID_HEADER, acceptOrGenerateRequestId, correlation } from './context';
import type { Metrics } from './metrics';

interface FrameworkError {
  status: number;
  message: string;
  validations: { field: string; detail: string }[];
}

/**
 * Errors Fastify raises before routing, in words of our own: the error body never echoes the
 * path or header that caused it (CONTRACT 2).
 */
function frameworkError(code: string | undefined): FrameworkError {
  switch (code) {
    case 'FST_ERR_BAD_URL':
      return {
        status: 400,
        message: 'Invalid path: must be a valid percent-encoded URL path.',
        validations: [{ field: 'path', detail: 'must be a valid percent-encoded URL path' }],
      };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return {
        status: 414,
        message: `Invalid path: must have segments of at most ${MAX_PARAM_LENGTH} characters.`,
        validations: [
          { field: 'path', detail: `must have segments of at most ${MAX_PARAM_LENGTH} characters` },
        ],
      };
    default:
      return { status: 400, message: 'The request could not be routed.', validations: [] };
  }
}

/** Errors the HTTP parser raises before Fastify sees a request (no request, so no request id of the client's). */
function clientError(code: string | undefined): FrameworkError & { reason: string } {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      status: 431,
      reason: 'Request Header Fields Too Large',
      message: 'Request headers are too large: the request line and headers must fit in 16 KiB.',
      validations: [{ field: 'headers', detail: 'must fit in 16 KiB together with the request line' }],
    };
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return {
      status: 408,
      reason: 'Request Timeout',
      message: 'The request took too long to arrive.',
      validations: [],
    };
  }
  return {
    status: 400,
    reason: 'Bad Request',
    message: 'The request is not valid HTTP/1.1 (a malformed request line or header).',
    validations: [{ field: 'headers', detail: 'must be well-formed HTTP/1.1' }],
  };
}

const MAX_PARAM_LENGTH = 2048;

/** Fastify options shared by the apps: request ids from X-Request-Id, 1 MiB bodies, errors in the common body. */
export function fastifyServerOptions(): FastifyServerOptions {
  return {
    logger: false,
    bodyLimit: 1024 * 1024,
    requestIdHeader: false,
    genReqId: (req) => acceptOrGenerateRequestId(req.headers[REQUEST_ID_HEADER]),
    // Long path values reach the routes, which answer 400 naming the parameter (414 beyond this).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (error, req, reply) => {
      const { status, ...body } = frameworkError(error.code);
      // The reply's generic types know no schema here; the plain shape is what we send.
      const r = reply as unknown as {
        code(n: number): typeof r;
        header(k: string, v: string): typeof r;
        send(b: unknown): void;
      };
      r.code(status)
        .header('X-Request-Id', req.id)
        .send({ ...body, request_id: req.id });
    },
    // The HTTP parser's own rejections (431, a malformed header) are written to the socket
    // directly; they get the common error body too, with a fresh request id.
    clientErrorHandler: (err: Error & { code?: string }, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const { status, reason, ...rest } = clientError(err.code);
      const requestId = acceptOrGenerateRequestId(undefined);
      const body = JSON.stringify({ ...rest, request_id: requestId });
      if (!socket.writable) {
        socket.destroy(err);
        return;
      }
      // end(), not write() + destroy(): the reply must be flushed before the socket closes.
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
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
