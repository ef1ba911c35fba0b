import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('reads the identity consumer settings, with defaults, and names bad ones', () => {
    expect(loadConfig({}).identity).toEqual({
      maxDeliver: 10,
      ackWaitMs: 30_000,
      retryBackoffMs: [1_000, 2_000, 5_000, 10_000, 30_000],
      batchSize: 100,
      concurrency: 4,
    });
    expect(
      loadConfig({
        IDENTITY_MAX_DELIVER: '3',
        IDENTITY_ACK_WAIT_MS: '2000',
        IDENTITY_RETRY_BACKOFF_MS: '100, 200',
        IDENTITY_BATCH_SIZE: '1',
        IDENTITY_CONCURRENCY: '4',
      }).identity,
    ).toEqual({ maxDeliver: 3, ackWaitMs: 2_000, retryBackoffMs: [100, 200], batchSize: 1, concurrency: 4 });
    let err: unknown;
    try {
      loadConfig({
        IDENTITY_MAX_DELIVER: '0',
        IDENTITY_ACK_WAIT_MS: '10',
        IDENTITY_RETRY_BACKOFF_MS: '100,,x',
        IDENTITY_BATCH_SIZE: '5000',
        IDENTITY_CONCURRENCY: '0',
      });
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
      'IDENTITY_ACK_WAIT_MS',
      'IDENTITY_BATCH_SIZE',
      'IDENTITY_CONCURRENCY',
      'IDENTITY_MAX_DELIVER',
      'IDENTITY_RETRY_BACKOFF_MS',
    ]);
  });

  it('reads the spend upkeep settings, with defaults, and names bad ones', () => {
    expect(loadConfig({}).spendUpkeep).toEqual({
      usageBatchSize: 500,
      usageMaxDeliver: 10,
      usageAckWaitMs: 30_000,
      reservationSweepIntervalMs: 5_000,
      thresholdPollMs: 1_000,
    });
    expect(
      loadConfig({
        USAGE_BATCH_SIZE: '300',
        USAGE_MAX_DELIVER: '3',
        USAGE_ACK_WAIT_MS: '2000',
        RESERVATION_SWEEP_INTERVAL_MS: '250',
        THRESHOLD_POLL_MS: '100',
      }).spendUpkeep,
    ).toEqual({
      usageBatchSize: 300,
      usageMaxDeliver: 3,
      usageAckWaitMs: 2_000,
      reservationSweepIntervalMs: 250,
      thresholdPollMs: 100,
    });
    let err: unknown;
    try {
      loadConfig({
        USAGE_BATCH_SIZE: '0',
        USAGE_MAX_DELIVER: 'ten',
        USAGE_ACK_WAIT_MS: '999',
        RESERVATION_SWEEP_INTERVAL_MS: '-5',
        THRESHOLD_POLL_MS: '1.5',
      });
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
      'RESERVATION_SWEEP_INTERVAL_MS',
      'THRESHOLD_POLL_MS',
      'USAGE_ACK_WAIT_MS',
      'USAGE_BATCH_SIZE',
      'USAGE_MAX_DELIVER',
    ]);
  });

  it('gives the documented defaults for an empty environment', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBeNull();
    expect(c.natsUrl).toBe('nats://127.0.0.1:4222');
    expect(c.natsEnabled).toBe(true);
    expect([c.port, c.pricingWorkerPort, c.membershipListenerPort]).toEqual([8080, 8081, 8082]);
    expect(c.aiBudgetsEnabled).toBe(true);
    expect(c.maxSpendLimitMicros).toBe(1_000_000_000_000n);
    expect(c.priceProviders).toEqual(['anthropic', 'openai']);
    expect(c.budgetPeriod).toBe('month');
    expect(c.unpricedUsage).toBe('allow');
    expect(c.dataDir.endsWith('.data')).toBe(true);
  });

  it('names every bad variable in one error', () => {
    let err: unknown;
    try {
      loadConfig({
        PORT: 'abc',
        DATABASE_URL: 'mysql://x',
        BUDGET_PERIOD: 'year',
        AI_BUDGETS_ENABLED: 'maybe',
        MAX_SPEND_LIMIT_MICROS: '1.5',
        NATS_URL: 'not a url',
        PRICE_PROVIDERS: 'Anthropic',
        LOG_LEVEL: 'loud',
        UNPRICED_USAGE: 'sometimes',
        MODELS_DEV_URL: 'ftp://x',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const vars = (err as ConfigError).problems.map((p) => p.variable).sort();
    expect(vars).toEqual(
      [
        'AI_BUDGETS_ENABLED',
        'BUDGET_PERIOD',
        'DATABASE_URL',
        'LOG_LEVEL',
        'MAX_SPEND_LIMIT_MICROS',
        'MODELS_DEV_URL',
        'NATS_URL',
        'PORT',
        'PRICE_PROVIDERS',
        'UNPRICED_USAGE',
      ].sort(),
    );
    expect((err as ConfigError).message).toContain('PORT: must be a port number');
  });

  it('parses valid values', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x',
      PRICE_PROVIDERS: 'openai, anthropic,openai',
      MAX_SPEND_LIMIT_MICROS: '5000000',
      BUDGET_PERIOD: 'week',
      NATS_ENABLED: 'false',
    });
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/x');
    expect(c.priceProviders).toEqual(['openai', 'anthropic']);
    expect(c.maxSpendLimitMicros).toBe(5_000_000n);
    expect(c.budgetPeriod).toBe('week');
    expect(c.natsEnabled).toBe(false);
  });
});
