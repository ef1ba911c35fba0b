import type { SystemActor } from '@aigov/contracts';

export const PRICING_OPTIONS = Symbol('PRICING_OPTIONS');

export interface PricingOptions {
  actor: SystemActor;
  seedFile: string;
  modelsDevUrl: string;
  providers: string[];
  upstreamTimeoutMs: number;
  upstreamMaxBytes: number;
}
