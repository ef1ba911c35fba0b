import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { IS_PUBLIC_KEY } from '@aigov/contracts';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { Authenticator } from './authenticator';
import {
  AI_BUDGETS_DISABLED,
  AI_BUDGET_ROUTE_KEY,
  AUTHENTICATED_KEY,
  type AuthenticatedRequest,
} from './decorators';

/**
 * Deny by default: a route passes only when it is @Public() or @Authenticated() and the caller
 * presents a valid, unexpired token. A route that declares neither is refused (and logged): a
 * forgotten declaration never opens a route.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {}

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
    // The early hook (http/setup.ts) may have authenticated this request already.
    req.actor ??= await this.authenticator.authenticate(req.headers.authorization);
    if (
      !this.options.aiBudgetsEnabled &&
      this.reflector.getAllAndOverride<boolean>(AI_BUDGET_ROUTE_KEY, targets)
    ) {
      throw new DomainError('forbidden', AI_BUDGETS_DISABLED);
    }
    return true;
  }
}
