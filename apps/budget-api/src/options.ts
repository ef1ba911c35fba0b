import type { BudgetPeriod, SpendUpkeepSettings, UnpricedUsage } from '@aigov/config';

export const BUDGET_API_OPTIONS = Symbol('BUDGET_API_OPTIONS');

/** The parts of the configuration the API's features read. */
export interface BudgetApiOptions {
  aiBudgetsEnabled: boolean;
  maxSpendLimitMicros: bigint;
  natsEnabled: boolean;
  /** How long POST /ai/model-prices/sync waits for the pricing worker. */
  priceSyncTimeoutMs: number;
  /** The budget period (UTC calendar): month, week (from Monday) or day. */
  budgetPeriod: BudgetPeriod;
  /** Usage of a model without a price: recorded at cost null (allow), or reservations refused (block). */
  unpricedUsage: UnpricedUsage;
  /** The usage consumer, the reservation sweeper and the threshold outbox. */
  spendUpkeep: SpendUpkeepSettings;
}
