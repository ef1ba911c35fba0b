import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '@aigov/errors';
import { Authenticator } from '../auth/authenticator';
import { AI_BUDGETS_DISABLED, type AuthenticatedRequest } from '../auth/decorators';
import { FEATURE_MODULES } from '../budget-api.module';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import type { ErrorBody } from './error-body';
import { routeTable } from './routes';
import { setupOpenApi } from './openapi';

/**
 * Fastify-level pieces that run before Nest's routing: only UTF-8 JSON bodies are accepted
 * (415 for anything else), and a known path asked with another method is 405 with `Allow`.
 * Errors raised here and while reading a body reach Nest's error handler, hence the app's
 * exception filter: no second Fastify error handler is installed (Fastify warns about that,
 * FSTWRN004, and the filter already gives every error the common body).
 */
export function configureHttp(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeContentTypeParser(['text/plain']);
  const methods = new RouteMethods();
  // Registered before Nest maps its routes (at init), so every route is seen.
  fastify.addHook('onRoute', (route) => methods.add(route.method, route.url));
  // Callback hooks, not async ones: they run on every request and must cost next to nothing.
  fastify.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const allow = req.is404 ? methods.allowedFor(req.url) : [];
    if (allow.length === 0) return done();
    const body: ErrorBody = {
      message: `Invalid method: must be one of ${allow.join(', ')} on this path.`,
      validations: [{ field: 'method', detail: `must be one of ${allow.join(', ')}` }],
      request_id: req.id,
    };
    // Answered here, so done() is not called: the 404 handler must not run.
    void reply.code(405).header('Allow', allow.join(', ')).send(body);
  });
  fastify.addHook('preParsing', (req, _reply, payload, done) => {
    if (isUtf8(req.headers['content-type'])) return done(null, payload);
    done(
      new DomainError(
        'unsupported_media_type',
        'Unsupported charset: the body must be application/json in UTF-8.',
      ),
    );
  });
  switchOffAiBudgetRoutes(app);
  setupOpenApi(app);
}

/** True unless the Content-Type names a charset other than UTF-8 (JSON is UTF-8: RFC 8259). */
function isUtf8(contentType: string | undefined): boolean {
  if (!contentType) return true;
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const value = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (value !== 'utf-8' && value !== 'utf8') return false;
  }
  return true;
}

/** The methods each registered path pattern answers, to tell 405 from 404. */
class RouteMethods {
  private readonly routes: { pattern: RegExp; methods: Set<string> }[] = [];

  add(method: string | string[], url: string): void {
    const source = url
      .split('/')
      .map((segment) =>
        segment === '*'
          ? '.*'
          : segment.startsWith(':')
            ? '[^/]+'
            : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      )
      .join('/');
    let entry = this.routes.find((r) => r.pattern.source === `^${source}/?$`);
    if (!entry) {
      entry = { pattern: new RegExp(`^${source}/?$`), methods: new Set() };
      this.routes.push(entry);
    }
    for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m);
  }

  allowedFor(url: string): string[] {
    const path = url.split('?')[0];
    const allowed = new Set<string>();
    for (const r of this.routes) {
      if (r.pattern.test(path)) for (const m of r.methods) allowed.add(m);
    }
    return [...allowed].sort();
  }
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
