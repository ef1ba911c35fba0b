import * as path from 'node:path';
import { parseNatsSettings, type NatsSettings } from './nats';

export type BudgetPeriod = 'month' | 'week' | 'day';
export type UnpricedUsage = 'allow' | 'block';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AppConfig {
  /** Null: use the embedded PostgreSQL cluster in dataDir/postgres (started by `npm start`). */
  databaseUrl: string | null;
  dataDir: string;
  /** Connections per app pool. */
  databasePoolSize: number;
  /** NATS_URL with any password or token replaced by *** (for logs; connect with `nats`). */
  natsUrl: string;
  /** What every NATS connection uses: servers, credentials and TLS (CONTRACT 6). */
  nats: NatsSettings;
  /** False only when NATS_ENABLED=false: the apps run without their NATS features. */
  natsEnabled: boolean;
  port: number;
  pricingWorkerPort: number;
  membershipListenerPort: number;
  logLevel: LogLevel;
  aiBudgetsEnabled: boolean;
  maxSpendLimitMicros: bigint;
  modelsDevUrl: string;
  priceProviders: string[];
  budgetPeriod: BudgetPeriod;
  unpricedUsage: UnpricedUsage;
  /** How long POST /ai/model-prices/sync waits for a pricing worker (an aigov addition). */
  priceSyncTimeoutMs: number;
  /** The membership listener's JetStream consumer of identity events. */
  identity: IdentityConsumerSettings;
  /** budget-api's usage consumer, reservation sweeper and threshold outbox. */
  spendUpkeep: SpendUpkeepSettings;
}

export interface SpendUpkeepSettings {
  /** Usage records fetched and recorded together, in one ledger statement. */
  usageBatchSize: number;
  /** Deliveries of one usage record left unacknowledged before it is dead-lettered. */
  usageMaxDeliver: number;
  /** How long a delivered usage record may stay unacknowledged before JetStream redelivers it. */
  usageAckWaitMs: number;
  /** How often expired reservations are released. */
  reservationSweepIntervalMs: number;
  /** How often the threshold outbox is read besides the wake-ups after usage reached a threshold. */
  thresholdPollMs: number;
}

export const DEFAULT_SPEND_UPKEEP: SpendUpkeepSettings = {
  usageBatchSize: 500,
  usageMaxDeliver: 10,
  usageAckWaitMs: 30_000,
  reservationSweepIntervalMs: 5_000,
  thresholdPollMs: 1_000,
};

export interface IdentityConsumerSettings {
  /** Deliveries of one event before it is dead-lettered (the consumer's max_deliver). */
  maxDeliver: number;
  /** How long a delivered event may stay unacknowledged before JetStream redelivers it. */
  ackWaitMs: number;
  /** Delay before redelivering an event to retry, by delivery count (the last one repeats). */
  retryBackoffMs: number[];
  /** Events fetched and applied together, in one database transaction. */
  batchSize: number;
  /** Batches applied at once, each in its own transaction (and database connection). */
  concurrency: number;
}

export const DEFAULT_IDENTITY_CONSUMER: IdentityConsumerSettings = {
  maxDeliver: 10,
  ackWaitMs: 30_000,
  retryBackoffMs: [1_000, 2_000, 5_000, 10_000, 30_000],
  batchSize: 100,
  concurrency: 4,
};

export const DEFAULT_MODELS_DEV_URL = 'https://models.dev/api.json';
export const DEFAULT_MAX_SPEND_LIMIT_MICROS = 1_000_000_000_000n;

export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; detail: string }[]) {
    super(
      `Invalid configuration: ${problems.map((p) => `${p.variable}: ${p.detail}`).join('; ')}. ` +
        'See .env.example for every variable and its format.',
    );
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Reads and validates the whole environment once. Every bad variable is collected and
 * reported together in one ConfigError; nothing else in the code base reads process.env.
 */
export function loadConfig(env: Env = process.env): AppConfig {
  const problems: { variable: string; detail: string }[] = [];
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const fail = (variable: string, detail: string): void => {
    problems.push({ variable, detail });
  };

  const port = (name: string, def: number): number => {
    const v = raw(name);
    if (v === undefined) return def;
    if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) {
      fail(name, `must be a port number 0..65535 (got "${v}")`);
      return def;
    }
    return Number(v);
  };
  const bool = (name: string, def: boolean): boolean => {
    const v = raw(name);
    if (v === undefined) return def;
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    fail(name, `must be true or false (got "${v}")`);
    return def;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], def: T): T => {
    const v = raw(name);
    if (v === undefined) return def;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    fail(name, `must be one of ${allowed.join(', ')} (got "${v}")`);
    return def;
  };
  const url = (name: string, protocols: string[], def: string | null): string | null => {
    const v = raw(name);
    if (v === undefined) return def;
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) {
        fail(name, `must be a ${protocols.join(' or ')} URL (got protocol "${u.protocol}")`);
        return def;
      }
      return v;
    } catch {
      fail(name, 'must be a valid URL');
      return def;
    }
  };

  const databaseUrl = url('DATABASE_URL', ['postgres:', 'postgresql:'], null);
  const natsServers = raw('NATS_URL') ?? 'nats://127.0.0.1:4222';
  const nats = parseNatsSettings(natsServers, raw, fail);

  let maxSpend = DEFAULT_MAX_SPEND_LIMIT_MICROS;
  const maxRaw = raw('MAX_SPEND_LIMIT_MICROS');
  if (maxRaw !== undefined) {
    // JSON numbers are exact up to 2^53 - 1; a larger limit could not round-trip through the API.
    if (!/^\d{1,16}$/.test(maxRaw) || BigInt(maxRaw) > 9_007_199_254_740_991n) {
      fail(
        'MAX_SPEND_LIMIT_MICROS',
        `must be an integer of micros between 0 and 9007199254740991 (got "${maxRaw}")`,
      );
    } else {
      maxSpend = BigInt(maxRaw);
    }
  }

  let providers = ['anthropic', 'openai'];
  const providersRaw = raw('PRICE_PROVIDERS');
  if (providersRaw !== undefined) {
    const list = providersRaw.split(',').map((p) => p.trim());
    const bad = list.filter((p) => !/^[a-z0-9][a-z0-9._-]*$/.test(p));
    if (bad.length > 0 || list.length === 0) {
      fail(
        'PRICE_PROVIDERS',
        `must be a comma-separated list of provider ids (bad: ${bad.map((b) => `"${b}"`).join(', ')})`,
      );
    } else {
      providers = [...new Set(list)];
    }
  }

  let poolSize = 10;
  const poolRaw = raw('DATABASE_POOL_SIZE');
  if (poolRaw !== undefined) {
    if (!/^\d{1,3}$/.test(poolRaw) || Number(poolRaw) < 1 || Number(poolRaw) > 200) {
      fail('DATABASE_POOL_SIZE', `must be an integer 1..200 (got "${poolRaw}")`);
    } else {
      poolSize = Number(poolRaw);
    }
  }

  let priceSyncTimeoutMs = 30_000;
  const syncRaw = raw('PRICE_SYNC_TIMEOUT_MS');
  if (syncRaw !== undefined) {
    if (!/^\d{1,7}$/.test(syncRaw) || Number(syncRaw) < 1) {
      fail('PRICE_SYNC_TIMEOUT_MS', `must be a positive integer of milliseconds (got "${syncRaw}")`);
    } else {
      priceSyncTimeoutMs = Number(syncRaw);
    }
  }

  const int = (name: string, min: number, max: number, def: number, what: string): number => {
    const v = raw(name);
    if (v === undefined) return def;
    if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) {
      fail(name, `must be an integer ${min}..${max} (${what}; got "${v}")`);
      return def;
    }
    return Number(v);
  };
  const identity: IdentityConsumerSettings = {
    maxDeliver: int('IDENTITY_MAX_DELIVER', 1, 10_000, DEFAULT_IDENTITY_CONSUMER.maxDeliver, 'deliveries'),
    ackWaitMs: int(
      'IDENTITY_ACK_WAIT_MS',
      1_000,
      3_600_000,
      DEFAULT_IDENTITY_CONSUMER.ackWaitMs,
      'milliseconds',
    ),
    retryBackoffMs: DEFAULT_IDENTITY_CONSUMER.retryBackoffMs,
    batchSize: int('IDENTITY_BATCH_SIZE', 1, 1_000, DEFAULT_IDENTITY_CONSUMER.batchSize, 'events'),
    concurrency: int('IDENTITY_CONCURRENCY', 1, 16, DEFAULT_IDENTITY_CONSUMER.concurrency, 'batches'),
  };
  const backoffRaw = raw('IDENTITY_RETRY_BACKOFF_MS');
  if (backoffRaw !== undefined) {
    const list = backoffRaw.split(',').map((p) => p.trim());
    if (
      list.length > 100 ||
      list.some((p) => !/^\d{1,9}$/.test(p) || Number(p) < 1 || Number(p) > 86_400_000)
    ) {
      fail(
        'IDENTITY_RETRY_BACKOFF_MS',
        `must be a comma-separated list of 1 to 100 delays in milliseconds, each 1..86400000 (got "${backoffRaw}")`,
      );
    } else {
      identity.retryBackoffMs = list.map(Number);
    }
  }

  const d = DEFAULT_SPEND_UPKEEP;
  const spendUpkeep: SpendUpkeepSettings = {
    usageBatchSize: int('USAGE_BATCH_SIZE', 1, 1_000, d.usageBatchSize, 'records'),
    usageMaxDeliver: int('USAGE_MAX_DELIVER', 1, 10_000, d.usageMaxDeliver, 'deliveries'),
    usageAckWaitMs: int('USAGE_ACK_WAIT_MS', 1_000, 3_600_000, d.usageAckWaitMs, 'milliseconds'),
    reservationSweepIntervalMs: int(
      'RESERVATION_SWEEP_INTERVAL_MS',
      100,
      3_600_000,
      d.reservationSweepIntervalMs,
      'milliseconds',
    ),
    thresholdPollMs: int('THRESHOLD_POLL_MS', 100, 600_000, d.thresholdPollMs, 'milliseconds'),
  };

  const config: AppConfig = {
    databaseUrl,
    dataDir: path.resolve(raw('DATA_DIR') ?? './.data'),
    databasePoolSize: poolSize,
    natsUrl: redactCredentials(natsServers),
    nats,
    natsEnabled: bool('NATS_ENABLED', true),
    port: port('PORT', 8080),
    pricingWorkerPort: port('PRICING_WORKER_PORT', 8081),
    membershipListenerPort: port('MEMBERSHIP_LISTENER_PORT', 8082),
    logLevel: oneOf(
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      'info',
    ),
    aiBudgetsEnabled: bool('AI_BUDGETS_ENABLED', true),
    maxSpendLimitMicros: maxSpend,
    modelsDevUrl:
      url('MODELS_DEV_URL', ['http:', 'https:'], DEFAULT_MODELS_DEV_URL) ?? DEFAULT_MODELS_DEV_URL,
    priceProviders: providers,
    budgetPeriod: oneOf('BUDGET_PERIOD', ['month', 'week', 'day'] as const, 'month'),
    unpricedUsage: oneOf('UNPRICED_USAGE', ['allow', 'block'] as const, 'allow'),
    priceSyncTimeoutMs,
    identity,
    spendUpkeep,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Where the test suites find their servers (tests only; CI uses the defaults). */
export function testSettings(env: Env = process.env): {
  adminDatabaseUrl: string;
  natsServerBinary: string | null;
  /** An extra seed for the identity convergence tests, besides their fixed one. */
  identityHistorySeed: number | null;
} {
  const seed = env.TEST_IDENTITY_SEED ? Number(env.TEST_IDENTITY_SEED) : null;
  return {
    adminDatabaseUrl: env.TEST_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    natsServerBinary: env.TEST_NATS_SERVER_BIN ?? null,
    identityHistorySeed: seed !== null && Number.isSafeInteger(seed) ? seed : null,
  };
}

/** The environment for a child process: this one's, with overrides (undefined removes a variable). */
export function childEnvironment(
  overrides: Record<string, string | undefined>,
  env: Env = process.env,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** A connection string (or a comma-separated list) with any password replaced, for logs and errors. */
export function redactCredentials(urls: string): string {
  return urls
    .split(',')
    .map((raw) => {
      const url = raw.trim();
      try {
        const u = new URL(url);
        if (u.password) u.password = '***';
        // A user name without a password is a token (nats://token@host): a secret too.
        else if (u.username) u.username = '***';
        return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
      } catch {
        return '<invalid url>';
      }
    })
    .join(',');
}
