export const BUDGET_API_OPTIONS = Symbol('BUDGET_API_OPTIONS');

/** The parts of the configuration the API's features read. */
export interface BudgetApiOptions {
  aiBudgetsEnabled: boolean;
  maxSpendLimitMicros: bigint;
  natsEnabled: boolean;
  /** How long POST /ai/model-prices/sync waits for the pricing worker. */
  priceSyncTimeoutMs: number;
}
