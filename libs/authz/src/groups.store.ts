import {
  q,
  type Counted,
  type Db,
  type Group,
  type GroupMember,
  type GroupRepository,
  type Organization,
  type Page,
} from '@aigov/db';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import { can } from './policy';
import { forbidden, groupRef, groupSubject, notFound, requireAllowed } from './store-checks';

/**
 * Changes of one group (name, members) serialize on its row: two concurrent PATCHes end as if
 * one ran after the other, and their membership rows are never locked in crossing order.
 */
async function lockForChange(groups: GroupRepository, g: Group): Promise<void> {
  if (!(await groups.lockGroup(g.id))) throw notFound('Group')();
}

/** `GET /groups/{group}` shows at most this many members; the members route pages them all. */
export const MEMBER_PREVIEW = 1000;

export class GroupStore {
  constructor(
    private readonly groups: GroupRepository,
    private readonly db: Db,
    private readonly trail: AuditTrail,
  ) {}

  /** The group, when the actor may read it; else not found. */
  async getGroup(actor: Actor, id: string): Promise<Group> {
    const g = await this.groups.getGroup(id);
    if (!g || !can(actor, 'group.read', groupSubject(g))) throw notFound('Group')();
    return g;
  }

  /** The group for a change: not found when unreadable, forbidden when read-only. */
  async getGroupForUpdate(actor: Actor, id: string): Promise<Group> {
    const g = await this.getGroup(actor, id);
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    return g;
  }

  /** How many members the group has and the first MEMBER_PREVIEW of them by username. */
  async getGroupMemberPreview(
    actor: Actor,
    group: Group,
  ): Promise<{ memberCount: number; members: GroupMember[] }> {
    requireAllowed(actor, 'group.read', groupSubject(group), notFound('Group'));
    return this.groups.getGroupMemberPreview(group, MEMBER_PREVIEW);
  }

  /** A page of the members of a group the actor may read (else not found). */
  async listGroupMembers(
    actor: Actor,
    groupId: string,
    page: Page,
  ): Promise<{ members: GroupMember[] } & Counted> {
    const group = await this.getGroup(actor, groupId);
    return this.groups.listGroupMembers(group, page);
  }

  /**
   * Groups of an organization the actor can see. Readers of every group of the organization (the
   * rule without the member clause) see all; others see Everyone and the groups they are in. The
   * filter runs in the database, so paging and count see only visible groups.
   */
  async listGroups(actor: Actor, org: Organization, page: Page): Promise<{ groups: Group[] } & Counted> {
    requireAllowed(actor, 'organization.read', { organizationIds: [org.id] }, notFound('Organization'));
    if (actor.kind !== 'user') throw notFound('Organization')(); // no system actor reads organizations
    const seesAll = can(actor, 'group.read', { organizationIds: [org.id] });
    const everyone = can(actor, 'group.read', { organizationIds: [org.id], groupId: org.id });
    return this.groups.listGroups(org.id, seesAll ? null : { userId: actor.id, everyone }, page);
  }

  async createGroup(
    actor: Actor,
    org: Organization,
    name: string,
    displayName: string | null,
  ): Promise<Group> {
    requireAllowed(
      actor,
      'organization.groups.create',
      { organizationIds: [org.id] },
      forbidden('create groups here'),
    );
    const g = await this.groups.createGroup({ organizationId: org.id, name, displayName });
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'group',
      resourceId: g.id,
      organizationId: g.organizationId,
      diff: { name: g.name, display_name: g.displayName },
    });
    return g;
  }

  async updateGroup(
    actor: Actor,
    g: Group,
    patch: { name?: string; displayName?: string | null },
  ): Promise<Group> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.groups, g);
    const before = await this.groups.getGroup(g.id);
    const updated = before && (await this.groups.updateGroup(g.id, patch));
    if (!before || !updated) throw notFound('Group')();
    // A rename is recorded like the identity system's renames: the fields that changed, if any.
    const diff: Record<string, unknown> = {};
    if (before.name !== updated.name) diff.name = { before: before.name, after: updated.name };
    if (before.displayName !== updated.displayName) {
      diff.display_name = { before: before.displayName, after: updated.displayName };
    }
    if (Object.keys(diff).length > 0) {
      await this.trail.record(actor, {
        action: 'write',
        resourceType: 'group',
        resourceId: g.id,
        organizationId: g.organizationId,
        diff,
      });
    }
    return updated;
  }

  /** Adds the users (one ordered insert); one entry per user added, none for a member already. */
  async addGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.groups, g);
    const added = await this.groups.addGroupMembers(g.id, userIds);
    await this.recordMembers(actor, g, 'create', added, await this.groups.listGroupMembersAmong(g, added));
    return added;
  }

  /** Removes the users; one entry per user removed, none for a non-member. */
  async removeGroupMembers(actor: Actor, g: Group, userIds: string[]): Promise<string[]> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    await lockForChange(this.groups, g);
    // Named before they go: the entries show who was removed.
    const members = await this.groups.listGroupMembersAmong(g, userIds);
    const removed = await this.groups.removeGroupMembers(g.id, userIds);
    await this.recordMembers(actor, g, 'delete', removed, members);
    return removed;
  }

  private async recordMembers(
    actor: Actor,
    g: Group,
    action: 'create' | 'delete',
    userIds: string[],
    named: GroupMember[],
  ): Promise<void> {
    const usernames = new Map(named.map((m) => [m.userId, m.username]));
    for (const userId of userIds) {
      await this.trail.record(actor, {
        action,
        resourceType: 'group_member',
        resourceId: `${g.id}/${userId}`,
        organizationId: g.organizationId,
        diff: { group: groupRef(g), user: { id: userId, username: usernames.get(userId) ?? null } },
      });
    }
  }

  async deleteGroup(actor: Actor, g: Group): Promise<void> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('delete this group'));
    // The database records what goes with the group (its budget, memberships and overrides).
    if (!(await this.groups.deleteGroup(g.id))) throw notFound('Group')();
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'group',
      resourceId: g.id,
      organizationId: g.organizationId,
      diff: { name: g.name, display_name: g.displayName },
    });
  }

  /** Which of these users are members of the organization (for PATCH validation). */
  async organizationMemberIds(actor: Actor, g: Group, userIds: string[]): Promise<Set<string>> {
    requireAllowed(actor, 'group.update', groupSubject(g), forbidden('change this group'));
    if (userIds.length === 0) return new Set();
    const rows = await q<{ user_id: string }[]>(
      this.db,
      'SELECT user_id FROM organization_members WHERE organization_id = $1 AND user_id = ANY($2::uuid[])',
      [g.organizationId, userIds],
    );
    return new Set(rows.map((r) => r.user_id));
  }
}
