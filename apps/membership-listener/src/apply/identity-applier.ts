import { Inject, Injectable } from '@nestjs/common';
import { Stores } from '@aigov/authz';
import {
  type IdentityDataBySubject,
  type IdentityEvent,
  type OrganizationSnapshotData,
} from '@aigov/contracts';
import { constraintOf, isDatabaseUnavailableError, isRetryableTransactionError } from '@aigov/db';
import type { ApplyOutcome, IdentityEventApplier } from './applier';
import {
  A,
  APPLIED,
  STALE,
  claim,
  endedSince,
  membershipEndedKey,
  reference,
  type EventContext,
} from './context';
import { applySnapshot, mergeSnapshotParts } from './snapshot';

const everyone = (what: string): ApplyOutcome => ({
  kind: 'dead',
  reason: 'targets_everyone_group',
  errors: [`${what}: the Everyone group is managed with its organization, not by group events`],
});

/** Split snapshots whose last part never came are dropped after this long. */
const ABANDONED_SNAPSHOT_HOURS = 24;

type Handler<S extends keyof IdentityDataBySubject> = (
  c: EventContext,
  d: IdentityDataBySubject[S],
) => Promise<ApplyOutcome>;

/**
 * The effect of each identity event (docs/identity-events.md). Each handler claims the time of
 * what it changes first (an older event is stale and changes nothing) and records the time of
 * what a removal takes away with it, so that late events about those stay ignored.
 */
const HANDLERS: { [S in keyof IdentityDataBySubject]: Handler<S> } = {
  'identity.user.upserted': async (c, d) => {
    if (!(await claim(c, 'user', d.user_id))) return STALE;
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
    if (!(await claim(c, 'user', d.user_id))) return STALE;
    const orgs = await c.store.organizationsOfUser(A, d.user_id);
    await c.store.claimVersions(
      A,
      'organization_member',
      orgs.map((o) => `${o}/${d.user_id}`),
      c.time,
      c.id,
    );
    const groups = await c.store.groupMembershipsOf(A, { userId: d.user_id });
    await c.store.claimVersions(A, 'group_member', groups, c.time, c.id);
    await c.store.deleteUser(A, d.user_id);
    return APPLIED;
  },

  'identity.organization.upserted': async (c, d) => {
    if (!(await claim(c, 'organization', d.organization_id))) return STALE;
    await c.store.upsertOrganization(A, { id: d.organization_id, name: d.name, displayName: d.display_name });
    return APPLIED;
  },

  'identity.organization.deleted': async (c, d) => {
    const o = d.organization_id;
    if (!(await claim(c, 'organization', o))) return STALE;
    const members = [...(await c.store.organizationMembers(A, o)).keys()].map((u) => `${o}/${u}`);
    await c.store.claimVersions(A, 'organization_member', members, c.time, c.id);
    const groups = (await c.store.groupsOfOrganization(A, o)).map((g) => g.id);
    await c.store.claimVersions(A, 'group', groups, c.time, c.id);
    await c.store.claimVersions(
      A,
      'group_member',
      await c.store.groupMembershipsInOrganization(A, o),
      c.time,
      c.id,
    );
    await c.store.deleteOrganization(A, o);
    return APPLIED;
  },

  'identity.organization.member.added': async (c, d) => {
    const key = `${d.organization_id}/${d.user_id}`;
    if (!(await claim(c, 'organization_member', key))) return STALE;
    const org = await c.store.getOrganization(A, d.organization_id);
    const orgRef = await reference(c, 'organization', d.organization_id, org !== null);
    if (orgRef !== 'ok') return orgRef;
    const users = await c.store.existingUserIds(A, [d.user_id]);
    const userRef = await reference(c, 'user', d.user_id, users.has(d.user_id));
    if (userRef !== 'ok') return userRef;
    await c.store.upsertOrganizationMember(A, d.organization_id, d.user_id, d.roles ?? null);
    return APPLIED;
  },

  'identity.organization.member.removed': async (c, d) => {
    const [o, u] = [d.organization_id, d.user_id];
    // The removal ends the user's group memberships of the organization as of its time: those
    // applied already (their keys take its time), and those whose `added` is still to come (they
    // find its time under the ended key), even when a rejoin after it was applied first.
    const pairs = await c.store.groupMembershipsInOrganization(A, o, u);
    const ended = await c.store.claimVersions(A, 'group_member', pairs, c.time, c.id);
    const noted = await c.store.claimVersions(
      A,
      'organization_member',
      [membershipEndedKey(o, u)],
      c.time,
      c.id,
    );
    if (await claim(c, 'organization_member', `${o}/${u}`)) {
      // A group membership newer than the removal proves a rejoin between them that has not
      // arrived yet: removing the membership now would take that group membership with it.
      if (ended.size < pairs.length) return { kind: 'retry', reason: `a rejoin of ${o}/${u} comes first` };
      await c.store.removeOrganizationMember(A, o, u);
      return APPLIED;
    }
    // A rejoin after the removal is applied already: the membership stays, older group ones go.
    for (const key of ended) {
      const group = await c.store.getGroup(A, key.split('/')[0]);
      if (group) await c.store.removeGroupMember(A, group, u);
    }
    return ended.size > 0 || noted.size > 0 ? APPLIED : STALE;
  },

  'identity.group.upserted': async (c, d) => {
    if (d.group_id === d.organization_id || (await c.store.isOrganization(A, d.group_id))) {
      return everyone('data.group_id');
    }
    if (!(await claim(c, 'group', d.group_id))) return STALE;
    const org = await c.store.getOrganization(A, d.organization_id);
    const orgRef = await reference(c, 'organization', d.organization_id, org !== null);
    if (orgRef !== 'ok') return orgRef;
    const existing = await c.store.getGroup(A, d.group_id);
    if (existing && existing.organizationId !== d.organization_id) {
      return {
        kind: 'dead',
        reason: 'group_moved',
        errors: [
          `data.organization_id: group ${d.group_id} belongs to organization ${existing.organizationId}`,
        ],
      };
    }
    await c.store.upsertGroup(A, {
      id: d.group_id,
      organizationId: d.organization_id,
      name: d.name,
      displayName: d.display_name,
    });
    return APPLIED;
  },

  'identity.group.deleted': async (c, d) => {
    if (await c.store.isOrganization(A, d.group_id)) return everyone('data.group_id');
    if (!(await claim(c, 'group', d.group_id))) return STALE;
    const members = await c.store.groupMembershipsOf(A, { groupId: d.group_id });
    await c.store.claimVersions(A, 'group_member', members, c.time, c.id);
    await c.store.deleteGroup(A, d.group_id);
    return APPLIED;
  },

  'identity.group.member.added': async (c, d) => {
    if (await c.store.isOrganization(A, d.group_id)) return everyone('data.group_id');
    if (!(await claim(c, 'group_member', `${d.group_id}/${d.user_id}`))) return STALE;
    const group = await c.store.getGroup(A, d.group_id);
    const groupRef = await reference(c, 'group', d.group_id, group !== null);
    if (groupRef !== 'ok' || !group) return groupRef === 'ok' ? STALE : groupRef;
    if (await endedSince(c, group.organizationId, d.user_id, c.time)) return STALE;
    const users = await c.store.existingUserIds(A, [d.user_id]);
    const userRef = await reference(c, 'user', d.user_id, users.has(d.user_id));
    if (userRef !== 'ok') return userRef;
    // A group member must be a member of the group's organization (the database insists).
    const orgs = await c.store.organizationsOfUser(A, d.user_id);
    const memberKey = `${group.organizationId}/${d.user_id}`;
    const memberRef = await reference(
      c,
      'organization_member',
      memberKey,
      orgs.includes(group.organizationId),
    );
    if (memberRef !== 'ok') return memberRef;
    await c.store.addGroupMember(A, group, d.user_id);
    return APPLIED;
  },

  'identity.group.member.removed': async (c, d) => {
    if (await c.store.isOrganization(A, d.group_id)) return everyone('data.group_id');
    if (!(await claim(c, 'group_member', `${d.group_id}/${d.user_id}`))) return STALE;
    const group = await c.store.getGroup(A, d.group_id);
    if (group) await c.store.removeGroupMember(A, group, d.user_id);
    return APPLIED;
  },

  'identity.organization.snapshot': async (c, d) => {
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
    if (outcome.kind === 'applied' || outcome.kind === 'stale')
      await c.store.deleteSnapshotParts(A, d.part.snapshot_id);
    // A stale whole still consumed its parts: the part that completed it is applied.
    return outcome.kind === 'stale' ? APPLIED : outcome;
  },
};

/**
 * Applies identity events through the stores as `system:membership-listener`: a batch in one
 * transaction, each event in a savepoint under its own id (its audit entries carry the event id
 * as request id). The event id is recorded with the change, so a redelivery is a duplicate.
 */
@Injectable()
export class IdentityApplier implements IdentityEventApplier {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  applyBatch(events: readonly IdentityEvent[]): Promise<ApplyOutcome[]> {
    return this.stores.transaction(null, async (tx) => {
      const outcomes: ApplyOutcome[] = [];
      for (const e of events) outcomes.push(await this.applyOne(tx, e));
      return outcomes;
    });
  }

  private async applyOne(tx: Stores, e: IdentityEvent): Promise<ApplyOutcome> {
    const s = await tx.forRequest(e.id);
    const c: EventContext = { store: s.identity, id: e.id, time: e.time };
    try {
      return await tx.savepoint(async () => {
        if (!(await c.store.markEventApplied(A, e.id, e.type, e.time))) {
          return { keep: false, value: { kind: 'duplicate' } as ApplyOutcome };
        }
        const handler = HANDLERS[e.type] as Handler<typeof e.type>;
        const outcome = await handler(c, e.data);
        // Only an applied event leaves anything behind: a stale one is recognised again by its
        // time, a retried one must find nothing of itself when it comes back.
        return { keep: outcome.kind === 'applied', value: outcome };
      });
    } catch (err) {
      // The whole batch is tried again (deadlock) or kept for later (database gone).
      if (isRetryableTransactionError(err) || isDatabaseUnavailableError(err)) throw err;
      return { kind: 'retry', reason: describeFailure(err) };
    }
  }
}

/** A conflict with the rows as they are (a taken username...): it may clear, so retried. */
function describeFailure(err: unknown): string {
  const constraint = constraintOf(err);
  if (constraint) return `conflicts with existing data (${constraint})`;
  return `could not be applied: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}`;
}
