/** NATS subjects of docs/nats.md. */
export const SUBJECTS = {
  pricingSync: 'pricing.sync',
  pricingUpdated: 'pricing.updated',
} as const;

export const QUEUE_GROUPS = {
  pricingWorker: 'pricing-worker',
  budgetApi: 'budget-api',
} as const;

/** NATS header carrying the correlation id between apps. */
export const NATS_REQUEST_ID_HEADER = 'X-Request-Id';
