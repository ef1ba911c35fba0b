import { Inject, Injectable } from '@nestjs/common';
import { Stores, type Actor } from '@aigov/authz';
import type { OrganizationMember, OrgRole, Page } from '@aigov/db';

@Injectable()
export class OrganizationsService {
  constructor(@Inject(Stores) private readonly stores: Stores) {}

  async listMembers(actor: Actor, ref: string, page: Page) {
    const org = await this.stores.organizations.getOrganization(actor, ref);
    return this.stores.organizations.listMembers(actor, org, page);
  }

  /** Idempotent add; `roles` null keeps the member's roles. The store audits and checks grants. */
  async putMember(
    actor: Actor,
    requestId: string,
    orgRef: string,
    userRef: string,
    roles: OrgRole[] | null,
  ): Promise<OrganizationMember> {
    return this.stores.transaction(requestId, async (tx) => {
      const org = await tx.organizations.getOrganization(actor, orgRef);
      const user = await tx.users.findUserForMembership(actor, org, userRef);
      return (await tx.organizations.upsertMember(actor, org, user, roles)).after;
    });
  }

  /** The database removes the user's memberships of the organization's groups in the same transaction. */
  async removeMember(actor: Actor, requestId: string, orgRef: string, userRef: string): Promise<void> {
    await this.stores.transaction(requestId, async (tx) => {
      const org = await tx.organizations.getOrganization(actor, orgRef);
      const user = await tx.users.findUserForMembership(actor, org, userRef);
      await tx.organizations.removeMember(actor, org, user);
    });
  }
}
