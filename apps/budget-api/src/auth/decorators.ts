import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { UserActor } from '@aigov/authz';
import type { FastifyRequest } from 'fastify';

export { Public } from '@aigov/contracts';

/** The route needs a valid token; what the caller may do is decided by the stores. */
export const AUTHENTICATED_KEY = 'aigov:authenticated';
export const Authenticated = (): MethodDecorator & ClassDecorator => SetMetadata(AUTHENTICATED_KEY, true);

/** A budget, override, spend or enforcement route: 403 when AI_BUDGETS_ENABLED=false (after 401). */
export const AI_BUDGET_ROUTE_KEY = 'aigov:ai-budget-route';
export const AI_BUDGETS_DISABLED = 'AI budgets are disabled on this deployment.';
export const AiBudgetRoute = (): MethodDecorator & ClassDecorator => SetMetadata(AI_BUDGET_ROUTE_KEY, true);

export type AuthenticatedRequest = FastifyRequest & { actor?: UserActor };

/** The authenticated caller, passed explicitly to every service call. */
export const CurrentActor = createParamDecorator((_data: unknown, ctx: ExecutionContext): UserActor => {
  const actor = ctx.switchToHttp().getRequest<AuthenticatedRequest>().actor;
  if (!actor) throw new Error('CurrentActor on a route without authentication');
  return actor;
});

/** The request id, for audit entries and cascades. */
export const RequestId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string => {
  return ctx.switchToHttp().getRequest<FastifyRequest>().id;
});
