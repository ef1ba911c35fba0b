import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'pg';
import {
  DLQ_STREAM,
  IDENTITY_CONSUMER,
  IDENTITY_STREAM,
  IDENTITY_STREAM_SUBJECTS,
  type DeadLetter,
} from '@aigov/contracts';
import { killAppProcess, startAppProcess, type AppProcess } from './processes';

// The compiled membership-listener as a child process, identity event histories with the state
// they must leave behind, and the checks that the database holds exactly that state.

/** A running listener process and the port of its HTTP server (/readyz, /metrics). */
export type Listener = AppProcess;

/** Starts dist/apps/membership-listener (npm run build first) and waits until it is ready. */
export function startListener(
  label: string,
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<Listener> {
  return startAppProcess('membership-listener', label, env, readyTimeoutMs);
}

/** SIGKILL to the listener's process group, then its exit (killAppProcess). */
export const killListener = killAppProcess;

export { counterTotal, readyStatus } from './processes';

/** One message to publish: an event (or anything else, for poison) on a subject. */
export interface Published {
  id: string;
  subject: string;
  body: string;
  /** The event's time in epoch milliseconds. */
  time: number;
}

export function event(subject: string, data: unknown, time: number, id: string = randomUUID()): Published {
  const body = JSON.stringify({
    specversion: '1.0',
    id,
    source: 'test/idp',
    type: subject,
    time: new Date(time).toISOString(),
    datacontenttype: 'application/json',
    data,
  });
  return { id, subject, body, time };
}

/**
 * Publishes in stream order: publishes on one connection reach the server in the order they are
 * sent, so a chunk can wait for its acknowledgements together.
 */
export async function publishAll(
  nc: NatsConnection,
  messages: readonly Published[],
  chunk = 200,
): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < messages.length; i += chunk) {
    await Promise.all(messages.slice(i, i + chunk).map((m) => js.publish(m.subject, m.body)));
  }
}

/** The IDENTITY stream as an operator would create it before any listener runs. */
export async function createIdentityStream(jsm: JetStreamManager): Promise<void> {
  await jsm.streams.add({ name: IDENTITY_STREAM, subjects: [IDENTITY_STREAM_SUBJECTS] });
}

/** True when the durable consumer has delivered the whole stream and nothing waits for an ack. */
export async function consumerSettled(nc: NatsConnection): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const [info, stream] = await Promise.all([
    jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER),
    jsm.streams.info(IDENTITY_STREAM),
  ]);
  return (
    info.num_pending === 0 &&
    info.num_ack_pending === 0 &&
    info.delivered.stream_seq === stream.state.last_seq
  );
}

export async function deadLetters(nc: NatsConnection): Promise<DeadLetter[]> {
  const jsm = await jetstreamManager(nc);
  const state = (await jsm.streams.info(DLQ_STREAM)).state;
  const out: DeadLetter[] = [];
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(DLQ_STREAM, { seq });
    if (m) out.push(m.json<DeadLetter>());
  }
  return out;
}

/** A small deterministic PRNG, so that a failing history can be generated again. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** What a history must leave in the database. */
export interface Expected {
  orgs: string[];
  groups: string[];
  users: string[];
  /** `<organization id>/<user id>` */
  orgMembers: Set<string>;
  /** `<group id>/<user id>`, explicit groups only */
  groupMembers: Set<string>;
  userNames: Map<string, string | null>;
}

/** The membership key an event adds or removes (the applier's identity_versions key). */
interface MembershipKey {
  entity: 'organization_member' | 'group_member';
  key: string;
  organizationId: string;
  userId: string;
}

export interface History {
  messages: Published[];
  /** Each distinct event once, by id. */
  events: Map<string, Published & { adds?: MembershipKey }>;
  expected: Expected;
}

/**
 * `total` messages about a few organizations, users and groups: the entities first, then members
 * added to and removed from organizations and groups, renames, and about 4% repeats of an
 * earlier event (same id). Every event is valid where it stands in time order (a group member is
 * a member of the organization then), times are distinct milliseconds in publish order, and the
 * expected state is that order applied by a tiny model.

 */
export function identityHistory(total: number, seed: number, tag: string): History {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  let clock = Date.parse('2026-11-01T00:00:00.000Z') + seed * 10_000_000;
  const messages: Published[] = [];
  const events: History['events'] = new Map();
  const push = (subject: string, data: unknown, adds?: MembershipKey): void => {
    const e = event(subject, data, clock++);
    messages.push(e);
    events.set(e.id, { ...e, adds });
  };
  const orgs = [randomUUID(), randomUUID()];
  const users = Array.from({ length: 40 }, () => randomUUID());
  const groupOrg = new Map<string, string>();
  for (const o of orgs) for (let i = 0; i < 3; i++) groupOrg.set(randomUUID(), o);
  const groups = [...groupOrg.keys()];
  const expected: Expected = {
    orgs,
    groups,
    users,
    orgMembers: new Set(),
    groupMembers: new Set(),
    userNames: new Map(users.map((u) => [u, null])),
  };

  orgs.forEach((o, i) =>
    push('identity.organization.upserted', { organization_id: o, name: `${tag}-org-${i}` }),
  );
  users.forEach((u, i) =>
    push('identity.user.upserted', {
      user_id: u,
      username: `${tag}-u${i}`,
      email: `${tag}-u${i}@example.test`,
    }),
  );
  let g = 0;
  for (const [group, org] of groupOrg) {
    push('identity.group.upserted', { group_id: group, organization_id: org, name: `${tag} group ${g++}` });
  }
  const setup = messages.length;

  while (messages.length < total) {
    const r = rnd();
    if (r < 0.04) {
      // A repeat: the publisher retried, or the source sent it twice.
      messages.push(messages[setup + Math.floor(rnd() * (messages.length - setup))] ?? messages[0]);
      continue;
    }
    const user = pick(users);
    if (r < 0.3) {
      const org = pick(orgs);
      push(
        'identity.organization.member.added',
        { organization_id: org, user_id: user },
        {
          entity: 'organization_member',
          key: `${org}/${user}`,
          organizationId: org,
          userId: user,
        },
      );
      expected.orgMembers.add(`${org}/${user}`);
    } else if (r < 0.4) {
      const org = pick(orgs);
      push('identity.organization.member.removed', { organization_id: org, user_id: user });
      expected.orgMembers.delete(`${org}/${user}`);
      for (const [group, o] of groupOrg) if (o === org) expected.groupMembers.delete(`${group}/${user}`);
    } else if (r < 0.75) {
      const candidates = groups.filter((gr) => expected.orgMembers.has(`${groupOrg.get(gr)}/${user}`));
      if (candidates.length === 0) continue;
      const group = pick(candidates);
      push(
        'identity.group.member.added',
        { group_id: group, user_id: user },
        {
          entity: 'group_member',
          key: `${group}/${user}`,
          organizationId: groupOrg.get(group)!,
          userId: user,
        },
      );
      expected.groupMembers.add(`${group}/${user}`);
    } else if (r < 0.95) {
      const group = pick(groups);
      push('identity.group.member.removed', { group_id: group, user_id: user });
      expected.groupMembers.delete(`${group}/${user}`);
    } else {
      const i = users.indexOf(user);
      const name = `Renamed ${messages.length}`;
      push('identity.user.upserted', {
        user_id: user,
        username: `${tag}-u${i}`,
        email: `${tag}-u${i}@example.test`,
        name,
      });
      expected.userNames.set(user, name);
    }
  }
  return { messages, events, expected };
}

const keys = (rows: { k: string }[]): string[] => rows.map((r) => r.k).sort();

/**
 * Checks the database against the history: the memberships and names it says, every event
 * recorded once or else provably stale, audit entries neither doubled nor missing.
 */
export async function expectDatabaseMatches(db: Client, h: History): Promise<void> {
  const { expected } = h;
  const orgMembers = await db.query<{ k: string }>(
    `SELECT organization_id || '/' || user_id AS k FROM organization_members WHERE organization_id = ANY($1::uuid[])`,
    [expected.orgs],
  );
  expect(keys(orgMembers.rows)).toEqual([...expected.orgMembers].sort());
  const groupMembers = await db.query<{ k: string }>(
    `SELECT group_id || '/' || user_id AS k FROM group_members WHERE group_id = ANY($1::uuid[])`,
    [expected.groups],
  );
  expect(keys(groupMembers.rows)).toEqual([...expected.groupMembers].sort());
  const users = await db.query<{ id: string; name: string | null }>(
    'SELECT id, name FROM users WHERE id = ANY($1::uuid[])',
    [expected.users],
  );
  expect(new Map(users.rows.map((u) => [u.id, u.name]))).toEqual(expected.userNames);

  // Each event is recorded at most once (the primary key) and only events of the history are.
  // One that is not recorded must be an addition that lost to a later change of its key (it came
  // after a removal with a later time, when delivery order differed from time order).
  const recorded = new Set(
    (await db.query<{ event_id: string }>('SELECT event_id FROM identity_applied_events')).rows.map(
      (r) => r.event_id,
    ),
  );
  expect([...recorded].filter((id) => !h.events.has(id))).toEqual([]);
  const versions = new Map(
    (
      await db.query<{ k: string; t: Date }>(
        `SELECT entity || ':' || key AS k, time AS t FROM identity_versions`,
      )
    ).rows.map((r) => [r.k, r.t.getTime()]),
  );
  const unexplained = [...h.events.values()]
    .filter((e) => !recorded.has(e.id))
    .filter((e) => {
      const a = e.adds;
      if (!a) return true;
      const newer = (k: string): boolean => (versions.get(k) ?? -Infinity) > e.time;
      return !(newer(`${a.entity}:${a.key}`) || newer(`organization_member:${a.organizationId}/${a.userId}`));
    })
    .map((e) => `${e.subject} ${e.id}`);
  expect(unexplained).toEqual([]);

  // Audit: each change once. Per membership, the entries in event-time order alternate create and
  // delete, and the last one says whether it is there now.
  const audit = await db.query<{
    request_id: string;
    resource_type: string;
    resource_id: string;
    action: string;
  }>(
    `SELECT request_id, resource_type, resource_id, action FROM audit_logs
      WHERE resource_type IN ('user', 'organization_member', 'group_member') AND action <> 'write'`,
  );
  const seen = new Set<string>();
  const doubled: string[] = [];
  for (const a of audit.rows) {
    const k = `${a.request_id} ${a.resource_type} ${a.resource_id} ${a.action}`;
    if (seen.has(k)) doubled.push(k);
    seen.add(k);
  }
  expect(doubled).toEqual([]);
  expect(audit.rows.filter((a) => !h.events.has(a.request_id))).toEqual([]);
  const userCreates = audit.rows.filter((a) => a.resource_type === 'user' && a.action === 'create');
  expect(userCreates.map((a) => a.resource_id).sort()).toEqual([...expected.users].sort());

  const byKey = new Map<string, { time: number; action: string }[]>();
  for (const a of audit.rows) {
    if (a.resource_type === 'user') continue;
    const k = `${a.resource_type}:${a.resource_id}`;
    byKey.set(k, [...(byKey.get(k) ?? []), { time: h.events.get(a.request_id)!.time, action: a.action }]);
  }
  const present = new Set([
    ...[...expected.orgMembers].map((k) => `organization_member:${k}`),
    ...[...expected.groupMembers].map((k) => `group_member:${k}`),
  ]);
  const wrong: string[] = [];
  for (const [k, entries] of byKey) {
    const actions = entries.sort((x, y) => x.time - y.time).map((e) => e.action);
    const alternates = actions.every((act, i) => act === (i % 2 === 0 ? 'create' : 'delete'));
    if (!alternates || (actions.at(-1) === 'create') !== present.has(k))
      wrong.push(`${k}: ${actions.join(',')}`);
  }
  for (const k of present) if (!byKey.has(k)) wrong.push(`${k}: no entry`);
  expect(wrong).toEqual([]);
}
