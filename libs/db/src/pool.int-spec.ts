import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, type TestDatabase } from '@aigov/testing';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { DatabaseModule, STATEMENT_POOL } from './database.module';
import { splitPoolBudget, statementPoolOf } from './pool';
import { q } from './repositories/types';

describe('splitPoolBudget', () => {
  it('shares DATABASE_POOL_SIZE between the two pools, at least one connection each', () => {
    expect(splitPoolBudget(10)).toEqual({ statements: 5, transactions: 5 });
    expect(splitPoolBudget(7)).toEqual({ statements: 4, transactions: 3 });
    expect(splitPoolBudget(2)).toEqual({ statements: 1, transactions: 1 });
    expect(splitPoolBudget(1)).toEqual({ statements: 1, transactions: 1 });
  });
});

describe('the statement pool (real PostgreSQL)', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('is provided beside the DataSource, serves single statements outside transactions, and closes on shutdown', async () => {
    @Module({
      imports: [
        DatabaseModule.forRoot({
          databaseUrl: db.url,
          dataDir: '',
          poolSize: 6,
          applicationName: 'aigov-pool-test',
          log: () => undefined,
          migrate: false,
        }),
      ],
    })
    class TestModule {}
    const app = await NestFactory.createApplicationContext(TestModule, { logger: false });
    const ds = app.get(DataSource);
    const pool = app.get<Pool>(STATEMENT_POOL);
    expect(statementPoolOf(ds)).toBe(pool);
    expect(pool.options.max).toBe(3);

    // A statement on the DataSource runs on the statement pool's connection...
    const [outside] = await q<{ pid: number }[]>(ds, 'SELECT pg_backend_pid() AS pid', [], 'aigov_test_pid');
    expect(pool.totalCount).toBe(1);
    // ...and one inside a transaction on the transaction's own connection (TypeORM's pool).
    const inside = await ds.transaction(
      async (em) => (await q<{ pid: number }[]>(em, 'SELECT pg_backend_pid() AS pid'))[0].pid,
    );
    expect(inside).not.toBe(outside.pid);
    expect(pool.totalCount).toBe(1);

    await app.close();
    expect(pool.ended).toBe(true);
    expect(pool.totalCount).toBe(0);
    expect(ds.isInitialized).toBe(false);
  });
});
