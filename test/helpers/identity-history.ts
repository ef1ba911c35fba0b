import type {
  CloudEvent,
  IdentityDataBySubject,
  IdentityEvent,
  IdentitySubject,
  OrganizationRole,
  OrganizationSnapshotData,
  UserStatus,
} from '@aigov/contracts';

/**
 * Random identity histories for convergence tests, independent of how they are delivered: a
 * seeded generator of what an identity system publishes (valid in the order of its times), the
 * model of the state it intends (the events applied in time order), and delivery transforms
 * (duplicates, local reordering, batches) that a broker may inflict on it.
 */

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** A small seeded PRNG (mulberry32): the same seed gives the same history on every machine. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)];
  }

  /** A UUID-shaped (version 4 layout) id drawn from the seed. */
  uuid(): string {
    const hex = Array.from({ length: 32 }, () => Math.floor(this.next() * 16).toString(16));
    hex[12] = '4';
    hex[16] = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
    const s = hex.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

// ---------------------------------------------------------------------------------------------
// Events and state

/** An identity event as published: a CloudEvent whose `type` is its subject, `time` ISO 8601. */
export type IdentityCloudEvent = {
  [S in IdentitySubject]: CloudEvent<IdentityDataBySubject[S]> & { type: S };
}[IdentitySubject];

/** The event as the listener holds it once validated (`time` parsed). */
export function toIdentityEvent(e: IdentityCloudEvent): IdentityEvent {
  return { id: e.id, source: e.source, type: e.type, time: new Date(e.time), data: e.data } as IdentityEvent;
}

export interface UserState {
  username: string;
  email: string;
  name: string | null;
  status: UserStatus;
}
export interface GroupState {
  name: string;
  displayName: string | null;
  members: Set<string>;
}
export interface OrganizationState {
  name: string;
  displayName: string | null;
  /** user id -> organization roles */
  members: Map<string, OrganizationRole[]>;
  /** Groups other than Everyone. */
  groups: Map<string, GroupState>;
}
export interface IdentityState {
  users: Map<string, UserState>;
  organizations: Map<string, OrganizationState>;
}

export const emptyState = (): IdentityState => ({ users: new Map(), organizations: new Map() });

const ORG_ROLES: readonly OrganizationRole[] = [
  'organization-admin',
  'organization-user-admin',
  'organization-auditor',
];

function groupOf(s: IdentityState, groupId: string): { org: OrganizationState; group: GroupState } | null {
  for (const org of s.organizations.values()) {
    const group = org.groups.get(groupId);
    if (group) return { org, group };
  }
  return null;
}

function applySnapshotToState(s: IdentityState, d: OrganizationSnapshotData): void {
  const prior = s.organizations.get(d.organization_id);
  for (const u of d.users) applyToState(s, 'identity.user.upserted', u);
  const org: OrganizationState = {
    name: d.name,
    displayName: d.display_name === undefined ? (prior?.displayName ?? null) : d.display_name,
    members: new Map(d.members.map((m) => [m.user_id, [...m.roles]])),
    groups: new Map(
      d.groups.map((g) => [
        g.group_id,
        {
          name: g.name,
          displayName:
            g.display_name === undefined
              ? (prior?.groups.get(g.group_id)?.displayName ?? null)
              : g.display_name,
          members: new Set(g.members),
        },
      ]),
    ),
  };
  s.organizations.set(d.organization_id, org);
}

/** The effect of one event on the intended state, as the source means it (contract section 4.1). */
function applyToState<S extends IdentitySubject>(
  s: IdentityState,
  type: S,
  data: IdentityDataBySubject[S],
): void {
  const d = data;
  switch (type) {
    case 'identity.user.upserted': {
      const u = d as IdentityDataBySubject['identity.user.upserted'];
      const before = s.users.get(u.user_id);
      s.users.set(u.user_id, {
        username: u.username,
        email: u.email,
        name: u.name === undefined ? (before?.name ?? null) : u.name,
        status: u.status ?? before?.status ?? 'active',
      });
      return;
    }
    case 'identity.user.deleted': {
      const { user_id } = d as IdentityDataBySubject['identity.user.deleted'];
      s.users.delete(user_id);
      for (const org of s.organizations.values()) {
        org.members.delete(user_id);
        for (const g of org.groups.values()) g.members.delete(user_id);
      }
      return;
    }
    case 'identity.organization.upserted': {
      const o = d as IdentityDataBySubject['identity.organization.upserted'];
      const before = s.organizations.get(o.organization_id);
      const displayName = o.display_name === undefined ? (before?.displayName ?? null) : o.display_name;
      if (before) Object.assign(before, { name: o.name, displayName });
      else
        s.organizations.set(o.organization_id, {
          name: o.name,
          displayName,
          members: new Map(),
          groups: new Map(),
        });
      return;
    }
    case 'identity.organization.deleted':
      s.organizations.delete((d as IdentityDataBySubject['identity.organization.deleted']).organization_id);
      return;
    case 'identity.organization.member.added': {
      const m = d as IdentityDataBySubject['identity.organization.member.added'];
      const org = s.organizations.get(m.organization_id);
      if (!org || !s.users.has(m.user_id))
        throw new Error(`invalid history: member.added ${JSON.stringify(m)}`);
      org.members.set(m.user_id, m.roles ? [...m.roles] : (org.members.get(m.user_id) ?? []));
      return;
    }
    case 'identity.organization.member.removed': {
      const m = d as IdentityDataBySubject['identity.organization.member.removed'];
      const org = s.organizations.get(m.organization_id);
      if (!org) return;
      org.members.delete(m.user_id);
      for (const g of org.groups.values()) g.members.delete(m.user_id);
      return;
    }
    case 'identity.group.upserted': {
      const g = d as IdentityDataBySubject['identity.group.upserted'];
      const org = s.organizations.get(g.organization_id);
      if (!org) throw new Error(`invalid history: group.upserted ${JSON.stringify(g)}`);
      const before = org.groups.get(g.group_id);
      const displayName = g.display_name === undefined ? (before?.displayName ?? null) : g.display_name;
      if (before) Object.assign(before, { name: g.name, displayName });
      else org.groups.set(g.group_id, { name: g.name, displayName, members: new Set() });
      return;
    }
    case 'identity.group.deleted': {
      const { group_id } = d as IdentityDataBySubject['identity.group.deleted'];
      for (const org of s.organizations.values()) org.groups.delete(group_id);
      return;
    }
    case 'identity.group.member.added': {
      const m = d as IdentityDataBySubject['identity.group.member.added'];
      const found = groupOf(s, m.group_id);
      if (!found || !found.org.members.has(m.user_id)) {
        throw new Error(`invalid history: group.member.added ${JSON.stringify(m)}`);
      }
      found.group.members.add(m.user_id);
      return;
    }
    case 'identity.group.member.removed': {
      const m = d as IdentityDataBySubject['identity.group.member.removed'];
      groupOf(s, m.group_id)?.group.members.delete(m.user_id);
      return;
    }
    case 'identity.organization.snapshot':
      applySnapshotToState(s, d as OrganizationSnapshotData);
      return;
  }
}

/**
 * The state the source intends after its history: the events applied once each, in the order of
 * their times (the source's truth). A snapshot sent in parts takes effect when its last part
 * (in time) is reached, with the parts' lists merged.
 */
export function model(history: readonly IdentityCloudEvent[]): IdentityState {
  const s = emptyState();
  const seen = new Set<string>();
  const parts = new Map<string, OrganizationSnapshotData[]>();
  const ordered = [...history].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  for (const e of ordered) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    if (e.type === 'identity.organization.snapshot' && e.data.part) {
      const got = [...(parts.get(e.data.part.snapshot_id) ?? []), e.data];
      parts.set(e.data.part.snapshot_id, got);
      if (got.length < e.data.part.count) continue;
      applySnapshotToState(s, mergeParts(got));
      continue;
    }
    applyToState(s, e.type, e.data);
  }
  return s;
}

function mergeParts(parts: OrganizationSnapshotData[]): OrganizationSnapshotData {
  const sorted = [...parts].sort((a, b) => (a.part?.index ?? 0) - (b.part?.index ?? 0));
  const groups = new Map<string, OrganizationSnapshotData['groups'][number]>();
  for (const p of sorted) {
    for (const g of p.groups) {
      const seen = groups.get(g.group_id);
      groups.set(g.group_id, seen ? { ...seen, members: [...seen.members, ...g.members] } : { ...g });
    }
  }
  const { part: _part, ...first } = sorted[0];
  void _part;
  return {
    ...first,
    users: sorted.flatMap((p) => p.users),
    members: sorted.flatMap((p) => p.members),
    groups: [...groups.values()],
  };
}

function cloneState(s: IdentityState): IdentityState {
  return {
    users: new Map([...s.users].map(([k, u]) => [k, { ...u }])),
    organizations: new Map(
      [...s.organizations].map(([k, o]) => [
        k,
        {
          ...o,
          members: new Map([...o.members].map(([u, r]) => [u, [...r]])),
          groups: new Map([...o.groups].map(([g, v]) => [g, { ...v, members: new Set(v.members) }])),
        },
      ]),
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Comparable form

export interface FlatState {
  users: string[];
  organizations: string[];
  members: string[];
  groups: string[];
  groupMembers: string[];
}

const sortedRoles = (roles: readonly string[]) => [...roles].sort().join('+');

/** The state as sorted lines, one per row, so that two states compare line by line. */
export function flatten(s: IdentityState): FlatState {
  const out: FlatState = { users: [], organizations: [], members: [], groups: [], groupMembers: [] };
  for (const [id, u] of s.users) out.users.push(`${id} ${u.username} ${u.email} ${u.name} ${u.status}`);
  for (const [oid, o] of s.organizations) {
    out.organizations.push(`${oid} ${o.name} ${o.displayName}`);
    for (const [uid, roles] of o.members) out.members.push(`${oid}/${uid} [${sortedRoles(roles)}]`);
    for (const [gid, g] of o.groups) {
      out.groups.push(`${gid} ${oid} ${g.name} ${g.displayName}`);
      for (const uid of g.members) out.groupMembers.push(`${gid}/${uid}`);
    }
  }
  for (const k of Object.keys(out) as (keyof FlatState)[]) out[k].sort();
  return out;
}

/** The lines that differ between the intended and the actual state (`-` missing, `+` extra). */
export function differences(intended: FlatState, actual: FlatState, limit = 40): string[] {
  const diff: string[] = [];
  for (const k of Object.keys(intended) as (keyof FlatState)[]) {
    const want = new Set(intended[k]);
    const got = new Set(actual[k]);
    for (const line of intended[k]) if (!got.has(line)) diff.push(`${k} - ${line}`);
    for (const line of actual[k]) if (!want.has(line)) diff.push(`${k} + ${line}`);
  }
  return diff.slice(0, limit);
}

// ---------------------------------------------------------------------------------------------
// The generator

export interface HistoryOptions {
  seed: number;
  /** At least this many events (a split snapshot may add a few). */
  events?: number;
  users?: number;
  organizations?: number;
  groups?: number;
  /** One event in this many is an organization snapshot. */
  snapshotEvery?: number;
  /** Share of snapshots sent in two or three parts. */
  splitSnapshots?: number;
  /** Share of organization.member.added events sent without `roles` (the member keeps its roles). */
  addsWithoutRoles?: number;
  /** Share of user.upserted events that leave out `name` and `status` (they keep theirs). */
  partialUserUpserts?: number;
  source?: string;
  start?: Date;
}

type Action = { weight: number; run: () => boolean };

/**
 * A random history valid in the order of its times: names are unique among the live users,
 * groups of an organization and organizations at every instant; a group member is a member of
 * the group's organization when added; deleted users and groups never come back; snapshots show
 * the intended state of their organization at their time. Times strictly increase (ms steps).
 */
export function generateHistory(options: HistoryOptions): IdentityCloudEvent[] {
  const o = {
    events: 5000,
    users: 300,
    organizations: 4,
    groups: 40,
    snapshotEvery: 120,
    splitSnapshots: 0.3,
    addsWithoutRoles: 0,
    partialUserUpserts: 0,
    source: 'test/identity-history',
    start: new Date('2026-06-01T00:00:00Z'),
    ...options,
  };
  const r = new Random(o.seed);
  const state = emptyState();
  const history: IdentityCloudEvent[] = [];
  let clock = o.start.getTime();

  const emit = <S extends IdentitySubject>(type: S, data: IdentityDataBySubject[S]) => {
    clock += r.int(1, 1000);
    const e = {
      specversion: '1.0',
      id: r.uuid(),
      source: o.source,
      type,
      time: new Date(clock).toISOString(),
      datacontenttype: 'application/json',
      data,
    } as IdentityCloudEvent;
    if (!(type === 'identity.organization.snapshot' && (data as OrganizationSnapshotData).part)) {
      applyToState(state, type, data);
    }
    history.push(e);
  };

  // Identities: ids drawn up front; names from pools a little larger than what is live, so that
  // names freed by a rename or a deletion are soon taken by someone else.
  const userIds = Array.from({ length: o.users }, () => r.uuid());
  const orgIds = Array.from({ length: o.organizations }, () => r.uuid());
  const groupIds = Array.from({ length: o.groups }, () => r.uuid());
  let usersCreated = 0;
  let groupsCreated = 0;
  const usernamePool = Math.ceil(o.users * 1.25);
  const orgNamePool = o.organizations * 3;
  const groupNamePool = Math.max(4, Math.ceil((o.groups / o.organizations) * 1.5));

  const recentlyLeft: [string, string][] = [];
  const liveUsers = () => [...state.users.keys()];
  const freeName = (taken: Set<string>, make: (k: number) => string, pool: number) => {
    for (let tries = 0; tries < 50; tries++) {
      const n = make(r.int(0, pool - 1));
      if (!taken.has(n)) return n;
    }
    return null;
  };
  const randomRoles = (): OrganizationRole[] => (r.chance(0.7) ? [] : ORG_ROLES.filter(() => r.chance(0.4)));
  const orgsList = () => [...state.organizations.entries()];
  const allGroups = () =>
    orgsList().flatMap(([oid, org]) => [...org.groups.entries()].map(([gid, g]) => ({ oid, org, gid, g })));

  const upsertUser = (id: string, fresh: boolean): boolean => {
    const before = state.users.get(id);
    const others = [...state.users].filter(([k]) => k !== id);
    const username =
      !fresh && r.chance(0.5)
        ? before!.username
        : freeName(new Set(others.map(([, u]) => u.username)), (k) => `user-${k}`, usernamePool);
    const email =
      !fresh && r.chance(0.6)
        ? before!.email
        : freeName(new Set(others.map(([, u]) => u.email)), (k) => `mail-${k}@example.com`, usernamePool);
    if (!username || !email) return false;
    const full = fresh || !r.chance(o.partialUserUpserts);
    emit('identity.user.upserted', {
      user_id: id,
      username,
      email,
      ...(full
        ? {
            name: r.chance(0.2) ? null : `Person ${r.int(1, 999)}`,
            status: r.chance(0.1) ? ('suspended' as const) : ('active' as const),
          }
        : {}),
    });
    return true;
  };

  const snapshot = (oid: string) => {
    const org = state.organizations.get(oid)!;
    const whole: OrganizationSnapshotData = {
      organization_id: oid,
      name: org.name,
      display_name: org.displayName,
      users: [...org.members.keys()].map((uid) => {
        const u = state.users.get(uid)!;
        return { user_id: uid, username: u.username, email: u.email, name: u.name, status: u.status };
      }),
      members: [...org.members].map(([uid, roles]) => ({ user_id: uid, roles: [...roles] })),
      groups: [...org.groups].map(([gid, g]) => ({
        group_id: gid,
        name: g.name,
        display_name: g.displayName,
        members: [...g.members],
      })),
    };
    if (!r.chance(o.splitSnapshots) || whole.members.length < 3) {
      emit('identity.organization.snapshot', whole);
      return;
    }
    // Parts back to back: nothing happens between them, so each shows the same state.
    const count = r.int(2, 3);
    const snapshotId = r.uuid();
    const slice = <T>(items: T[], i: number) =>
      items.slice(Math.floor((items.length * i) / count), Math.floor((items.length * (i + 1)) / count));
    const before = cloneState(state);
    for (let i = 0; i < count; i++) {
      const members = slice(whole.members, i);
      const mine = new Set(members.map((m) => m.user_id));
      emit('identity.organization.snapshot', {
        ...whole,
        users: whole.users.filter((u) => mine.has(u.user_id)),
        members,
        groups: whole.groups.map((g) => ({ ...g, members: g.members.filter((u) => mine.has(u)) })),
        part: { snapshot_id: snapshotId, index: i + 1, count },
      });
    }
    const after = differences(flatten(before), flatten(state));
    if (after.length > 0) throw new Error(`generator: split snapshot changed the state: ${after.join('; ')}`);
  };

  const actions: Action[] = [
    {
      // New users arrive throughout the first part of the history.
      weight: 8,
      run: () => usersCreated < o.users && upsertUser(userIds[usersCreated++], true),
    },
    {
      weight: 10,
      run: () => {
        const users = liveUsers();
        return users.length > 0 && upsertUser(r.pick(users), false);
      },
    },
    {
      weight: 0.4,
      run: () => {
        const users = liveUsers();
        if (users.length < o.users / 3) return false;
        emit('identity.user.deleted', { user_id: r.pick(users) });
        return true;
      },
    },
    {
      weight: 0.3,
      run: () => {
        const [oid] = r.pick(orgsList());
        const taken = new Set(
          orgsList()
            .filter(([k]) => k !== oid)
            .map(([, v]) => v.name),
        );
        const name = freeName(taken, (k) => `org-${k}`, orgNamePool);
        if (!name) return false;
        emit('identity.organization.upserted', {
          organization_id: oid,
          name,
          display_name: r.chance(0.5) ? `Org ${r.int(1, 99)}` : null,
        });
        return true;
      },
    },
    {
      weight: 18,
      run: () => {
        // A third of the joins are rejoins soon after leaving: the orders around a removal
        // (group memberships it ended, a rejoin after it) are where reordering bites.
        const rejoin = recentlyLeft.length > 0 && r.chance(0.35) ? r.pick(recentlyLeft) : null;
        const [oid, org] = rejoin ? [rejoin[0], state.organizations.get(rejoin[0])!] : r.pick(orgsList());
        const users = liveUsers();
        if (users.length === 0) return false;
        const uid = rejoin && state.users.has(rejoin[1]) ? rejoin[1] : r.pick(users);
        const member = org.members.has(uid);
        // Existing members mostly change roles; new members mostly join.
        if (member && r.chance(0.6)) return false;
        const withoutRoles = r.chance(o.addsWithoutRoles);
        emit('identity.organization.member.added', {
          organization_id: oid,
          user_id: uid,
          ...(withoutRoles ? {} : { roles: randomRoles() }),
        });
        return true;
      },
    },
    {
      weight: 7,
      run: () => {
        const [oid, org] = r.pick(orgsList());
        // Now and then a removal of someone who is not a member: a no-op that still counts.
        const uid = r.chance(0.05)
          ? r.pick(userIds)
          : org.members.size > 0
            ? r.pick([...org.members.keys()])
            : null;
        if (!uid) return false;
        emit('identity.organization.member.removed', { organization_id: oid, user_id: uid });
        recentlyLeft.push([oid, uid]);
        if (recentlyLeft.length > 8) recentlyLeft.shift();
        return true;
      },
    },
    {
      weight: 2,
      run: () => {
        const creating = groupsCreated < o.groups && r.chance(0.7);
        const target = creating
          ? { gid: groupIds[groupsCreated], oid: r.pick(orgsList())[0] }
          : allGroups().length > 0
            ? r.pick(allGroups())
            : null;
        if (!target) return false;
        const org = state.organizations.get(target.oid)!;
        const taken = new Set([...org.groups].filter(([k]) => k !== target.gid).map(([, g]) => g.name));
        const name = freeName(taken, (k) => `Team ${k}`, groupNamePool);
        if (!name) return false;
        if (creating) groupsCreated++;
        emit('identity.group.upserted', {
          group_id: target.gid,
          organization_id: target.oid,
          name,
          display_name: r.chance(0.5) ? `Team display ${r.int(1, 99)}` : null,
        });
        return true;
      },
    },
    {
      weight: 0.15,
      run: () => {
        const groups = allGroups();
        if (groups.length < o.groups / 2) return false;
        emit('identity.group.deleted', { group_id: r.pick(groups).gid });
        return true;
      },
    },
    {
      weight: 30,
      run: () => {
        const groups = allGroups();
        if (groups.length === 0) return false;
        const { org, gid, g } = r.pick(groups);
        const candidates = [...org.members.keys()].filter((u) => !g.members.has(u));
        if (candidates.length === 0) return false;
        emit('identity.group.member.added', { group_id: gid, user_id: r.pick(candidates) });
        return true;
      },
    },
    {
      weight: 12,
      run: () => {
        const groups = allGroups();
        if (groups.length === 0) return false;
        const { gid, g } = r.pick(groups);
        const uid = r.chance(0.05) ? r.pick(userIds) : g.members.size > 0 ? r.pick([...g.members]) : null;
        if (!uid) return false;
        emit('identity.group.member.removed', { group_id: gid, user_id: uid });
        return true;
      },
    },
  ];
  const total = actions.reduce((n, a) => n + a.weight, 0);

  orgIds.forEach((oid, i) =>
    emit('identity.organization.upserted', { organization_id: oid, name: `org-${i}`, display_name: null }),
  );
  while (history.length < o.events) {
    if (r.int(1, o.snapshotEvery) === 1) {
      snapshot(r.pick(orgIds));
      continue;
    }
    let x = r.next() * total;
    const action = actions.find((a) => (x -= a.weight) < 0) ?? actions[actions.length - 1];
    action.run();
  }
  return history;
}

// ---------------------------------------------------------------------------------------------
// Delivery transforms

/**
 * Some events sent two or three times: each extra copy lands at a random later or earlier
 * position within `spread` of the original.
 */
export function withDuplicates<T>(events: readonly T[], r: Random, share = 0.1, spread = 500): T[] {
  const keyed = events.map((e, i) => ({ e, k: i }));
  for (let i = 0; i < events.length; i++) {
    if (!r.chance(share)) continue;
    const copies = r.int(1, 2);
    for (let c = 0; c < copies; c++) keyed.push({ e: events[i], k: i + (r.next() * 2 - 1) * spread });
  }
  return keyed.sort((a, b) => a.k - b.k).map((x) => x.e);
}

/** Local reordering: each event moves by up to `window` positions. */
export function reorderLocally<T>(events: readonly T[], r: Random, window = 20): T[] {
  return events
    .map((e, i) => ({ e, k: i + r.next() * window }))
    .sort((a, b) => a.k - b.k)
    .map((x) => x.e);
}

/** Consecutive batches of random sizes in [min, max]. */
export function inBatches<T>(events: readonly T[], r: Random, min = 1, max = 100): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < events.length;) {
    const n = r.int(min, max);
    out.push(events.slice(i, i + n));
    i += n;
  }
  return out;
}

/** The database's identity rows in the model's terms (rows that existed before are left out). */
export async function databaseState(
  query: <T>(sql: string) => Promise<T[]>,
  before: ReadonlySet<string>,
): Promise<FlatState> {
  const lines = async (sql: string) => (await query<{ line: string }>(sql)).map((r) => r.line).sort();
  const users = (
    await query<{ id: string; line: string }>(
      `SELECT id, id || ' ' || username || ' ' || email || ' ' || coalesce(name, 'null') || ' ' || status AS line
         FROM users`,
    )
  )
    .filter((u) => !before.has(u.id))
    .map((u) => u.line)
    .sort();
  return {
    users,
    organizations: await lines(
      `SELECT id || ' ' || name || ' ' || coalesce(display_name, 'null') AS line FROM organizations`,
    ),
    members: await lines(
      `SELECT organization_id || '/' || user_id || ' [' ||
              array_to_string(ARRAY(SELECT unnest(roles) ORDER BY 1), '+') || ']' AS line
         FROM organization_members`,
    ),
    groups: await lines(
      `SELECT id || ' ' || organization_id || ' ' || name || ' ' || coalesce(display_name, 'null') AS line
         FROM groups WHERE id <> organization_id`,
    ),
    groupMembers: await lines(`SELECT group_id || '/' || user_id AS line FROM group_members`),
  };
}
