import { Stores } from '@aigov/authz';
import { ConfigError, loadConfig } from '@aigov/config';
import { BUDGET_API_ACTOR, formatUsd } from '@aigov/contracts';
import {
  createDataSource,
  initializeDataSource,
  startEmbeddedCluster,
  type CounterDifference,
  type EffectiveBudget,
  type EffectiveBudgetDifference,
  type EmbeddedCluster,
} from '@aigov/db';
import { stdio, type Io } from './script-nats';

/**
 * npm run spend:reconcile [-- --repair]
 *
 * Checks the spend counters against the ledger (CONTRACT 1.6): for every (user, period),
 * spent = the sum of the costs of the user's usage that occurred in the period (periods by
 * BUDGET_PERIOD), held = the sum of the reservations still held. Prints each difference and exits
 * 1 when there is one, 0 when there is none. `--repair` rewrites the counters from the ledger in
 * one transaction (after a difference was found, or after BUDGET_PERIOD changed).
 * It also checks that every user's materialized budget (ai_effective_budgets) equals the
 * resolution (`ai_effective_budget()`); `--repair` recomputes the rows that differ.
 * Works on DATABASE_URL, or on the embedded PostgreSQL of DATA_DIR when it is unset.
 */
const USAGE = 'usage: spend-reconcile.js [--repair]';

export async function reconcile(
  argv: string[],
  env: Record<string, string | undefined> | undefined,
  io: Io,
): Promise<number> {
  const repair = argv.includes('--repair');
  if (argv.some((a) => a !== '--repair')) {
    io.err(USAGE);
    return 2;
  }
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 1;
    }
    throw err;
  }
  let embedded: EmbeddedCluster | null = null;
  let url = config.databaseUrl;
  if (url === null) {
    embedded = await startEmbeddedCluster(config.dataDir);
    url = embedded.url;
  }
  const ds = createDataSource({ url, poolSize: 1, applicationName: 'aigov-spend-reconcile' });
  try {
    await initializeDataSource(ds, embedded ? 'the embedded database' : 'DATABASE_URL');
    const stores = new Stores(ds);
    const kind = config.budgetPeriod;
    // One consistent picture of counters, ledger, holds and budgets, also while the service runs.
    const [differences, budgets] = await ds.transaction('REPEATABLE READ', async (em) => [
      await new Stores(em).spend.listCounterDifferences(BUDGET_API_ACTOR, kind),
      await new Stores(em).spend.listEffectiveBudgetDifferences(BUDGET_API_ACTOR),
    ]);
    if (differences.length === 0) {
      io.out(`spend:reconcile: counters match the ledger (periods by ${kind})`);
    } else {
      for (const d of differences) io.out(describe(d));
      io.out(`spend:reconcile: ${differences.length} difference(s) (periods by ${kind})`);
    }
    if (budgets.length === 0) {
      io.out('spend:reconcile: effective budgets match the resolution');
    } else {
      for (const d of budgets) io.out(describeBudget(d));
      io.out(`spend:reconcile: ${budgets.length} effective budget difference(s)`);
    }
    if (differences.length === 0 && budgets.length === 0) return 0;
    if (!repair) return 1;
    if (differences.length > 0) {
      const rows = await stores.transaction(null, (tx) => tx.spend.rebuildCounters(BUDGET_API_ACTOR, kind));
      io.out(`spend:reconcile: counters rebuilt from the ledger (${rows} rows)`);
    }
    if (budgets.length > 0) {
      const users = await stores.spend.repairEffectiveBudgets(BUDGET_API_ACTOR);
      io.out(`spend:reconcile: effective budgets recomputed (${users} users)`);
    }
    return 0;
  } finally {
    if (ds.isInitialized) await ds.destroy();
    if (embedded && !embedded.adopted) await embedded.stop();
  }
}

function describe(d: CounterDifference): string {
  const money = (v: bigint | null) => (v === null ? 'no counter' : `${v} (${formatUsd(v)})`);
  return (
    `user ${d.userId} period ${d.periodStart}: spent counter ${money(d.counterSpentMicros)}` +
    ` ledger ${money(d.ledgerSpentMicros)}; held counter ${money(d.counterHeldMicros)}` +
    ` reservations ${money(d.ledgerHeldMicros)}`
  );
}

function describeBudget(d: EffectiveBudgetDifference): string {
  const budget = (b: EffectiveBudget | null) =>
    b === null
      ? 'no row'
      : `${b.limitSource ?? 'no limit'} ${b.spendLimitMicros === null ? '' : `${b.spendLimitMicros} `}group ${b.effectiveGroupId ?? 'none'}`;
  return `user ${d.userId}: effective budget stored ${budget(d.stored)}; resolved ${budget(d.resolved)}`;
}

if (require.main === module) {
  reconcile(process.argv.slice(2), undefined, stdio).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`spend:reconcile failed: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
