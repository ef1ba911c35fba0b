import * as fs from 'node:fs';
import type { Pool } from 'pg';
import {
  createDataSource,
  initializeDataSource,
  runMigrationsLocked,
  startEmbeddedCluster,
  type EmbeddedCluster,
} from '@aigov/db';
import { closePool, testPool } from '@aigov/testing';
import {
  RACE_KINDS,
  createOverrideRaceFixtures,
  orphanOverrides,
  rewrittenOverrideCheck,
  runOverrideRace,
  type OverrideRaceOutcome,
} from './helpers/override-race';
import { freshDataDir } from './helpers/processes';

// The override race of override-race.int-spec.ts (CONTRACT 1.4), run on the embedded default
// itself: the cluster `npm start` runs when DATABASE_URL is unset, in a temporary DATA_DIR. The
// control run (the trigger's row locks removed) must produce orphans here too: that shows the
// embedded server really runs the writers concurrently, which the PGlite default never did.

const ROUNDS = 900; // 300 per kind, half of them over a pre-existing override
const WIDENED_ROUNDS = 300;
const CONTROL_ROUNDS = 300;
const WORKERS = 4;

jest.setTimeout(300_000);

describe('override upsert racing membership removal, on the embedded PostgreSQL', () => {
  const dataDir = freshDataDir('aigov-embedded-race-');
  let cluster: EmbeddedCluster;
  let pool: Pool;

  beforeAll(async () => {
    cluster = await startEmbeddedCluster(dataDir);
    const ds = createDataSource({ url: cluster.url, poolSize: 1, applicationName: 'aigov-race-migrate' });
    await initializeDataSource(ds, 'the embedded database');
    try {
      await runMigrationsLocked(ds);
    } finally {
      await ds.destroy();
    }
    pool = testPool({
      connectionString: cluster.url,
      max: 2 * WORKERS,
      application_name: 'aigov-embedded-race',
    });
  });

  afterAll(async () => {
    if (pool) await closePool(pool);
    await cluster?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function race(rounds: number, label: string): Promise<OverrideRaceOutcome & { orphans: number }> {
    const fixtures = await createOverrideRaceFixtures(pool, rounds);
    const started = Date.now();
    const outcome = await runOverrideRace(pool, fixtures, WORKERS);
    const orphans = (await orphanOverrides(pool)).length;
    const perKind = RACE_KINDS.map((k) => {
      const o = outcome.byKind[k];
      return `${k}: A won ${o.aWon}, A lost ${o.aLost}, deadlocks ${o.deadlocks}, waited ${o.waited}`;
    });
    console.log(
      `embedded override race, ${label}: ${outcome.rounds} rounds in ${Date.now() - started} ms, ` +
        `orphans ${orphans}; ${perKind.join('; ')}`,
    );
    return { ...outcome, orphans };
  }

  it(`with the migration's trigger: ${ROUNDS} rounds, no orphan and no deadlock`, async () => {
    const result = await race(ROUNDS, "migration's trigger");
    expect(result.rounds).toBe(ROUNDS);
    expect(result.orphans).toBe(0);
    for (const kind of RACE_KINDS) {
      const k = result.byKind[kind];
      expect({ kind, deadlocks: k.deadlocks, aWon: k.aWon > 0 }).toEqual({ kind, deadlocks: 0, aWon: true });
    }
  });

  it(`with the race window widened by pg_sleep(0.002): ${WIDENED_ROUNDS} rounds, both outcomes, still no orphan`, async () => {
    await pool.query(await rewrittenOverrideCheck(pool, { dropLock: false, sleepSeconds: 0.002 }));
    const result = await race(WIDENED_ROUNDS, 'widened window');
    expect(result.rounds).toBe(WIDENED_ROUNDS);
    expect(result.orphans).toBe(0);
    for (const kind of RACE_KINDS) {
      const k = result.byKind[kind];
      expect({ kind, aWon: k.aWon > 0, aLost: k.aLost > 0 }).toEqual({ kind, aWon: true, aLost: true });
    }
  });

  it(`control, the trigger's row locks removed: ${CONTROL_ROUNDS} rounds leave orphans, so the writers really overlap`, async () => {
    await pool.query(await rewrittenOverrideCheck(pool, { dropLock: true, sleepSeconds: 0.002 }));
    const result = await race(CONTROL_ROUNDS, 'control without FOR KEY SHARE');
    expect(result.rounds).toBe(CONTROL_ROUNDS);
    expect(result.orphans).toBeGreaterThan(0);
  });
});
