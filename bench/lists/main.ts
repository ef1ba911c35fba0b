import { createHash } from 'node:crypto';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { arg, createBenchDatabase, firstUser, startBudgetApi, stop } from '../shared/budget-api';

/**
 * bench/lists: the first page of every list endpoint on a large database, through the real
 * budget-api over HTTP. A database of its own gets, set-based: 100,000 users, all members of one
 * organization; 10,000 groups in it (one of 5,000 members, the others of 10); 1,000 more
 * organizations; 100,000 API keys (1,000 of them the caller's); 1,000,000 audit entries over a
 * year; 5,000 prices. Requests run one at a time, in `--requests` rounds over all endpoints after
 * a warm-up; prints the median and p95 latency per endpoint, whether the median is under the
 * 50 ms goal, and a one-row read as the floor of what a request costs on the machine right then.
 * Numbers, not assertions.
 *
 *   npm run bench:lists [-- --requests 40 --database-url postgres://...]
 */

const REQUESTS = Number(arg('requests', '40'));
const WARMUP = 5;
const GOAL_MS = 50;
const ADMIN_URL = arg('database-url', 'postgres://postgres@127.0.0.1:5432/postgres');

/** Set-based seed: each statement is one INSERT ... SELECT over generate_series. */
const SEED: [string, string][] = [
  [
    '100,000 users',
    `INSERT INTO users (username, email, name)
     SELECT 'user' || lpad(i::text, 6, '0'), 'user' || i || '@example.com', 'User ' || i
       FROM generate_series(1, 100000) i`,
  ],
  [
    '1,000 organizations',
    `INSERT INTO organizations (name) SELECT 'org-' || i FROM generate_series(1, 1000) i`,
  ],
  [
    'organization org-1 with all 100,000 users',
    `INSERT INTO organization_members (organization_id, user_id)
     SELECT o.id, u.id FROM organizations o CROSS JOIN users u WHERE o.name = 'org-1' AND u.username LIKE 'user%'`,
  ],
  [
    '10,000 groups in org-1',
    `INSERT INTO groups (organization_id, name)
     SELECT o.id, 'group-' || lpad(i::text, 5, '0') FROM organizations o, generate_series(1, 10000) i
      WHERE o.name = 'org-1'`,
  ],
  [
    'group-00001: 5,000 members',
    `INSERT INTO group_members (group_id, user_id)
     SELECT g.id, u.id FROM groups g JOIN users u ON u.username BETWEEN 'user000001' AND 'user005000'
      WHERE g.name = 'group-00001'`,
  ],
  [
    'the other groups: 10 members each',
    `INSERT INTO group_members (group_id, user_id)
     SELECT g.id, u.id
       FROM (SELECT id, row_number() OVER (ORDER BY name) AS n FROM groups
              WHERE name LIKE 'group-%' AND name <> 'group-00001') g
       CROSS JOIN generate_series(0, 9) k
       JOIN users u ON u.username = 'user' || lpad((((g.n * 10 + k) % 100000) + 1)::text, 6, '0')`,
  ],
  [
    '100,000 API keys: one per user, 1,000 more for the caller',
    `INSERT INTO api_keys (id, user_id, name, secret_hash, created_at)
     SELECT substr(md5('k' || u.id), 1, 10), u.id, 'key', '\\x00'::bytea, now() FROM users u
      WHERE u.username LIKE 'user%' AND u.username > 'user001000'
     UNION ALL
     SELECT substr(md5('b' || i), 1, 10), u.id, 'bench-' || i, '\\x00'::bytea, now() + i * interval '1 ms'
       FROM users u, generate_series(1, 1000) i WHERE u.username = 'bench'`,
  ],
  [
    '1,000,000 audit entries over a year',
    `INSERT INTO audit_logs (time, actor, action, resource_type, resource_id, diff, request_id)
     SELECT now() - i * interval '30 seconds', 'user' || lpad((i % 1000 + 1)::text, 6, '0'),
            (ARRAY['create', 'write', 'delete'])[i % 3 + 1],
            (ARRAY['group_ai_budget', 'user_ai_budget_override', 'ai_model_price', 'organization_member',
                   'group_member', 'user_roles', 'api_key', 'user'])[i % 8 + 1],
            md5((i % 50000)::text), jsonb_build_object('n', i), 'bench-' || i
       FROM generate_series(1, 1000000) i`,
  ],
  [
    '5,000 prices',
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price)
     SELECT 'provider-' || (i % 50), 'model-' || i, 'default', i * 10, i * 20 FROM generate_series(1, 5000) i`,
  ],
];

interface Sample {
  ms: number;
  status: number;
  body: { count?: number; count_capped?: boolean; member_count?: number };
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

async function get(base: string, token: string, path: string): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as Sample['body'];
  return { ms: performance.now() - t0, status: res.status, body };
}

const countOf = (b: Sample['body']): string =>
  b.count !== undefined
    ? `${b.count}${b.count_capped ? ' (capped)' : ''}`
    : b.member_count !== undefined
      ? `member_count ${b.member_count}`
      : '-';

async function main(): Promise<void> {
  const database = await createBenchDatabase(ADMIN_URL, 'aigov_bench_lists');
  let api: Awaited<ReturnType<typeof startBudgetApi>> | null = null;
  const db = new Client({ connectionString: database.url });
  try {
    api = await startBudgetApi(database.url);
    const owner = await firstUser(api.base, 'bench');
    await db.connect();
    for (const [what, sql] of SEED) {
      const t0 = performance.now();
      await db.query(sql);
      console.log(`seeded ${what} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    // What autovacuum would have done by the time a database is this large: statistics for the
    // planner and a visibility map for index-only counts.
    await db.query('VACUUM ANALYZE');
    const key = await fetch(`${api.base}/api/v2/users/user000042/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${owner}` },
      body: JSON.stringify({ name: 'bench' }),
    });
    const member = ((await key.json()) as { key: string }).key;
    const ids = await db.query<{ org: string; big: string }>(
      `SELECT o.id AS org, g.id AS big FROM organizations o JOIN groups g ON g.organization_id = o.id
        WHERE o.name = 'org-1' AND g.name = 'group-00001'`,
    );
    const { org, big } = ids.rows[0];
    const month = new Date(Date.now() - 30 * 86_400_000).toISOString();

    const cases: [string, string, string][] = [
      ['floor: GET /users/me (one row)', '/api/v2/users/me', owner],
      ['users', '/api/v2/users', owner],
      ['users?q= (11 matches)', '/api/v2/users?q=user04242', owner],
      ['users?q= (all match)', '/api/v2/users?q=example', owner],
      ['organizations', '/api/v2/organizations', owner],
      ['organization members (100,000)', `/api/v2/organizations/${org}/members`, owner],
      ['groups of the organization (owner)', `/api/v2/organizations/${org}/groups`, owner],
      ['groups of the organization (member)', `/api/v2/organizations/${org}/groups`, member],
      ['group members (5,000)', `/api/v2/groups/${big}/members`, owner],
      ['group members (Everyone, 100,000)', `/api/v2/groups/${org}/members`, owner],
      ['keys (1,000)', '/api/v2/users/me/keys', owner],
      ['audit log', '/api/v2/audit-logs', owner],
      ['audit log ?resource_type=', '/api/v2/audit-logs?resource_type=group_member', owner],
      // md5('42'): the resource id of 20 entries (42, 50042, ...).
      [
        'audit log ?resource_id=',
        `/api/v2/audit-logs?resource_id=${createHash('md5').update('42').digest('hex')}`,
        owner,
      ],
      ['audit log ?actor=', '/api/v2/audit-logs?actor=user000007', owner],
      ['audit log ?action=', '/api/v2/audit-logs?action=create', owner],
      ['audit log ?since= (30 days)', `/api/v2/audit-logs?since=${month}`, owner],
      ['audit log ?until= (30 days ago)', `/api/v2/audit-logs?until=${month}`, owner],
      ['prices', '/api/v2/ai/model-prices', owner],
      ['prices ?provider=', '/api/v2/ai/model-prices?provider=provider-7', owner],
      ['not a list: GET /groups/{Everyone}', `/api/v2/groups/${org}`, owner],
    ];
    // Rounds over all endpoints rather than one endpoint at a time: the machine is shared, and
    // a burst of other work then slows every endpoint a little instead of a few a lot.
    for (let i = 0; i < WARMUP; i++) for (const [, path, token] of cases) await get(api.base, token, path);
    const samples = cases.map(() => [] as Sample[]);
    for (let r = 0; r < REQUESTS; r++) {
      for (const [i, [, path, token]] of cases.entries()) samples[i].push(await get(api.base, token, path));
    }
    console.log(
      `\n${REQUESTS} rounds over all endpoints after ${WARMUP} warm-up rounds; limit 100 (the default)`,
    );
    const head = `${'endpoint (first page)'.padEnd(38)} ${'status'.padStart(6)} ${'count'.padStart(22)} ${'median ms'.padStart(10)} ${'p95 ms'.padStart(8)}  goal`;
    console.log(head);
    console.log('-'.repeat(head.length));
    for (const [i, [name]] of cases.entries()) {
      const times = samples[i].map((x) => x.ms).sort((a, b) => a - b);
      const last = samples[i][samples[i].length - 1];
      const bad = samples[i].filter((x) => x.status !== 200).length;
      const median = quantile(times, 0.5);
      console.log(
        `${name.padEnd(38)} ${String(bad ? `${bad} !200` : last.status).padStart(6)} ${countOf(last.body).padStart(22)} ${median.toFixed(1).padStart(10)} ${quantile(times, 0.95).toFixed(1).padStart(8)}  ${median < GOAL_MS ? 'ok' : 'OVER'}`,
      );
    }
    console.log(
      `load average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} on ${os.cpus().length} cores`,
    );
  } finally {
    await db.end().catch(() => undefined);
    if (api) await stop(api.child);
    await database.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
