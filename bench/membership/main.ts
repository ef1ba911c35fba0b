import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Client } from 'pg';
import { IDENTITY_CONSUMER, IDENTITY_STREAM, cloudEvent } from '@aigov/contracts';
import { arg, createBenchDatabase, stop } from '../shared/budget-api';
import { cpuSeconds, migrateDatabase, startMembershipListener, startNatsServer } from '../shared/services';

/**
 * bench/membership: how fast the membership-listener applies identity events, against a direct
 * SQL writer measured in the same run on the same machine.
 *
 * Seed (SQL, in a template database copied for each contender): one organization, `--users`
 * users all members, 50 groups each user is in 10 of, and an override for every other user on
 * one of its groups, so removals fire the override triggers. Workload: `--events`
 * identity.group.member.added/removed events over (group, user) pairs, each one flipping the
 * membership (so every event changes a row): every 20th removes a membership that carries an
 * override, the others remove a random current membership or add a random absent one, half and
 * half.
 *
 * 1. baseline, naive: the same changes as one autocommit INSERT ... ON CONFLICT DO NOTHING / DELETE
 *    per event on one connection;
 * 2. baseline, tuned: the same statements in transactions of the listener's batch size;
 * 3. NATS floor: a pull consumer that fetches the events in batches and acknowledges them, no
 *    database: what the transport alone costs;
 * 4. the listener: all events published to its stream first, then the compiled listener started;
 *    timed from the first applied event to the last (startup excluded), final state checked;
 * 5. snapshots: a `--snapshot-members` organization that already matches its snapshot, and one
 *    that differs in 10%, published in parts; timed from the first publish to the last part applied;
 * 6. statement profile (`--profile-events`, 0 skips it): more events applied with
 *    log_min_duration_statement = 0 on the listener's database, the server log read back for the
 *    statements per event and the server time they took. Logging slows the server: the rate of
 *    that phase is not the listener's rate.
 *
 * Prints numbers and ratios, asserts no timing. The listener also does what the baselines do not:
 * validation, deduplication by event id, ordering by event time, audit entries, NATS acks.
 *
 *   npm run bench:membership [-- --events 20000 --users 2000 --snapshot-members 10000
 *     --profile-events 2000 --batch-size 100 --cpu-prof <dir> --postgres-log <file>
 *     --database-url postgres://...]
 */

const EVENTS = Number(arg('events', '20000'));
const USERS = Number(arg('users', '2000'));
const GROUPS = 50;
const SNAPSHOT_MEMBERS = Number(arg('snapshot-members', '10000'));
const PROFILE_EVENTS = Number(arg('profile-events', '2000'));
/** Unset: the listener's default (IDENTITY_BATCH_SIZE, 100). */
const BATCH_SIZE = arg('batch-size', process.env.IDENTITY_BATCH_SIZE ?? '');
const DEFAULT_BATCH_SIZE = 100;
const ADMIN_URL = arg('database-url', 'postgres://postgres@127.0.0.1:5432/postgres');
/** A directory: the measured listener run writes a V8 CPU profile there (bench/api/profile-summary). */
const CPU_PROFILE_DIR = arg('cpu-prof', '');
const POSTGRES_LOG = arg('postgres-log', '/var/log/postgresql/postgresql-15-main.log');
/** Below NATS's 1 MiB max_payload with room for the envelope. */
const PART_BYTES = 900_000;
const SOURCE = 'aigov/bench-membership';
const GOAL_RATE = 2_000;
const GOAL_RATIO = 0.5;

const batchSize = BATCH_SIZE ? Number(BATCH_SIZE) : DEFAULT_BATCH_SIZE;

/** The uuid PostgreSQL makes of md5(text)::uuid, so seeds and events name the same rows. */
const uid = (text: string): string => {
  const h = createHash('md5').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const sqlUid = (expr: string) => `md5(${expr})::uuid`;

const ORG = uid('org');
const groupId = (g: number) => uid(`g${g}`);
const userId = (u: number) => uid(`u${u}`);

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deterministic pseudo-random numbers (mulberry32), so every run applies the same changes. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// The workload

interface Change {
  kind: 'added' | 'removed';
  group: string;
  user: string;
}

/** Initial memberships: user u is in group g when (u + g) % 5 = 0 (10 groups per user). */
const initiallyMember = (g: number, u: number) => (u + g) % 5 === 0;
/** Users with an override: every other one, on the first of its groups. */
const overrideGroupOf = (u: number): number | null => (u % 2 === 0 ? (5 - (u % 5)) % 5 : null);

const SEED: [string, string][] = [
  [
    `${USERS} users`,
    `INSERT INTO users (id, username, email, name)
     SELECT ${sqlUid("'u' || i")}, 'u' || lpad(i::text, 6, '0'), 'u' || i || '@example.com', 'User ' || i
       FROM generate_series(1, ${USERS}) i`,
  ],
  ['1 organization', `INSERT INTO organizations (id, name) VALUES ('${ORG}', 'bench-org')`],
  [
    'all users members of it',
    `INSERT INTO organization_members (organization_id, user_id)
     SELECT '${ORG}', ${sqlUid("'u' || i")} FROM generate_series(1, ${USERS}) i`,
  ],
  [
    `${GROUPS} groups`,
    `INSERT INTO groups (id, organization_id, name)
     SELECT ${sqlUid("'g' || g")}, '${ORG}', 'group-' || g FROM generate_series(0, ${GROUPS - 1}) g`,
  ],
  [
    'each user in 10 groups',
    `INSERT INTO group_members (group_id, user_id)
     SELECT ${sqlUid("'g' || g")}, ${sqlUid("'u' || i")}
       FROM generate_series(1, ${USERS}) i, generate_series(0, ${GROUPS - 1}) g WHERE (i + g) % 5 = 0`,
  ],
  [
    'an override for every other user',
    `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros)
     SELECT ${sqlUid("'u' || i")}, ${sqlUid("'g' || ((5 - i % 5) % 5)")}, 5000000
       FROM generate_series(1, ${USERS}) i WHERE i % 2 = 0`,
  ],
];

/** The state the events lead to, and the events. */
class Workload {
  readonly members = new Set<string>();
  readonly overrides = new Map<string, string>(); // user -> "group/user" of its override
  readonly overridesEnded = new Set<string>();
  private readonly rnd = random(42);
  private readonly overridePairs: [number, number][] = [];
  private nextOverride = 0;
  private count = 0;
  /** The current memberships as g * 1e6 + u, to pick one to remove uniformly. */
  private readonly pairs: number[] = [];
  private readonly at = new Map<number, number>();
  private readonly epoch = Date.now() - 86_400_000;

  constructor() {
    for (let u = 1; u <= USERS; u++) {
      for (let g = 0; g < GROUPS; g++) if (initiallyMember(g, u)) this.flip(g, u);
      const og = overrideGroupOf(u);
      if (og !== null) {
        this.overrides.set(userId(u), `${groupId(og)}/${userId(u)}`);
        this.overridePairs.push([og, u]);
      }
    }
  }

  /** Adds the membership when absent, else removes it; true when it was added. */
  private flip(g: number, u: number): boolean {
    const key = `${groupId(g)}/${userId(u)}`;
    const p = g * 1e6 + u;
    const i = this.at.get(p);
    if (i === undefined) {
      this.members.add(key);
      this.at.set(p, this.pairs.length);
      this.pairs.push(p);
      return true;
    }
    this.members.delete(key);
    const last = this.pairs.pop()!;
    if (last !== p) {
      this.pairs[i] = last;
      this.at.set(last, i);
    }
    this.at.delete(p);
    return false;
  }

  /** The next `n` events, each at a later millisecond and flipping one membership. */
  next(n: number): { subject: string; id: string; body: string; change: Change }[] {
    const out: { subject: string; id: string; body: string; change: Change }[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.count++;
      let g: number;
      let u: number;
      if (k % 20 === 0 && this.nextOverride < this.overridePairs.length) {
        [g, u] = this.overridePairs[this.nextOverride++];
      } else if (this.rnd() < 0.5) {
        // Half the events remove a current membership, half add one that is not there.
        const p = this.pairs[Math.floor(this.rnd() * this.pairs.length)];
        [g, u] = [Math.floor(p / 1e6), p % 1e6];
      } else {
        do {
          g = Math.floor(this.rnd() * GROUPS);
          u = 1 + Math.floor(this.rnd() * USERS);
        } while (this.at.has(g * 1e6 + u));
      }
      const key = `${groupId(g)}/${userId(u)}`;
      const kind = this.flip(g, u) ? 'added' : 'removed';
      if (kind === 'removed' && this.overrides.get(userId(u)) === key) {
        this.overrides.delete(userId(u));
        this.overridesEnded.add(userId(u));
      }
      const subject = `identity.group.member.${kind}`;
      const event = cloudEvent(
        subject,
        SOURCE,
        { group_id: groupId(g), user_id: userId(u) },
        new Date(this.epoch + k),
      );
      out.push({
        subject,
        id: event.id,
        body: JSON.stringify(event),
        change: { kind, group: groupId(g), user: userId(u) },
      });
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Database helpers

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function one<T>(c: Client, sql: string, params: unknown[] = []): Promise<T> {
  return (await c.query(sql, params)).rows[0] as T;
}

/** Memberships of the bench organization's groups and the overrides left, as the workload keys them. */
async function finalState(c: Client): Promise<{ members: Set<string>; overrides: Set<string> }> {
  const m = await c.query<{ k: string }>(
    `SELECT gm.group_id || '/' || gm.user_id AS k FROM group_members gm JOIN groups g ON g.id = gm.group_id
      WHERE g.organization_id = $1`,
    [ORG],
  );
  const o = await c.query<{ user_id: string }>(
    `SELECT o.user_id FROM user_ai_budget_overrides o JOIN groups g ON g.id = o.group_id WHERE g.organization_id = $1`,
    [ORG],
  );
  return { members: new Set(m.rows.map((r) => r.k)), overrides: new Set(o.rows.map((r) => r.user_id)) };
}

function sameSet(a: Set<string>, b: Set<string>): { missing: number; extra: number } {
  let missing = 0;
  let extra = 0;
  for (const x of a) if (!b.has(x)) missing++;
  for (const x of b) if (!a.has(x)) extra++;
  return { missing, extra };
}

function checkState(what: string, w: Workload, s: { members: Set<string>; overrides: Set<string> }): boolean {
  const m = sameSet(w.members, s.members);
  const o = sameSet(new Set(w.overrides.keys()), s.overrides);
  const ok = m.missing + m.extra + o.missing + o.extra === 0;
  console.log(
    `  check ${what}: ${fmt(s.members.size)} group memberships (${m.missing} missing, ${m.extra} unexpected), ` +
      `${fmt(s.overrides.size)} overrides left (${o.missing} missing, ${o.extra} that should have ended): ${ok ? 'ok' : 'WRONG'}`,
  );
  return ok;
}

interface DbCounters {
  xact: number;
  inserted: number;
  deleted: number;
  updated: number;
}

async function dbCounters(c: Client, name: string): Promise<DbCounters> {
  // The statistics snapshot of this transaction would otherwise hide what others did since.
  await c.query('SELECT pg_stat_clear_snapshot()');
  const r = await one<Record<string, string>>(
    c,
    `SELECT xact_commit + xact_rollback AS xact, tup_inserted AS inserted, tup_deleted AS deleted, tup_updated AS updated
       FROM pg_stat_database WHERE datname = $1`,
    [name],
  );
  return {
    xact: Number(r.xact),
    inserted: Number(r.inserted),
    deleted: Number(r.deleted),
    updated: Number(r.updated),
  };
}

// ---------------------------------------------------------------------------------------------
// Baselines

interface Timed {
  ms: number;
  /** CPU seconds of this process (the client) and of the database backend serving it. */
  clientCpu: number;
  serverCpu: number;
}

async function sqlBaseline(url: string, changes: Change[], perTransaction: number): Promise<Timed> {
  return withClient(url, async (c) => {
    const backend = (await one<{ pid: number }>(c, 'SELECT pg_backend_pid() AS pid')).pid;
    const server0 = cpuSeconds(backend);
    const client0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < changes.length; i += perTransaction) {
      const slice = changes.slice(i, i + perTransaction);
      if (perTransaction > 1) await c.query('BEGIN');
      for (const ch of slice) {
        if (ch.kind === 'added') {
          await c.query(
            'INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
            [ch.group, ch.user],
          );
        } else {
          await c.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [
            ch.group,
            ch.user,
          ]);
        }
      }
      if (perTransaction > 1) await c.query('COMMIT');
    }
    const ms = performance.now() - t0;
    const client = process.cpuUsage(client0);
    return { ms, clientCpu: (client.user + client.system) / 1e6, serverCpu: cpuSeconds(backend) - server0 };
  });
}

// ---------------------------------------------------------------------------------------------
// NATS

async function publishAll(js: JetStreamClient, events: { subject: string; body: string }[]): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  // Publishes leave in the order they are called on one connection, so the stream keeps the
  // events' order; 64 in flight hides the round trip of each acknowledgement.
  const worker = async () => {
    while (next < events.length) {
      const e = events[next++];
      await js.publish(e.subject, e.body);
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return performance.now() - t0;
}

/**
 * The transport alone: a second durable pull consumer of the stream fetches every event in
 * batches and acknowledges each, flushing once per batch, as the listener does, with no database.
 */
async function natsFloor(nc: NatsConnection, total: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(IDENTITY_STREAM, {
    durable_name: 'bench-nats-floor',
    ack_policy: AckPolicy.Explicit,
  });
  const consumer = await jetstream(nc).consumers.get(IDENTITY_STREAM, 'bench-nats-floor');
  const t0 = performance.now();
  let got = 0;
  while (got < total) {
    const messages = await consumer.fetch({ max_messages: Math.min(batchSize, total - got), expires: 1_000 });
    for await (const m of messages) {
      JSON.parse(Buffer.from(m.data).toString('utf8'));
      m.ack();
      got++;
    }
    await nc.flush();
  }
  const ms = performance.now() - t0;
  await jsm.consumers.delete(IDENTITY_STREAM, 'bench-nats-floor');
  return ms;
}

async function metricTotals(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(aigov_identity_[a-z_]+?)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[3]);
  }
  return out;
}

async function listenerBackendPids(c: Client, db: string): Promise<number[]> {
  const r = await c.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'aigov-membership-listener%'`,
    [db],
  );
  return r.rows.map((x) => x.pid);
}

/**
 * Polls until `applied()` reaches `target`; the time from the first poll that saw progress to the
 * last. Every 50 ms: at a few hundred events a second that is a few events at either end.
 */
async function waitApplied(
  applied: () => Promise<number>,
  from: number,
  target: number,
  timeoutMs: number,
): Promise<{ firstMs: number; lastMs: number; firstCount: number }> {
  let first = -1;
  let firstCount = 0;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = await applied();
    const now = performance.now();
    if (n > from && first < 0) {
      first = now;
      firstCount = n - from;
    }
    if (n >= target) return { firstMs: first, lastMs: now, firstCount };
    if (now > deadline)
      throw new Error(`only ${n - from} of ${target - from} events applied in ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

const snapUser = (i: number) => uid(`v${i}`);
const SNAP_GROUPS = 5;
const roleOf = (i: number): string[] =>
  i % 100 === 0 ? ['organization-admin'] : i % 100 === 50 ? ['organization-auditor'] : [];

/** Seeds the two snapshot organizations: one as its snapshot says, one 10% different. */
function snapshotSeed(n: number): [string, string][] {
  const q = Math.floor(n / 40); // four kinds of difference, 10% of the members in all
  const roleSql = (i: string) =>
    `CASE WHEN ${i} % 100 = 0 THEN ARRAY['organization-admin'] WHEN ${i} % 100 = 50 THEN ARRAY['organization-auditor'] ELSE '{}'::text[] END`;
  const s1 = uid('s1');
  const s2 = uid('s2');
  return [
    [
      `${fmt(n + q)} more users`,
      `INSERT INTO users (id, username, email, name)
       SELECT ${sqlUid("'v' || i")}, 'v' || lpad(i::text, 6, '0'), 'v' || i || '@example.com', 'Snap ' || i
         FROM generate_series(1, ${n + q}) i`,
    ],
    [
      '2 organizations',
      `INSERT INTO organizations (id, name) VALUES ('${s1}', 'snap-same'), ('${s2}', 'snap-differs')`,
    ],
    [
      `${SNAP_GROUPS} groups in each`,
      `INSERT INTO groups (id, organization_id, name)
       SELECT ${sqlUid("o || 'g' || k")}, ${sqlUid('o')}, 'team-' || k
         FROM (VALUES ('s1'), ('s2')) AS x(o), generate_series(0, ${SNAP_GROUPS - 1}) k`,
    ],
    [
      'snap-same: the members, roles and groups of its snapshot',
      `INSERT INTO organization_members (organization_id, user_id, roles)
       SELECT '${s1}', ${sqlUid("'v' || i")}, ${roleSql('i')} FROM generate_series(1, ${n}) i`,
    ],
    [
      'snap-same: group members',
      `INSERT INTO group_members (group_id, user_id)
       SELECT ${sqlUid("'s1g' || (i % " + SNAP_GROUPS + ')')}, ${sqlUid("'v' || i")} FROM generate_series(1, ${n}) i`,
    ],
    [
      `snap-differs: ${q} members missing, ${q} extra, ${q} with other roles`,
      `INSERT INTO organization_members (organization_id, user_id, roles)
       SELECT '${s2}', ${sqlUid("'v' || i")},
              CASE WHEN i BETWEEN ${q + 1} AND ${2 * q} THEN ARRAY['organization-user-admin'] ELSE ${roleSql('i')} END
         FROM generate_series(${q + 1}, ${n + q}) i`,
    ],
    [
      `snap-differs: ${q} in another group, ${q} in none`,
      `INSERT INTO group_members (group_id, user_id)
       SELECT ${sqlUid("'s2g' || ((CASE WHEN i BETWEEN " + (2 * q + 1) + ' AND ' + 3 * q + ' THEN i + 1 ELSE i END) % ' + SNAP_GROUPS + ')')},
              ${sqlUid("'v' || i")}
         FROM generate_series(${q + 1}, ${n + q}) i WHERE i NOT BETWEEN ${3 * q + 1} AND ${4 * q}`,
    ],
    [
      `snap-differs: overrides on the ${2 * q} memberships to end and on ${q} to keep`,
      `INSERT INTO user_ai_budget_overrides (user_id, group_id, spend_limit_micros)
       SELECT ${sqlUid("'v' || i")}, ${sqlUid("'s2g' || ((CASE WHEN i BETWEEN " + (2 * q + 1) + ' AND ' + 3 * q + ' THEN i + 1 ELSE i END) % ' + SNAP_GROUPS + ')')}, 1000000
         FROM generate_series(1, ${n + q}) i
        WHERE i BETWEEN ${2 * q + 1} AND ${3 * q} OR i > ${n} OR i BETWEEN ${4 * q + 1} AND ${5 * q}`,
    ],
  ];
}

/** The snapshot of organization `o` ('s1' or 's2') in parts under PART_BYTES each. */
function snapshotParts(o: string, name: string, n: number, time: Date): { id: string; body: string }[] {
  const snapshotId = randomUUID();
  for (let count = 1; ; count++) {
    const per = Math.ceil(n / count);
    const parts = Array.from({ length: count }, (_, p) => {
      const ids = Array.from({ length: Math.min(per, n - p * per) }, (_, k) => p * per + k + 1);
      const data = {
        organization_id: uid(o),
        name,
        users: ids.map((i) => ({
          user_id: snapUser(i),
          username: `v${String(i).padStart(6, '0')}`,
          email: `v${i}@example.com`,
          name: `Snap ${i}`,
        })),
        members: ids.map((i) => ({ user_id: snapUser(i), roles: roleOf(i) })),
        groups: Array.from({ length: SNAP_GROUPS }, (_, k) => ({
          group_id: uid(`${o}g${k}`),
          name: `team-${k}`,
          members: ids.filter((i) => i % SNAP_GROUPS === k).map(snapUser),
        })),
        part: { snapshot_id: snapshotId, index: p + 1, count },
      };
      const event = cloudEvent('identity.organization.snapshot', SOURCE, data, time);
      return { id: event.id, body: JSON.stringify(event) };
    });
    if (parts.every((p) => Buffer.byteLength(p.body) <= PART_BYTES)) return parts;
  }
}

async function checkSnapshotOrg(c: Client, o: string, n: number): Promise<string> {
  const org = uid(o);
  const members = await c.query<{ user_id: string; roles: string[] }>(
    'SELECT user_id, roles FROM organization_members WHERE organization_id = $1',
    [org],
  );
  let wrong = 0;
  const want = new Map(Array.from({ length: n }, (_, k) => [snapUser(k + 1), roleOf(k + 1).join()]));
  for (const m of members.rows) if (want.get(m.user_id) !== [...m.roles].sort().join()) wrong++;
  const gm = await c.query<{ k: string }>(
    `SELECT gm.group_id || '/' || gm.user_id AS k FROM group_members gm JOIN groups g ON g.id = gm.group_id
      WHERE g.organization_id = $1`,
    [org],
  );
  const wantGm = new Set(
    Array.from({ length: n }, (_, k) => `${uid(`${o}g${(k + 1) % SNAP_GROUPS}`)}/${snapUser(k + 1)}`),
  );
  const g = sameSet(wantGm, new Set(gm.rows.map((r) => r.k)));
  const overrides = await one<{ n: string }>(
    c,
    'SELECT count(*) AS n FROM user_ai_budget_overrides o JOIN groups g ON g.id = o.group_id WHERE g.organization_id = $1',
    [org],
  );
  const ok = members.rows.length === n && wrong === 0 && g.missing + g.extra === 0;
  return (
    `${fmt(members.rows.length)} members (${wrong} wrong or extra), group memberships ${g.missing} missing / ${g.extra} extra, ` +
    `${overrides.n} overrides left: ${ok ? 'ok' : 'WRONG'}`
  );
}

// ---------------------------------------------------------------------------------------------
// Statement profile from the server log

interface LogEntry {
  ms: number;
  phase: string;
  sql: string;
}

function readLogEntries(file: string, from: number, db: string): LogEntry[] {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.alloc(size - from);
  fs.readSync(fd, buf, 0, buf.length, from);
  fs.closeSync(fd);
  const entries: LogEntry[] = [];
  let current: LogEntry | null = null;
  const head = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] (\S*)@(\S*) (\w+):\s+(.*)$/;
  for (const line of buf.toString('utf8').split('\n')) {
    const m = head.exec(line);
    if (m) {
      current = null;
      if (m[2] !== db || m[3] !== 'LOG') continue;
      const d = /^duration: ([0-9.]+) ms\s+(?:(statement)|(parse|bind|execute) [^:]*):\s*(.*)$/.exec(m[4]);
      if (!d) continue;
      current = { ms: Number(d[1]), phase: d[2] ?? d[3], sql: d[4] };
      entries.push(current);
    } else if (current && /^\d{4}-\d\d-\d\d /.test(line) === false) {
      current.sql += ` ${line.trim()}`;
    }
  }
  return entries;
}

const cpuPerEvent = (t: Timed, n: number) =>
  `CPU per event: client ${((t.clientCpu / n) * 1e6).toFixed(0)} µs, database ${((t.serverCpu / n) * 1e6).toFixed(0)} µs`;

const shapeOf = (sql: string) => sql.replace(/\s+/g, ' ').trim().slice(0, 70);

/** Statements per event and the server time they took, by statement shape. */
function printProfile(title: string, entries: LogEntry[], events: number, wallMs: number): void {
  const statements = entries.filter((e) => e.phase === 'execute' || e.phase === 'statement');
  const serverMs = entries.reduce((s, e) => s + e.ms, 0);
  console.log(title);
  console.log(
    `  ${fmt(statements.length)} statements: ${(statements.length / events).toFixed(2)} per event; ` +
      `server time (parse + bind + execute) ${fmt(serverMs)} ms: ${((serverMs / events) * 1000).toFixed(0)} µs per event, ` +
      `${((serverMs / wallMs) * 100).toFixed(0)}% of the wall time`,
  );
  const byShape = new Map<string, { n: number; ms: number; planned: number }>();
  for (const e of entries) {
    const k = shapeOf(e.sql);
    const s = byShape.get(k) ?? { n: 0, ms: 0, planned: 0 };
    if (e.phase === 'execute' || e.phase === 'statement') s.n++;
    // An unnamed statement is planned at bind: parse + bind is its parse and plan time.
    if (e.phase === 'parse' || e.phase === 'bind') s.planned += e.ms;
    s.ms += e.ms;
    byShape.set(k, s);
  }
  const planned = entries
    .filter((e) => e.phase === 'parse' || e.phase === 'bind')
    .reduce((s, e) => s + e.ms, 0);
  console.log(
    `  of which parse + bind (planning of unnamed statements): ${((planned / serverMs) * 100).toFixed(0)}%`,
  );
  const rows = [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12);
  console.log(
    `  ${'statement'.padEnd(72)} ${'count'.padStart(7)} ${'per event'.padStart(9)} ${'total ms'.padStart(9)} ${'µs each'.padStart(8)} ${'plan %'.padStart(6)}`,
  );
  for (const [k, s] of rows) {
    console.log(
      `  ${k.padEnd(72)} ${fmt(s.n).padStart(7)} ${(s.n / events).toFixed(2).padStart(9)} ${fmt(s.ms).padStart(9)} ${(s.n ? (s.ms / s.n) * 1000 : 0).toFixed(0).padStart(8)} ${((s.planned / (s.ms || 1)) * 100).toFixed(0).padStart(6)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${load()}, node ${process.version}`,
  );
  console.log(
    `configuration: ${fmt(EVENTS)} events, ${fmt(USERS)} users, ${GROUPS} groups, IDENTITY_BATCH_SIZE ${batchSize}` +
      `${BATCH_SIZE ? '' : ' (the default)'}, snapshot of ${fmt(SNAPSHOT_MEMBERS)} members, profile ${fmt(PROFILE_EVENTS)} events`,
  );
  const cleanup: (() => Promise<void>)[] = [];
  try {
    // Databases: a migrated, seeded template and a copy per contender.
    const template = await createBenchDatabase(ADMIN_URL, 'aigov_bench_mem_tpl');
    cleanup.push(template.drop);
    let t0 = performance.now();
    migrateDatabase(template.url);
    console.log(`\nmigrated in ${seconds(performance.now() - t0)}`);
    await withClient(template.url, async (c) => {
      for (const [what, sql] of SEED) {
        t0 = performance.now();
        await c.query(sql);
        console.log(`seeded ${what} in ${seconds(performance.now() - t0)}`);
      }
      await c.query('VACUUM ANALYZE');
    });
    const naiveDb = await createBenchDatabase(ADMIN_URL, 'aigov_bench_mem_naive', template.name);
    cleanup.push(naiveDb.drop);
    const tunedDb = await createBenchDatabase(ADMIN_URL, 'aigov_bench_mem_tuned', template.name);
    cleanup.push(tunedDb.drop);
    const listenerDb = await createBenchDatabase(ADMIN_URL, 'aigov_bench_mem_listener', template.name);
    cleanup.push(listenerDb.drop);

    const workload = new Workload();
    const events = workload.next(EVENTS);
    const changes = events.map((e) => e.change);
    const adds = changes.filter((c) => c.kind === 'added').length;
    console.log(
      `workload: ${fmt(EVENTS)} events, ${fmt(adds)} added and ${fmt(EVENTS - adds)} removed, ` +
        `${fmt(workload.overridesEnded.size)} of them ending an override`,
    );

    // Baselines.
    console.log(`\nbaselines (load average ${load()})`);
    const naive = await sqlBaseline(naiveDb.url, changes, 1);
    const naiveRate = EVENTS / (naive.ms / 1000);
    console.log(
      `  plain SQL, one autocommit statement per event: ${seconds(naive.ms)}, ${fmt(naiveRate)} events/s; ${cpuPerEvent(naive, EVENTS)}`,
    );
    await withClient(naiveDb.url, async (c) => checkState('naive', workload, await finalState(c)));
    const tuned = await sqlBaseline(tunedDb.url, changes, batchSize);
    const tunedRate = EVENTS / (tuned.ms / 1000);
    console.log(
      `  plain SQL, transactions of ${batchSize} statements:     ${seconds(tuned.ms)}, ${fmt(tunedRate)} events/s; ${cpuPerEvent(tuned, EVENTS)}`,
    );
    await withClient(tunedDb.url, async (c) => checkState('tuned', workload, await finalState(c)));

    // NATS and the listener.
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    const nc = await connect({ servers: nats.url, name: 'aigov-bench-membership' });
    cleanup.push(async () => {
      await nc.drain().catch(() => undefined);
    });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const listenerEnv: Record<string, string> = BATCH_SIZE ? { IDENTITY_BATCH_SIZE: BATCH_SIZE } : {};
    // A first start creates the stream and the durable consumer the way the listener does.
    t0 = performance.now();
    let listener = await startMembershipListener(listenerDb.url, nats.url, listenerEnv);
    for (let i = 0; ; i++) {
      try {
        await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER);
        break;
      } catch (err) {
        if (i > 600) throw err;
        await sleep(50);
      }
    }
    console.log(
      `\nlistener started (stream and consumer created) in ${seconds(performance.now() - t0)}; stopped`,
    );
    await stop(listener.child);

    const publishMs = await publishAll(js, events);
    const bytes = events.reduce((s, e) => s + Buffer.byteLength(e.body), 0);
    console.log(
      `published ${fmt(EVENTS)} events (${fmt(bytes / EVENTS)} bytes each) in ${seconds(publishMs)}: ${fmt(EVENTS / (publishMs / 1000))} events/s`,
    );
    const floorMs = await natsFloor(nc, EVENTS);
    const floorRate = EVENTS / (floorMs / 1000);
    console.log(
      `NATS floor (fetch ${batchSize}, ack each, flush per batch, no database): ${seconds(floorMs)}, ${fmt(floorRate)} events/s`,
    );

    const db = new Client({ connectionString: listenerDb.url });
    await db.connect();
    cleanup.push(async () => {
      await db.end().catch(() => undefined);
    });
    // Events applied and acknowledged: the consumer's ack floor (the listener acknowledges in
    // stream order, after the commit). Asked of NATS, so the polling adds no database work.
    const applied = async () =>
      (await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER)).ack_floor.stream_seq;
    const before = await dbCounters(db, listenerDb.name);
    const natsCpu0 = cpuSeconds(nats.child.pid!);
    console.log(`\nlistener (load average ${load()})`);
    t0 = performance.now();
    listener = await startMembershipListener(
      listenerDb.url,
      nats.url,
      listenerEnv,
      CPU_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROFILE_DIR] : [],
    );
    cleanup.push(() => stop(listener.child));
    const startedMs = performance.now() - t0;
    const nodeCpuStarted = cpuSeconds(listener.child.pid!);
    const run = await waitApplied(applied, 0, EVENTS, 600_000);
    const after = await dbCounters(db, listenerDb.name);
    const listenerMs = run.lastMs - run.firstMs;
    // The events seen at the first poll were applied before the clock started.
    const listenerRate = (EVENTS - run.firstCount) / (listenerMs / 1000);
    const nodeCpu = cpuSeconds(listener.child.pid!);
    const backendCpu = (await listenerBackendPids(db, listenerDb.name)).reduce(
      (s, p) => s + cpuSeconds(p),
      0,
    );
    const natsCpu = cpuSeconds(nats.child.pid!) - natsCpu0;
    const span = await one<{ s: number }>(
      db,
      'SELECT extract(epoch FROM max(applied_at) - min(applied_at)) AS s FROM identity_applied_events',
    );
    const metrics = await metricTotals(listener.base);
    console.log(
      `  started in ${seconds(startedMs)} (not counted); ${fmt(EVENTS - run.firstCount)} events applied in ${seconds(listenerMs)} ` +
        `after the first ${fmt(run.firstCount)}: ` +
        `${fmt(listenerRate)} events/s`,
    );
    console.log(`  first to last batch start (applied_at in the database): ${Number(span.s).toFixed(2)} s`);
    console.log(
      `  outcomes: applied ${fmt(metrics.aigov_identity_events_applied_total ?? 0)}, stale ${fmt(metrics.aigov_identity_events_stale_total ?? 0)}, ` +
        `duplicate ${fmt(metrics.aigov_identity_events_duplicate_total ?? 0)}, retried ${fmt(metrics.aigov_identity_events_retried_total ?? 0)}, ` +
        `dead-lettered ${fmt(metrics.aigov_identity_events_dead_lettered_total ?? 0)}; ` +
        `${fmt(metrics.aigov_identity_batch_duration_seconds_count ?? 0)} batches, ` +
        `${(((metrics.aigov_identity_batch_duration_seconds_sum ?? 0) / (metrics.aigov_identity_batch_duration_seconds_count || 1)) * 1000).toFixed(0)} ms each on average`,
    );
    console.log(
      `  CPU: listener process ${nodeCpu.toFixed(1)} s (${(nodeCpu - nodeCpuStarted).toFixed(1)} s after startup), ` +
        `its PostgreSQL backends ${backendCpu.toFixed(1)} s, nats-server ${natsCpu.toFixed(1)} s; wall ${seconds(listenerMs)}`,
    );
    console.log(
      `  ${cpuPerEvent({ ms: listenerMs, clientCpu: nodeCpu - nodeCpuStarted, serverCpu: backendCpu }, EVENTS)}, nats-server ${((natsCpu / EVENTS) * 1e6).toFixed(0)} µs`,
    );
    console.log(
      `  database: ${fmt(after.xact - before.xact)} transactions (and this bench's few reads), rows inserted ${fmt(after.inserted - before.inserted)}, ` +
        `updated ${fmt(after.updated - before.updated)}, deleted ${fmt(after.deleted - before.deleted)}`,
    );
    // Tables that start empty and grow during the run are planned without statistics until
    // autovacuum analyzes them: sequential scans here show it.
    const scans = await db.query<Record<string, string>>(
      `SELECT relname, seq_scan, seq_tup_read, idx_scan, n_live_tup, autoanalyze_count
         FROM pg_stat_user_tables
        WHERE relname IN ('identity_applied_events', 'identity_versions', 'group_members', 'audit_logs')
        ORDER BY relname`,
    );
    for (const r of scans.rows) {
      console.log(
        `  table ${r.relname}: ${fmt(Number(r.seq_scan))} sequential scans reading ${fmt(Number(r.seq_tup_read))} rows, ` +
          `${fmt(Number(r.idx_scan))} index scans, ${fmt(Number(r.n_live_tup))} rows, analyzed by autovacuum ${r.autoanalyze_count} times`,
      );
    }
    checkState('listener', workload, await finalState(db));
    const audit = await db.query<{ actor: string; resource_type: string; n: string }>(
      `SELECT actor, resource_type, count(*) AS n FROM audit_logs GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    console.log(
      `  audit entries: ${audit.rows.map((r) => `${r.actor} ${r.resource_type} ${fmt(Number(r.n))}`).join(', ')}`,
    );

    console.log('\nsummary');
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    console.log(
      `  listener ${fmt(listenerRate)} events/s; goal ${fmt(GOAL_RATE)}: ${verdict(listenerRate >= GOAL_RATE)}`,
    );
    console.log(
      `  ratio to plain SQL, autocommit: ${(listenerRate / naiveRate).toFixed(2)}x (goal ${GOAL_RATIO}x: ${verdict(listenerRate / naiveRate >= GOAL_RATIO)})`,
    );
    console.log(
      `  ratio to plain SQL, transactions of ${batchSize}: ${(listenerRate / tunedRate).toFixed(2)}x`,
    );
    console.log(`  ratio to the NATS floor: ${(listenerRate / floorRate).toFixed(2)}x`);

    // Snapshots, with the listener running.
    console.log(`\nsnapshots of ${fmt(SNAPSHOT_MEMBERS)} members (load average ${load()})`);
    for (const [what, sql] of snapshotSeed(SNAPSHOT_MEMBERS)) {
      t0 = performance.now();
      await db.query(sql);
      console.log(`  seeded ${what} in ${seconds(performance.now() - t0)}`);
    }
    await db.query('ANALYZE');
    let snapTime = Date.now() - 60_000;
    for (const [o, name, label] of [
      ['s1', 'snap-same', 'already matching'],
      ['s2', 'snap-differs', 'differing in 10%'],
    ] as const) {
      const parts = snapshotParts(o, name, SNAPSHOT_MEMBERS, new Date(snapTime++));
      const auditBefore = Number((await one<{ n: string }>(db, 'SELECT count(*) AS n FROM audit_logs')).n);
      const last = parts[parts.length - 1].id;
      t0 = performance.now();
      for (const p of parts) await js.publish('identity.organization.snapshot', p.body);
      const publishedMs = performance.now() - t0;
      for (;;) {
        const r = await db.query('SELECT 1 FROM identity_applied_events WHERE event_id = $1', [last]);
        if (r.rows.length > 0) break;
        if (performance.now() - t0 > 600_000) throw new Error(`snapshot ${name} not applied in 600 s`);
        await sleep(20);
      }
      const appliedMs = performance.now() - t0;
      const auditAfter = Number((await one<{ n: string }>(db, 'SELECT count(*) AS n FROM audit_logs')).n);
      console.log(
        `  ${label}: ${parts.length} parts of ${parts.map((p) => fmt(Buffer.byteLength(p.body))).join(', ')} bytes; ` +
          `published in ${seconds(publishedMs)}, applied ${seconds(appliedMs)} after the first publish; ` +
          `${fmt(auditAfter - auditBefore)} audit entries`,
      );
      console.log(`    check: ${await checkSnapshotOrg(db, o, SNAPSHOT_MEMBERS)}`);
    }

    // Statement profile.
    let logReadable = false;
    try {
      fs.accessSync(POSTGRES_LOG, fs.constants.R_OK);
      logReadable = true;
    } catch {
      console.log(`\nstatement profile skipped: cannot read ${POSTGRES_LOG} (--postgres-log)`);
    }
    if (PROFILE_EVENTS > 0 && logReadable) {
      await stop(listener.child);
      const more = workload.next(PROFILE_EVENTS);
      const admin = new Client({ connectionString: ADMIN_URL });
      await admin.connect();
      try {
        await admin.query(`ALTER DATABASE ${listenerDb.name} SET log_min_duration_statement = 0`);
        await publishAll(js, more);
        const from = fs.statSync(POSTGRES_LOG).size;
        const n0 = await applied();
        listener = await startMembershipListener(listenerDb.url, nats.url, listenerEnv);
        const p = await waitApplied(applied, n0, n0 + PROFILE_EVENTS, 600_000);
        await stop(listener.child);
        await admin.query(`ALTER DATABASE ${listenerDb.name} RESET log_min_duration_statement`);
        const wallMs = p.lastMs - p.firstMs;
        printProfile(
          `\nstatement profile of the listener: ${fmt(PROFILE_EVENTS)} more events with every statement logged ` +
            `(${seconds(wallMs)}, ${fmt((PROFILE_EVENTS - p.firstCount) / (wallMs / 1000))} events/s while logging; its startup statements included)`,
          readLogEntries(POSTGRES_LOG, from, listenerDb.name),
          PROFILE_EVENTS,
          wallMs,
        );
        // The same changes as plain SQL in transactions, logged the same way: what the
        // statements themselves cost next to the listener's.
        await admin.query(`ALTER DATABASE ${tunedDb.name} SET log_min_duration_statement = 0`);
        const from2 = fs.statSync(POSTGRES_LOG).size;
        const plain = await sqlBaseline(
          tunedDb.url,
          more.map((e) => e.change),
          batchSize,
        );
        await admin.query(`ALTER DATABASE ${tunedDb.name} RESET log_min_duration_statement`);
        printProfile(
          `\nstatement profile of plain SQL in transactions of ${batchSize}, the same changes, logged the same way ` +
            `(${seconds(plain.ms)}, ${fmt(PROFILE_EVENTS / (plain.ms / 1000))} events/s while logging)`,
          readLogEntries(POSTGRES_LOG, from2, tunedDb.name),
          PROFILE_EVENTS,
          plain.ms,
        );
      } finally {
        for (const name of [listenerDb.name, tunedDb.name]) {
          await admin.query(`ALTER DATABASE ${name} RESET log_min_duration_statement`).catch(() => undefined);
        }
        await admin.end();
      }
    }
    console.log(`\nload average at the end: ${load()} on ${os.cpus().length} cores`);
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch((err: unknown) => console.error(err));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
