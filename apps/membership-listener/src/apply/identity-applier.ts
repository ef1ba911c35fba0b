import { Inject, Injectable } from '@nestjs/common';
import { type DeferredAudit, Stores } from '@aigov/authz';
import {
  type IdentityDataBySubject,
  type IdentityEvent,
  type OrganizationSnapshotData,
} from '@aigov/contracts';
import {
  constraintOf,
  isDatabaseUnavailableError,
  isRetryableTransactionError,
  type GroupMemberEvent,
  type GroupMemberEventResult,
} from '@aigov/db';
import type { ApplyOutcome, IdentityEventApplier } from './applier';
import {
  A,
  APPLIED,
  DUPLICATE,
  STALE,
  begin,
  everyone,
  membershipEndedKey,
  missing,
  newer,
  start,
  type EventContext,
} from './context';
import { applySnapshot, mergeSnapshotParts } from './snapshot';

/** Split snapshots whose last part never came are dropped after this long. */
const ABANDONED_SNAPSHOT_HOURS = 24;

type Handler<S extends keyof IdentityDataBySubject> = (
  c: EventContext,
  d: IdentityDataBySubject[S],
) => Promise<ApplyOutcome>;

type GroupMemberData = IdentityDataBySubject['identity.group.member.added'];
const GROUP_MEMBER_TYPES = new Set<string>(['identity.group.member.added', 'identity.group.member.removed']);

const groupMemberEvent = (c: EventContext, d: GroupMemberData, added: boolean): GroupMemberEvent => ({
  eventId: c.id,
  type: c.type,
  time: c.time,
  key: `${d.group_id}/${d.user_id}`,
  groupId: d.group_id,
  userId: d.user_id,
  added,
});

/**
 * The outcome of a group membership event from what applyGroupMemberEvents did with it: an add
 * the gate refused says why from the context it read (nothing was written).
 */
function groupMemberOutcome(
  c: EventContext,
  d: GroupMemberData,
  added: boolean,
  { state, context: x }: GroupMemberEventResult,
): ApplyOutcome {
  if (state === 'blocked') {
    if (x.everyone || !added) return everyone('data.group_id');
    if (x.applied) return DUPLICATE;
    if (newer(c, x.memberVersion) || newer(c, x.membershipEnded)) return STALE;
    if (x.organizationId === null) return missing(c, 'group', d.group_id, x.groupVersion);
    if (x.username === null) return missing(c, 'user', d.user_id, x.userVersion);
    // A group member must be a member of the group's organization (the database insists).
    const memberKey = `${x.organizationId}/${d.user_id}`;
    return missing(c, 'organization member', memberKey, x.organizationMemberVersion);
  }
  return state === 'fresh' ? APPLIED : state === 'duplicate' ? DUPLICATE : STALE;
}

/**
 * How many events from `from` on form a run for applyGroupMemberEvents: group membership events
 * about distinct memberships with distinct ids (0 when the event there is of another type). A
 * membership or an id that comes again starts the next run, which then sees what this one wrote.
 */
function groupMemberRun(events: readonly IdentityEvent[], from: number): number {
  const keys = new Set<string>();
  const ids = new Set<string>();
  let i = from;
  for (; i < events.length; i++) {
    const e = events[i];
    if (!GROUP_MEMBER_TYPES.has(e.type)) break;
    const d = e.data as GroupMemberData;
    const key = `${d.group_id}/${d.user_id}`.toLowerCase();
    if (keys.has(key) || ids.has(e.id)) break;
    keys.add(key);
    ids.add(e.id);
  }
  return i - from;
}

/**
 * The effect of each identity event (docs/identity-events.md). A handler reads what it needs
 * first (one statement), answers retry or dead-letter from that alone, then records the event and
 * claims its key (`begin`: an older event is stale and changes nothing), then writes. Adding a
 * membership reads and begins in one statement, gated on what it needs. Removals
 * also record the time of what they take away with them, so late events about those stay
 * ignored. Two to four statements per event: the listener's throughput is their round trips,
 * which is why group membership events (most of the traffic) go in runs of a batch, two
 * statements per run (IdentityApplier.applyRun).
 */
const HANDLERS: { [S in keyof IdentityDataBySubject]: Handler<S> } = {
  'identity.user.upserted': async (c, d) => {
    const done = await begin(c, 'user', d.user_id);
    if (done) return done;
    await c.store.upsertUser(A, {
      id: d.user_id,
      username: d.username,
      email: d.email,
      name: d.name,
      status: d.status,
    });
    return APPLIED;
  },

  'identity.user.deleted': async (c, d) => {
    const done = await begin(c, 'user', d.user_id);
    if (done) return done;
    await c.store.tombstoneDependents(A, { userId: d.user_id }, c.time, c.id);
    await c.store.deleteUser(A, d.user_id);
    return APPLIED;
  },

  'identity.organization.upserted': async (c, d) => {
    const done = await begin(c, 'organization', d.organization_id);
    if (done) return done;
    await c.store.upsertOrganization(A, { id: d.organization_id, name: d.name, displayName: d.display_name });
    return APPLIED;
  },

  'identity.organization.deleted': async (c, d) => {
    const done = await begin(c, 'organization', d.organization_id);
    if (done) return done;
    await c.store.tombstoneDependents(A, { organizationId: d.organization_id }, c.time, c.id);
    await c.store.deleteOrganization(A, d.organization_id);
    return APPLIED;
  },

  'identity.organization.member.added': async (c, d) => {
    const key = `${d.organization_id}/${d.user_id}`;
    const { state, context: x } = await c.store.beginOrganizationMemberAdded(A, {
      ...start(c, 'organization_member', key),
      organizationId: d.organization_id,
      userId: d.user_id,
    });
    if (state === 'blocked') {
      if (x.applied) return DUPLICATE;
      if (newer(c, x.memberVersion)) return STALE;
      if (!x.organizationExists) return missing(c, 'organization', d.organization_id, x.organizationVersion);
      return missing(c, 'user', d.user_id, x.userVersion);
    }
    if (state !== 'fresh') return state === 'duplicate' ? DUPLICATE : STALE;
    await c.store.upsertOrganizationMember(
      A,
      d.organization_id,
      { id: d.user_id, username: x.username ?? '' },
      d.roles ?? null,
    );
    return APPLIED;
  },

  'identity.organization.member.removed': async (c, d) => {
    const [o, u] = [d.organization_id, d.user_id];
    if (!(await c.store.markEventApplied(A, c.id, c.type, c.time))) return DUPLICATE;
    // First the membership row, FOR UPDATE: a group membership being added in another
    // transaction holds it FOR KEY SHARE from its first statement, so this waits for that add
    // and its row is found below; an add that comes after waits for this one and then finds the
    // ended key set below (IdentitySyncRepository.applyGroupMemberEvents).
    await c.store.lockOrganizationMembers(A, o, [u], true);
    // The removal ends the user's group memberships of the organization as of its time: those
    // applied already (their keys take its time), and those whose `added` is still to come (they
    // find its time under the ended key), even when a rejoin after it was applied first.
    const of = { organizationId: o, userId: u };
    let groups = await c.store.tombstoneDependents(A, of, c.time, c.id);
    const ended = new Set(groups.claimed);
    const noted = await c.store.claimVersions(
      A,
      'organization_member',
      [membershipEndedKey(o, u)],
      c.time,
      c.id,
    );
    if ((await c.store.claimVersions(A, 'organization_member', [`${o}/${u}`], c.time, c.id)).size > 0) {
      if (ended.size < groups.found) {
        // A key not claimed may have waited for another instance's newer removal of that group
        // membership: the row it found is gone then, and a removal proves no rejoin. Looked at
        // again (a new statement sees that commit), only memberships still there count.
        groups = await c.store.tombstoneDependents(A, of, c.time, c.id);
        for (const key of groups.claimed) ended.add(key);
      }
      if (groups.claimed.length === groups.found) {
        await c.store.removeOrganizationMember(A, o, u);
        return APPLIED;
      }
      // A group membership newer than the removal proves a rejoin between them, still on its
      // way: the organization membership and the newer group memberships stay (as they will
      // after the rejoin), the older group memberships go.
    }
    // A rejoin after the removal (applied, or proven by a newer group membership): the
    // membership stays, the older group memberships go.
    for (const key of ended) await c.store.removeGroupMember(A, key.split('/')[0], u);
    return ended.size > 0 || noted.size > 0 ? APPLIED : STALE;
  },

  'identity.group.upserted': async (c, d) => {
    if (d.group_id === d.organization_id) return everyone('data.group_id');
    const org = await c.store.getOrganization(A, d.organization_id);
    const existing = await c.store.getGroup(A, d.group_id);
    if (!org) {
      const removedAt = await c.store.versionOf(A, 'organization', d.organization_id);
      // Not known yet, unless the group itself was changed later (then this one is stale anyway).
      const groupAt = await c.store.versionOf(A, 'group', d.group_id);
      return newer(c, groupAt) ? STALE : missing(c, 'organization', d.organization_id, removedAt);
    }
    if (existing && existing.organizationId !== d.organization_id) {
      return {
        kind: 'dead',
        reason: 'group_moved',
        errors: [
          `data.organization_id: group ${d.group_id} belongs to organization ${existing.organizationId}`,
        ],
      };
    }
    const done = await begin(c, 'group', d.group_id, d.group_id);
    if (done) return done;
    await c.store.upsertGroup(A, {
      id: d.group_id,
      organizationId: d.organization_id,
      name: d.name,
      displayName: d.display_name,
    });
    return APPLIED;
  },

  'identity.group.deleted': async (c, d) => {
    const done = await begin(c, 'group', d.group_id, d.group_id);
    if (done) return done;
    await c.store.tombstoneDependents(A, { groupId: d.group_id }, c.time, c.id);
    await c.store.deleteGroup(A, d.group_id);
    return APPLIED;
  },

  // One at a time only in a batch's retry with savepoints; otherwise in runs (applyRun).
  'identity.group.member.added': async (c, d) => {
    const [r] = await c.store.applyGroupMemberEvents(A, [groupMemberEvent(c, d, true)], () => c.store);
    return groupMemberOutcome(c, d, true, r);
  },

  'identity.group.member.removed': async (c, d) => {
    const [r] = await c.store.applyGroupMemberEvents(A, [groupMemberEvent(c, d, false)], () => c.store);
    return groupMemberOutcome(c, d, false, r);
  },

  'identity.organization.snapshot': async (c, d) => {
    if (!(await c.store.markEventApplied(A, c.id, c.type, c.time))) return DUPLICATE;
    if (!d.part) return applySnapshot(c, d);
    await c.store.deleteAbandonedSnapshotParts(A, ABANDONED_SNAPSHOT_HOURS);
    await c.store.storeSnapshotPart(A, {
      snapshotId: d.part.snapshot_id,
      index: d.part.index,
      count: d.part.count,
      organizationId: d.organization_id,
      eventId: c.id,
      time: c.time,
      data: d,
    });
    const parts = await c.store.snapshotParts(A, d.part.snapshot_id);
    if (parts.length < d.part.count) return APPLIED; // kept until the last part arrives
    const merged = mergeSnapshotParts(parts.map((p) => ({ ...p, data: p.data as OrganizationSnapshotData })));
    if ('errors' in merged) return { kind: 'dead', reason: 'invalid_snapshot_parts', errors: merged.errors };
    const outcome = await applySnapshot({ ...c, time: merged.time }, merged.snapshot);
    if (outcome.kind === 'applied' || outcome.kind === 'stale') {
      await c.store.deleteSnapshotParts(A, d.part.snapshot_id);
    }
    // A stale whole still consumed its parts: the part that completed it is applied.
    return outcome.kind === 'stale' ? APPLIED : outcome;
  },
};

/**
 * Events that decide as they write (and may then need to undo what they wrote): always in a
 * savepoint of their own. The others check first and write after.
 */
const GUARDED = new Set<string>(['identity.organization.snapshot', 'identity.organization.member.removed']);

/** The store writes of a batch failed in a way only savepoints can sort out (see applyBatch). */
class NeedsSavepoints extends Error {}

/**
 * Applies identity events through the stores as `system:membership-listener`: a batch in one
 * transaction, each event under its own id (its audit entries, and those its cascades write,
 * carry the event id as request id). The event id is recorded with the change, so a redelivery
 * is a duplicate.
 *
 * The batch first runs without savepoints: handlers answer retry and dead-letter before they
 * write, so a clean run needs none. If a statement fails (a name taken, a row changed by another
 * instance between read and write), the transaction is lost: the batch is run again with a
 * savepoint per event, where the failing event alone is rolled back and retried later. Snapshots
 * always run in a savepoint (they check as they go).
 *
 * Consecutive group membership events about distinct memberships, with distinct ids, are a run:
 * applied together in two statements (gate, record and claim; then the writes) with the outcomes
 * and audit entries they would have one by one. A membership or an id that comes again starts a
 * new run, so events about one membership still apply in batch order, each seeing the one before.
 */
@Injectable()
export class IdentityApplier implements IdentityEventApplier {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  async applyBatch(events: readonly IdentityEvent[]): Promise<ApplyOutcome[]> {
    try {
      return await this.run(events, false);
    } catch (err) {
      if (!(err instanceof NeedsSavepoints)) throw err;
      return this.run(events, true);
    }
  }

  private run(events: readonly IdentityEvent[], savepoints: boolean): Promise<ApplyOutcome[]> {
    return this.stores.transaction(null, async (tx) => {
      await tx.identity.beginBatch(A);
      const audit = tx.deferredAudit();
      const outcomes: ApplyOutcome[] = [];
      for (let i = 0; i < events.length;) {
        const run = savepoints ? 0 : groupMemberRun(events, i);
        if (run > 0) {
          outcomes.push(...(await this.applyRun(tx, audit, events.slice(i, i + run))));
          i += run;
          continue;
        }
        const e = events[i++];
        const guarded = savepoints || GUARDED.has(e.type);
        outcomes.push(guarded ? await this.inSavepoint(tx, audit, e) : await this.direct(tx, audit, e));
      }
      await audit.flush();
      return outcomes;
    });
  }

  /**
   * Group membership events in a run (groupMemberRun): one statement for all of them instead of
   * one or two each; the same outcomes and audit entries as one by one. Without savepoints: a
   * failure there runs the batch again, one event at a time.
   */
  private async applyRun(
    tx: Stores,
    audit: DeferredAudit,
    events: readonly IdentityEvent[],
  ): Promise<ApplyOutcome[]> {
    const contexts = events.map((e): EventContext => ({
      store: tx.identity,
      id: e.id,
      type: e.type,
      time: e.time,
    }));
    const added = events.map((e) => e.type === 'identity.group.member.added');
    const data = events.map((e) => e.data as GroupMemberData);
    let results: GroupMemberEventResult[];
    try {
      results = await tx.identity.applyGroupMemberEvents(
        A,
        events.map((_, i) => groupMemberEvent(contexts[i], data[i], added[i])),
        (id) => tx.withRequestId(id, audit).identity,
      );
    } catch (err) {
      if (isRetryableTransactionError(err) || isDatabaseUnavailableError(err)) throw err;
      throw new NeedsSavepoints();
    }
    return results.map((r, i) => groupMemberOutcome(contexts[i], data[i], added[i], r));
  }

  private async direct(tx: Stores, audit: DeferredAudit, e: IdentityEvent): Promise<ApplyOutcome> {
    try {
      return await handle(tx, audit, e);
    } catch (err) {
      if (isRetryableTransactionError(err) || isDatabaseUnavailableError(err)) throw err;
      throw new NeedsSavepoints();
    }
  }

  private async inSavepoint(tx: Stores, audit: DeferredAudit, e: IdentityEvent): Promise<ApplyOutcome> {
    const mark = audit.mark();
    try {
      return await tx.savepoint(async () => {
        const outcome = await handle(tx, audit, e);
        // Only an applied (or stale) event leaves anything behind; a retried one must find
        // nothing of itself when it comes back.
        const keep = outcome.kind === 'applied' || outcome.kind === 'stale';
        if (!keep) audit.rollbackTo(mark);
        return { keep, value: outcome };
      });
    } catch (err) {
      audit.rollbackTo(mark);
      // The whole batch is tried again (deadlock) or kept for later (database gone).
      if (isRetryableTransactionError(err) || isDatabaseUnavailableError(err)) throw err;
      return { kind: 'retry', reason: describeFailure(err) };
    }
  }
}

async function handle(tx: Stores, audit: DeferredAudit, e: IdentityEvent): Promise<ApplyOutcome> {
  // Most events hand their id to the database in their begin statement; these do it here.
  if (GUARDED.has(e.type)) await tx.forRequest(e.id);
  const s = tx.withRequestId(e.id, audit);
  const c: EventContext = { store: s.identity, id: e.id, type: e.type, time: e.time };
  const handler = HANDLERS[e.type] as Handler<typeof e.type>;
  return handler(c, e.data);
}

/** A conflict with the rows as they are (a taken username...): it may clear, so retried. */
function describeFailure(err: unknown): string {
  const constraint = constraintOf(err);
  if (constraint) return `conflicts with existing data (${constraint})`;
  return `could not be applied: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}`;
}
