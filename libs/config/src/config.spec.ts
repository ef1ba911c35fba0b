import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
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
