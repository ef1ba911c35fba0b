import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '@aigov/errors';
import { Authenticator } from '../auth/authenticator';
import { AI_BUDGETS_DISABLED, type AuthenticatedRequest } from '../auth/decorators';
import { FEATURE_MODULES } from '../budget-api.module';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { bodyOf, statusOf, toDomainError } from './error-body';
import { routeTable } from './routes';
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
  switchOffAiBudgetRoutes(app);
  setupOpenApi(app);
}

/**
 * With AI_BUDGETS_ENABLED=false the budget routes answer 403 right after authentication, before
 * the body is even read (a malformed body must not turn that 403 into a 400). The routes are
 * those that carry @AiBudgetRoute(); the guard enforces the same again.
 */
function switchOffAiBudgetRoutes(app: NestFastifyApplication): void {
  const options = app.get<BudgetApiOptions>(BUDGET_API_OPTIONS);
  if (options.aiBudgetsEnabled) return;
  const switchedOff = new Set(
    routeTable(FEATURE_MODULES)
      .filter((r) => r.aiBudget)
      .map((r) => `${r.method} ${r.path}`),
  );
  const authenticator = app.get(Authenticator);
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', async (req: FastifyRequest) => {
      if (!switchedOff.has(`${req.method} ${req.routeOptions.url ?? ''}`)) return;
      (req as AuthenticatedRequest).actor = await authenticator.authenticate(req.headers.authorization);
      throw new DomainError('forbidden', AI_BUDGETS_DISABLED);
    });
}
