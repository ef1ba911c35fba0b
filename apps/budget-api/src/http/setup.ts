import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { bodyOf, statusOf, toDomainError } from './error-body';
import { setupOpenApi } from './openapi';

/**
 * Fastify-level pieces that run before Nest's routing: only JSON bodies are accepted (415 for
 * anything else), and errors raised while reading a body (malformed JSON 400, over 1 MiB 413)
 * get the same error body as everything else.
 */
export function configureHttp(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeContentTypeParser(['text/plain']);
  // Replaces Nest's handler on purpose (Fastify warns about any override).
  fastify.setErrorHandler((error: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const err = toDomainError(error);
    void reply.status(statusOf(err.code)).send(bodyOf(err, req.id));
  });
  setupOpenApi(app);
}
