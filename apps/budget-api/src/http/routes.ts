import { RequestMethod, type Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { IS_PUBLIC_KEY } from '@aigov/contracts';
import { AI_BUDGET_ROUTE_KEY, AUTHENTICATED_KEY } from '../auth/decorators';

export interface RouteInfo {
  method: string;
  /** As Fastify registers it: `/api/v2/groups/:group/ai/budget`. */
  path: string;
  isPublic: boolean;
  authenticated: boolean;
  aiBudget: boolean;
}

/** Every route of the given feature modules, read from the controllers' own decorators. */
export function routeTable(modules: Type[]): RouteInfo[] {
  const out: RouteInfo[] = [];
  for (const mod of modules) {
    const controllers = (Reflect.getMetadata('controllers', mod) ?? []) as Type[];
    for (const ctrl of controllers) {
      const base = (Reflect.getMetadata(PATH_METADATA, ctrl) as string | undefined) ?? '';
      const proto = ctrl.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const handler = proto[name];
        if (name === 'constructor' || typeof handler !== 'function') continue;
        const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (sub === undefined || method === undefined) continue;
        const flag = (key: string) =>
          Boolean(Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, ctrl));
        out.push({
          method: RequestMethod[method],
          path: `/${[base, sub].filter((p) => p && p !== '/').join('/')}`.replace(/\/+/g, '/'),
          isPublic: flag(IS_PUBLIC_KEY),
          authenticated: flag(AUTHENTICATED_KEY),
          aiBudget: flag(AI_BUDGET_ROUTE_KEY),
        });
      }
    }
  }
  return out;
}
