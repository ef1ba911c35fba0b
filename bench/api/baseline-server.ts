import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import { Pool } from 'pg';

/**
 * The baseline for bench/api: GET /api/v2/groups/:group/ai/budget on bare Fastify + pg with none
 * of Nest, validation, authorization rules or logging. Argv: <port> <database url> <mode>.
 * - naive: the obvious three queries (key + user, group, budget), unprepared;
 * - same: exactly the two prepared statements the real API sends (so the gap is the framework).
 */
async function main(): Promise<void> {
  const [port, url, mode = 'naive'] = process.argv.slice(2);
  const pool = new Pool({ connectionString: url, max: 10 });
  const app = Fastify({ logger: false });
  app.get<{ Params: { group: string } }>('/api/v2/groups/:group/ai/budget', async (req, reply) => {
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
    const key = await pool.query<{ secretHash: Buffer }>({
      name: 'principal',
      text: PRINCIPAL_SQL,
      values: [m[1]],
    });
    const hash = createHash('sha256').update(m[2]).digest();
    if (!key.rows[0] || !timingSafeEqual(hash, key.rows[0].secretHash))
      return reply.status(401).send({ message: 'unauthorized' });
    const g = await pool.query<{
      spendLimitMicros: string | null;
      id: string;
      budgetCreatedAt: Date;
      budgetUpdatedAt: Date;
    }>({
      name: 'group_budget',
      text: GROUP_BUDGET_SQL,
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

// Copies of the statements in libs/db (api-key.repository getPrincipal, group-budget.repository getWithGroup).
const PRINCIPAL_SQL = `SELECT k.id AS "keyId", k.secret_hash AS "secretHash", k.expires_at AS "expiresAt",
  k.last_used_at AS "lastUsedAt", u.id AS "userId", u.username, u.status, u.roles AS "siteRoles",
  coalesce((SELECT jsonb_object_agg(m.organization_id, to_jsonb(m.roles)) FROM organization_members m WHERE m.user_id = u.id), '{}'::jsonb) AS "orgRoles",
  coalesce((SELECT array_agg(gm.group_id) FROM group_members gm WHERE gm.user_id = u.id), '{}') AS "groupIds"
  FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`;
const GROUP_BUDGET_SQL = `SELECT g.id, g.organization_id AS "organizationId", g.name, b.spend_limit_micros AS "spendLimitMicros",
  b.created_at AS "budgetCreatedAt", b.updated_at AS "budgetUpdatedAt"
  FROM groups g LEFT JOIN group_ai_budgets b ON b.group_id = g.id WHERE g.id = $1`;

void main();
