import { type ArgumentsHost, Catch, type ExceptionFilter, Inject } from '@nestjs/common';
import { fromDatabaseError } from '@aigov/db';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bodyOf, statusOf, toDomainError } from './error-body';

/** Seconds a client should wait before retrying a 503 (database or NATS unavailable). */
export const RETRY_AFTER_SECONDS = 2;

@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(@Inject(APP_LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<FastifyRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const err = fromDatabaseError(exception) ?? toDomainError(exception);
    if (err.code === 'internal') {
      this.logger.error({ err: exception, request_id: req.id }, 'unhandled error');
    }
    if (err.code === 'unavailable') void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
    void reply
      .status(statusOf(err.code))
      .header('Content-Type', 'application/json')
      .send(bodyOf(err, req.id));
  }
}
