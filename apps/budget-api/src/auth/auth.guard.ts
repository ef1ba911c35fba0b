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

/** What a route declares, read once per (controller, handler) rather than on every request. */
interface RouteDeclaration {
  isPublic: boolean;
  authenticated: boolean;
  aiBudget: boolean;
}

/**
 * Deny by default: a route passes only when it is @Public() or @Authenticated() and the caller
 * presents a valid, unexpired token. A route that declares neither is refused (and logged): a
 * forgotten declaration never opens a route.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  // Decorator metadata is fixed once the app runs: keyed by class, then handler (a method shared
  // through inheritance may belong to several controllers with different declarations).
  private readonly declarations = new WeakMap<object, WeakMap<object, RouteDeclaration>>();

  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const route = this.declarationOf(ctx);
    if (route.isPublic) return true;
    if (!route.authenticated) {
      this.logger.error(
        { handler: ctx.getHandler().name },
        'route declares neither @Public() nor @Authenticated()',
      );
      throw new DomainError('forbidden', 'This route is not available.');
    }
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    // The early hook (http/setup.ts) may have authenticated this request already.
    req.actor ??= await this.authenticator.authenticate(req.headers.authorization);
    if (!this.options.aiBudgetsEnabled && route.aiBudget) {
      throw new DomainError('forbidden', AI_BUDGETS_DISABLED);
    }
    return true;
  }

  private declarationOf(ctx: ExecutionContext): RouteDeclaration {
    const cls = ctx.getClass();
    const handler = ctx.getHandler();
    let byHandler = this.declarations.get(cls);
    if (!byHandler) this.declarations.set(cls, (byHandler = new WeakMap()));
    let route = byHandler.get(handler);
    if (!route) {
      const targets = [handler, cls];
      route = {
        isPublic: !!this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, targets),
        authenticated: !!this.reflector.getAllAndOverride<boolean>(AUTHENTICATED_KEY, targets),
        aiBudget: !!this.reflector.getAllAndOverride<boolean>(AI_BUDGET_ROUTE_KEY, targets),
      };
      byHandler.set(handler, route);
    }
    return route;
  }
}
