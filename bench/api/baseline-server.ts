import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import { Pool } from 'pg';

/**
 * The baseline for bench/api: GET /api/v2/groups/:group/ai/budget on bare Fastify + pg with none
 * of Nest, validation, authorization rules, metrics or logging. Argv: <port> <database url> <mode>
 * [<statements as JSON>].
 * - naive: the obvious three queries (key + user, group, budget), unprepared;
 * - same: exactly the two prepared statements the real API sends (so the gap is the framework),
 *   whose text bench/api/main.ts takes from libs/db and passes in, and the same response: body,
 *   headers (X-Request-Id included) and the same token checks (secret, suspension, expiry).
 */
async function main(): Promise<void> {
  const [port, url, mode = 'naive', statements = '{}'] = process.argv.slice(2);
  const sql = JSON.parse(statements) as { principal?: string; groupWithBudget?: string };
  if (mode === 'same' && (!sql.principal || !sql.groupWithBudget))
    throw new Error('mode same needs the statements (argv 4)');
  const principalSql = sql.principal ?? '';
  const groupWithBudgetSql = sql.groupWithBudget ?? '';
  const pool = new Pool({ connectionString: url, max: 10 });
  const app = Fastify({ logger: false });
  app.get<{ Params: { group: string } }>('/api/v2/groups/:group/ai/budget', async (req, reply) => {
    void reply.header('x-request-id', randomUUID());
    if (mode === 'same') return same(req.headers.authorization, req.params.group, reply);
    const m = /^Bearer ([a-z0-9]{10})-(\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) return reply.status(401).send({ message: 'unauthorized' });
    const key = await pool.query<{ secret_hash: Buffer }>(
      `SELECT k.secret_hash FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`,
      [m[1]],
    );
    const hash = createHash('sha256').update(m[2]).digest();
    if (!key.rows[0] || !timingSafeEqual(hash, key.rows[0].secret_hash))
      return reply.status(401).send({ message: 'unauthorized' });
    const group = await pool.query('SELECT id, organization_id FROM groups WHERE id = $1', [
      req.params.group,
    ]);
    if (!group.rows[0]) return reply.status(404).send({ message: 'not found' });
    const budget = await pool.query<{
      group_id: string;
      spend_limit_micros: string;
      created_at: Date;
      updated_at: Date;
    }>(
      'SELECT group_id, spend_limit_micros, created_at, updated_at FROM group_ai_budgets WHERE group_id = $1',
      [req.params.group],
    );
    const b = budget.rows[0];
    if (!b) return reply.status(404).send({ message: 'no budget' });
    return {
      group_id: b.group_id,
      spend_limit_micros: Number(b.spend_limit_micros),
      created_at: b.created_at,
      updated_at: b.updated_at,
    };
  });
  // The real API's two statements, prepared, as in libs/db (key principal; group with budget).
  async function same(
    auth: string | undefined,
    groupId: string,
    reply: { status(n: number): { send(b: unknown): unknown } },
  ) {
    const m = /^Bearer ([a-z0-9]{10})-(\S+)$/.exec(auth ?? '');
    if (!m) return reply.status(401).send({ message: 'unauthorized' });
    const key = await pool.query<{
      secretHash: Buffer;
      status: string;
      expiresAt: Date | null;
      lastUsedAt: Date | null;
    }>({
      name: 'principal',
      text: principalSql,
      values: [m[1]],
    });
    const hash = createHash('sha256').update(m[2]).digest();
    const k = key.rows[0];
    if (!k || !timingSafeEqual(hash, k.secretHash) || k.status !== 'active')
      return reply.status(401).send({ message: 'unauthorized' });
    if (k.expiresAt && k.expiresAt.getTime() <= Date.now())
      return reply.status(401).send({ message: 'expired' });
    const g = await pool.query<{
      spendLimitMicros: string | null;
      id: string;
      budgetCreatedAt: Date;
      budgetUpdatedAt: Date;
    }>({
      name: 'group_budget',
      text: groupWithBudgetSql,
      values: [groupId],
    });
    const r = g.rows[0];
    if (!r || r.spendLimitMicros === null) return reply.status(404).send({ message: 'not found' });
    return {
      group_id: r.id,
      spend_limit_micros: Number(r.spendLimitMicros),
      created_at: r.budgetCreatedAt,
      updated_at: r.budgetUpdatedAt,
    };
  }

  await app.listen({ port: Number(port), host: '127.0.0.1' });
  process.on('SIGTERM', () => {
    void app
      .close()
      .then(() => pool.end())
      .then(() => process.exit(0));
  });
}

void main();
