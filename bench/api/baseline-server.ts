import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import { Pool } from 'pg';

/**
 * The baseline for bench/api: GET /api/v2/groups/:group/ai/budget on bare Fastify + pg, doing
 * the same queries as the real API (key + user lookup, group, budget) with none of Nest,
 * validation, authorization rules or logging. Argv: <port> <database url>.
 */
async function main(): Promise<void> {
  const [port, url] = process.argv.slice(2);
  const pool = new Pool({ connectionString: url, max: 10 });
  const app = Fastify({ logger: false });
  app.get<{ Params: { group: string } }>('/api/v2/groups/:group/ai/budget', async (req, reply) => {
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
  await app.listen({ port: Number(port), host: '127.0.0.1' });
  process.on('SIGTERM', () => {
    void app
      .close()
      .then(() => pool.end())
      .then(() => process.exit(0));
  });
}

void main();
