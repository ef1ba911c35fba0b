import { Inject, Injectable } from '@nestjs/common';
import { Stores, notFound, type Actor } from '@aigov/authz';
import { constraintOf, type Group, type GroupMember, type Page } from '@aigov/db';
import { DomainError, validationFailed } from '@aigov/errors';
import type { UserRef } from './groups.dto';

export interface GroupPatch {
  name?: string;
  /** undefined keeps it, null clears it. */
  displayName?: string | null;
  add: UserRef[];
  remove: string[];
}

export interface GroupWithMembers {
  group: Group;
  memberCount: number;
  /** The first MEMBER_PREVIEW members by username. */
  members: GroupMember[];
}

const isEveryone = (g: Group): boolean => g.id === g.organizationId;

const notOrgMember = (u: UserRef) => ({
  field: `add_users[${u.index}]`,
  detail: `user ${u.id} is not a member of the organization`,
});

@Injectable()
export class GroupsService {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  async createGroup(
    actor: Actor,
    requestId: string,
    orgRef: string,
    name: string,
    displayName: string | null,
  ): Promise<Group> {
    return this.stores.transaction(requestId, async (tx) => {
      const org = await tx.organizations.getOrganization(actor, orgRef);
      return tx.groups.createGroup(actor, org, name, displayName);
    });
  }

  /** Groups of the organization the actor may read (a plain member sees Everyone and its own). */
  async listGroups(actor: Actor, orgRef: string, page: Page) {
    const org = await this.stores.organizations.getOrganization(actor, orgRef);
    return this.stores.groups.listGroups(actor, org, page);
  }

  /** The group with its member count and first members (GET and PATCH answer the same shape). */
  async getGroup(actor: Actor, id: string): Promise<GroupWithMembers> {
    const group = await this.stores.groups.getGroup(actor, id);
    return { group, ...(await this.stores.groups.getGroupMemberPreview(actor, group)) };
  }

  /**
   * Rename and change membership in one transaction (the stores record one audit entry per user
   * added or removed).
   * Users to add must be members of the organization: checked here to name each offender, and
   * enforced by the database trigger (which also covers a removal racing with this request).
   */
  async patchGroup(
    actor: Actor,
    requestId: string,
    id: string,
    patch: GroupPatch,
  ): Promise<GroupWithMembers> {
    return this.stores.transaction(requestId, async (tx) => {
      let group = await tx.groups.getGroupForUpdate(actor, id);
      if (isEveryone(group)) {
        throw DomainError.invalid(
          "The Everyone group cannot be changed: its members are the organization's members.",
          [{ field: 'group', detail: 'is the Everyone group' }],
        );
      }
      const orgMembers = await tx.groups.organizationMemberIds(
        actor,
        group,
        patch.add.map((u) => u.id),
      );
      const outsiders = patch.add.filter((u) => !orgMembers.has(u.id));
      if (outsiders.length > 0) throw validationFailed(outsiders.map(notOrgMember));

      if (patch.name !== undefined || patch.displayName !== undefined) {
        group = await tx.groups.updateGroup(actor, group, {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.displayName !== undefined ? { displayName: patch.displayName } : {}),
        });
      }
      // Each store method records one entry per user it added or removed.
      await this.addMembers(tx, actor, group, patch.add);
      await tx.groups.removeGroupMembers(actor, group, patch.remove);
      return { group, ...(await tx.groups.getGroupMemberPreview(actor, group)) };
    });
  }

  /**
   * One ordered insert. The trigger's refusal (a membership removed since the check above)
   * becomes the same 400, naming the user the database refused.
   */
  private async addMembers(tx: Stores, actor: Actor, group: Group, users: UserRef[]): Promise<string[]> {
    try {
      return await tx.groups.addGroupMembers(
        actor,
        group,
        users.map((u) => u.id),
      );
    } catch (err) {
      switch (constraintOf(err)) {
        case 'group_members_must_be_org_member':
        case 'group_members_user_id_fkey': {
          const message = String((err as Error).message);
          const refused = users.find((u) => message.includes(u.id)) ?? users[0];
          throw validationFailed([notOrgMember(refused)]);
        }
        case 'group_members_group_id_fkey':
          throw notFound('Group')();
        default:
          throw err;
      }
    }
  }

  async deleteGroup(actor: Actor, requestId: string, id: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const group = await tx.groups.getGroupForUpdate(actor, id);
      if (isEveryone(group)) throw everyoneUndeletable();
      try {
        await tx.groups.deleteGroup(actor, group);
      } catch (err) {
        if (constraintOf(err) === 'groups_everyone_undeletable') throw everyoneUndeletable();
        throw err;
      }
    });
  }
}

const everyoneUndeletable = () =>
  DomainError.invalid('The Everyone group cannot be deleted: it goes only with its organization.', [
    { field: 'group', detail: 'is the Everyone group' },
  ]);
