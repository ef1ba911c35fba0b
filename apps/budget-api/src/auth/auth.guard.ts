import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { userActor } from '@aigov/authz';
import { IS_PUBLIC_KEY } from '@aigov/contracts';
import { ApiKeyRepository } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import { DataSource } from 'typeorm';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { AI_BUDGET_ROUTE_KEY, AUTHENTICATED_KEY, type AuthenticatedRequest } from './decorators';
import { parseBearer, secretMatches } from './tokens';

const LAST_USED_GRANULARITY_MS = 60_000;

/**
 * Deny by default: a route passes only when it is @Public() or @Authenticated() and the caller
 * presents a valid, unexpired token. A route that declares neither is refused (and logged): a
 * forgotten declaration never opens a route.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly keys: ApiKeyRepository;

  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(DataSource) ds: DataSource,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {
    this.keys = new ApiKeyRepository(ds);
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, targets)) return true;
    if (!this.reflector.getAllAndOverride<boolean>(AUTHENTICATED_KEY, targets)) {
      this.logger.error(
        { handler: ctx.getHandler().name },
        'route declares neither @Public() nor @Authenticated()',
      );
      throw new DomainError('forbidden', 'This route is not available.');
    }
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    req.actor = userActor(await this.authenticate(req.headers.authorization));
    if (
      !this.options.aiBudgetsEnabled &&
      this.reflector.getAllAndOverride<boolean>(AI_BUDGET_ROUTE_KEY, targets)
    ) {
      throw new DomainError('forbidden', 'AI budgets are disabled on this deployment.');
    }
    return true;
  }

  private async authenticate(header: string | undefined) {
    const parsed = parseBearer(header);
    if (!parsed) {
      throw new DomainError(
        'unauthenticated',
        header ? 'Invalid API token.' : 'Authentication required: send Authorization: Bearer <token>.',
      );
    }
    const principal = await this.keys.getPrincipal(parsed.id);
    if (!principal || !secretMatches(parsed.secret, principal.secretHash)) {
      throw new DomainError('unauthenticated', 'Invalid API token.');
    }
    const now = Date.now();
    if (principal.expiresAt && principal.expiresAt.getTime() <= now) {
      throw new DomainError('unauthenticated', 'API token expired.');
    }
    // Stamp last use at most once a minute: no write on every request.
    if (!principal.lastUsedAt || now - principal.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
      this.keys
        .touch(principal.keyId)
        .catch((err: unknown) => this.logger.warn({ err }, 'could not stamp key use'));
    }
    return principal;
  }
}
