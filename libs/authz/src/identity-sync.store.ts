import type {
  BeginState,
  Group,
  GroupMemberEvent,
  GroupMemberEventResult,
  IdentityEntity,
  IdentitySyncRepository,
  MemberContext,
  OrgRole,
  Organization,
  SyncedUser,
  User,
} from '@aigov/db';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import { forbidden, groupRef, requireAllowed, userRef } from './store-checks';

/** What an upsert did: nothing when the row already said the same. */
export type SyncChange = 'created' | 'changed' | 'unchanged';

/** The fields that differ, as `{field: {before, after}}`; empty when none does. */
function changes(before: Record<string, unknown>, after: Record<string, unknown>): Record<string, unknown> {
  const diff: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(after)) {
    const was = before[k];
    if (JSON.stringify(was) !== JSON.stringify(v)) diff[k] = { before: was ?? null, after: v ?? null };
  }
  return diff;
}

const sameRoles = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

type GroupRef = Pick<Group, 'id' | 'name' | 'organizationId'>;
type UserRef = { id: string; username: string };

/**
 * The identity system's changes, applied by the membership listener (docs/identity-events.md):
 * users, organizations, groups and memberships by the ids the identity system gave them, plus
 * the bookkeeping that makes events idempotent and ordered. Only `system:membership-listener`
 * may call it (`identity.sync`). Every change is audited here, as that actor; a call that
 * changes nothing writes nothing. Removals go through the membership tables, whose triggers end
 * the overrides that lose their membership and record them. The listener applies thousands of
 * events a second, so the methods take what their audit entries need from the caller's reads
 * and avoid a round trip wherever one statement can say it.
 */
export class IdentitySyncStore {
  constructor(
    private readonly sync: IdentitySyncRepository,
    private readonly trail: AuditTrail,
  ) {}

  private check(actor: Actor): void {
    requireAllowed(actor, 'identity.sync', {}, forbidden('apply identity events'));
  }

  // Bookkeeping of events

  /** Prepares the transaction for a batch of events (IdentitySyncRepository.beginBatch). */
  async beginBatch(actor: Actor): Promise<void> {
    this.check(actor);
    await this.sync.beginBatch();
  }

  /** False when the event was applied before. */
  async markEventApplied(actor: Actor, eventId: string, type: string, time: Date): Promise<boolean> {
    this.check(actor);
    return this.sync.markEventApplied(eventId, type, time);
  }

  /** Records the event and claims its keys (IdentitySyncRepository.beginEvent). */
  async beginEvent(
    actor: Actor,
    e: Parameters<IdentitySyncRepository['beginEvent']>[0],
  ): ReturnType<IdentitySyncRepository['beginEvent']> {
    this.check(actor);
    return this.sync.beginEvent(e);
  }

  /** Claims the keys for an event of `time` (IdentitySyncRepository.claimVersions). */
  async claimVersions(
    actor: Actor,
    entity: IdentityEntity,
    keys: readonly string[],
    time: Date,
    eventId: string,
  ): Promise<Set<string>> {
    this.check(actor);
    return this.sync.claimVersions(entity, keys, time, eventId);
  }

  /** Records the removal time of the memberships that go with a removal. */
  async tombstoneDependents(
    actor: Actor,
    of: Parameters<IdentitySyncRepository['tombstoneDependents']>[0],
    time: Date,
    eventId: string,
  ): Promise<{ found: number; claimed: string[] }> {
    this.check(actor);
    return this.sync.tombstoneDependents(of, time, eventId);
  }

  async versionOf(actor: Actor, entity: IdentityEntity, key: string): Promise<Date | null> {
    this.check(actor);
    return this.sync.versionOf(entity, key);
  }

  /** `beginEvent` gated on the organization and the user existing (IdentitySyncRepository). */
  async beginOrganizationMemberAdded(
    actor: Actor,
    e: Parameters<IdentitySyncRepository['beginOrganizationMemberAdded']>[0],
  ): Promise<{ state: BeginState; context: MemberContext }> {
    this.check(actor);
    return this.sync.beginOrganizationMemberAdded(e);
  }

  /**
   * Applies group membership events in one statement (IdentitySyncRepository's
   * applyGroupMemberEvents: distinct memberships, distinct ids) and audits each membership it
   * adds or removes under its event's request id: `storeFor(eventId)` is this store opened for
   * that request id (Stores.withRequestId), whose trail records the entry. The entries go in the
   * order of the events.
   */
  async applyGroupMemberEvents(
    actor: Actor,
    events: readonly GroupMemberEvent[],
    storeFor: (eventId: string) => IdentitySyncStore,
  ): Promise<GroupMemberEventResult[]> {
    this.check(actor);
    const results = await this.sync.applyGroupMemberEvents(events);
    for (const [i, r] of results.entries()) {
      if (!r.written) continue;
      const e = events[i];
      const x = r.context;
      const g = { id: e.groupId, name: x.groupName ?? '', organizationId: x.organizationId ?? '' };
      await storeFor(e.eventId).recordGroupMember(
        actor,
        g,
        { id: e.userId, username: x.username ?? '' },
        e.added ? 'create' : 'delete',
      );
    }
    return results;
  }

  // Users

  async upsertUser(actor: Actor, u: SyncedUser): Promise<SyncChange> {
    this.check(actor);
    const before = await this.sync.lockUser(u.id);
    if (!before) {
      const created = await this.sync.insertUser(u);
      await this.trail.record(actor, {
        action: 'create',
        resourceType: 'user',
        resourceId: created.id,
        organizationId: null,
        diff: userFields(created),
      });
      return 'created';
    }
    const wanted = {
      username: u.username,
      email: u.email,
      name: u.name === undefined ? before.name : u.name,
      status: u.status ?? before.status,
    };
    const diff = changes(userFields(before), wanted);
    if (Object.keys(diff).length === 0) return 'unchanged';
    await this.sync.updateUser(u);
    await this.trail.record(actor, {
      action: 'write',
      resourceType: 'user',
      resourceId: u.id,
      organizationId: null,
      diff: { user: userRef(before), ...diff },
    });
    return 'changed';
  }

  /** Deletes the user if it exists; the database removes and records what goes with it. */
  async deleteUser(actor: Actor, id: string): Promise<boolean> {
    this.check(actor);
    const u = await this.sync.lockUser(id);
    if (!u || !(await this.sync.deleteUser(id))) return false;
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'user',
      resourceId: id,
      organizationId: null,
      diff: { ...userFields(u), roles: u.roles },
    });
    return true;
  }

  /** user id -> username, for those of the ids that are users. */
  async usernames(actor: Actor, ids: readonly string[]): Promise<Map<string, string>> {
    this.check(actor);
    return this.sync.usernames(ids);
  }

  /** The listed users that are missing or differ (so a snapshot touches only those). */
  async usersDifferentFrom(actor: Actor, users: readonly SyncedUser[]): Promise<string[]> {
    this.check(actor);
    return this.sync.usersDifferentFrom(users);
  }

  // Organizations

  async getOrganization(actor: Actor, id: string): Promise<Organization | null> {
    this.check(actor);
    return this.sync.lockOrganization(id);
  }

  async upsertOrganization(
    actor: Actor,
    o: { id: string; name: string; displayName?: string | null },
  ): Promise<SyncChange> {
    this.check(actor);
    const before = await this.sync.lockOrganization(o.id);
    if (!before) {
      const created = await this.sync.insertOrganization({ ...o, displayName: o.displayName ?? null });
      await this.trail.record(actor, {
        action: 'create',
        resourceType: 'organization',
        resourceId: created.id,
        organizationId: created.id,
        diff: { name: created.name, display_name: created.displayName, everyone_group_id: created.id },
      });
      return 'created';
    }
    const diff = changes(
      { name: before.name, display_name: before.displayName },
      { name: o.name, display_name: o.displayName === undefined ? before.displayName : o.displayName },
    );
    if (Object.keys(diff).length === 0) return 'unchanged';
    await this.sync.updateOrganization(o);
    await this.trail.record(actor, {
      action: 'write',
      resourceType: 'organization',
      resourceId: o.id,
      organizationId: o.id,
      diff,
    });
    return 'changed';
  }

  /** Deletes the organization if it exists; the database removes and records its dependents. */
  async deleteOrganization(actor: Actor, id: string): Promise<boolean> {
    this.check(actor);
    const o = await this.sync.lockOrganization(id);
    if (!o || !(await this.sync.deleteOrganization(id))) return false;
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'organization',
      resourceId: id,
      organizationId: id,
      diff: { name: o.name, display_name: o.displayName },
    });
    return true;
  }

  // Organization members

  /** Adds the member, or sets its roles; `roles` null keeps the roles of an existing member. */
  async upsertOrganizationMember(
    actor: Actor,
    organizationId: string,
    user: UserRef,
    roles: OrgRole[] | null,
  ): Promise<SyncChange> {
    this.check(actor);
    const before = await this.sync.lockOrganizationMember(organizationId, user.id);
    if (before && (roles === null || sameRoles(before, roles))) return 'unchanged';
    if (before) await this.sync.setOrganizationMemberRoles(organizationId, user.id, roles ?? before);
    else await this.sync.insertOrganizationMember(organizationId, user.id, roles ?? []);
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'organization_member',
      resourceId: `${organizationId}/${user.id}`,
      organizationId,
      diff: { user: userRef(user), roles: { before, after: roles ?? [] } },
    });
    return before ? 'changed' : 'created';
  }

  /**
   * Locks the users' memberships of the organization until the transaction ends: FOR UPDATE
   * (`exclusive`, a removal: it waits for every group membership being added in the
   * organization for one of them and keeps new ones out until it commits) or FOR KEY SHARE (an
   * add of group memberships, which then reads the removals after any it waited for).
   */
  async lockOrganizationMembers(
    actor: Actor,
    organizationId: string,
    userIds: readonly string[],
    exclusive: boolean,
  ): Promise<void> {
    this.check(actor);
    await this.sync.lockOrganizationMembers(organizationId, userIds, exclusive);
  }

  /** Removes the membership if it exists; the database ends the group memberships and overrides it carried. */
  async removeOrganizationMember(actor: Actor, organizationId: string, userId: string): Promise<boolean> {
    this.check(actor);
    const removed = await this.sync.deleteOrganizationMember(organizationId, userId);
    if (!removed) return false;
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'organization_member',
      resourceId: `${organizationId}/${userId}`,
      organizationId,
      diff: {
        user: { id: userId, username: removed.username },
        roles: { before: removed.roles, after: null },
      },
    });
    return true;
  }

  async organizationMembers(actor: Actor, organizationId: string): Promise<Map<string, OrgRole[]>> {
    this.check(actor);
    return this.sync.organizationMembers(organizationId);
  }

  // Groups

  async getGroup(actor: Actor, id: string): Promise<Group | null> {
    this.check(actor);
    return this.sync.lockGroup(id);
  }

  /** Creates or renames the group; it never moves between organizations (the caller checks). */
  async upsertGroup(
    actor: Actor,
    g: { id: string; organizationId: string; name: string; displayName?: string | null },
  ): Promise<SyncChange> {
    this.check(actor);
    const before = await this.sync.lockGroup(g.id);
    if (!before) {
      const created = await this.sync.insertGroup({ ...g, displayName: g.displayName ?? null });
      await this.trail.record(actor, {
        action: 'create',
        resourceType: 'group',
        resourceId: created.id,
        organizationId: created.organizationId,
        diff: { name: created.name, display_name: created.displayName },
      });
      return 'created';
    }
    const diff = changes(
      { name: before.name, display_name: before.displayName },
      { name: g.name, display_name: g.displayName === undefined ? before.displayName : g.displayName },
    );
    if (Object.keys(diff).length === 0) return 'unchanged';
    await this.sync.updateGroup(g);
    await this.trail.record(actor, {
      action: 'write',
      resourceType: 'group',
      resourceId: g.id,
      organizationId: g.organizationId,
      diff,
    });
    return 'changed';
  }

  /** Deletes the group if it exists; the database removes and records its budget, members and overrides. */
  async deleteGroup(actor: Actor, id: string): Promise<boolean> {
    this.check(actor);
    const g = await this.sync.lockGroup(id);
    if (!g || !(await this.sync.deleteGroup(id))) return false;
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'group',
      resourceId: id,
      organizationId: g.organizationId,
      diff: { name: g.name, display_name: g.displayName },
    });
    return true;
  }

  async groupsOfOrganization(actor: Actor, organizationId: string): Promise<Group[]> {
    this.check(actor);
    return this.sync.groupsOfOrganization(organizationId);
  }

  // Group members

  async addGroupMember(actor: Actor, g: GroupRef, user: UserRef): Promise<boolean> {
    this.check(actor);
    if (!(await this.sync.addGroupMember(g.id, user.id))) return false;
    await this.recordGroupMember(actor, g, user, 'create');
    return true;
  }

  async removeGroupMember(actor: Actor, groupId: string, userId: string): Promise<boolean> {
    this.check(actor);
    const removed = await this.sync.removeGroupMember(groupId, userId);
    if (!removed) return false;
    await this.recordGroupMember(actor, removed.group, { id: userId, username: removed.username }, 'delete');
    return true;
  }

  private async recordGroupMember(actor: Actor, g: GroupRef, user: UserRef, action: 'create' | 'delete') {
    await this.trail.record(actor, {
      action,
      resourceType: 'group_member',
      resourceId: `${g.id}/${user.id}`,
      organizationId: g.organizationId,
      diff: { group: groupRef(g), user: userRef(user) },
    });
  }

  /** Explicit group memberships (`group/user`) in the organization, optionally of one user. */
  async groupMembershipsInOrganization(
    actor: Actor,
    organizationId: string,
    userId: string | null = null,
  ): Promise<string[]> {
    this.check(actor);
    return this.sync.groupMembershipsInOrganization(organizationId, userId);
  }

  // Snapshot parts

  async storeSnapshotPart(
    actor: Actor,
    p: Parameters<IdentitySyncRepository['storeSnapshotPart']>[0],
  ): Promise<boolean> {
    this.check(actor);
    return this.sync.storeSnapshotPart(p);
  }

  async snapshotParts(actor: Actor, snapshotId: string) {
    this.check(actor);
    return this.sync.snapshotParts(snapshotId);
  }

  async deleteSnapshotParts(actor: Actor, snapshotId: string): Promise<void> {
    this.check(actor);
    await this.sync.deleteSnapshotParts(snapshotId);
  }

  async deleteAbandonedSnapshotParts(actor: Actor, olderThanHours: number): Promise<number> {
    this.check(actor);
    return this.sync.deleteAbandonedSnapshotParts(olderThanHours);
  }
}

function userFields(u: User) {
  return { username: u.username, email: u.email, name: u.name, status: u.status };
}
