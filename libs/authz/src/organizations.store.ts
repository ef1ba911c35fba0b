import type {
  Counted,
  Organization,
  OrganizationMember,
  OrganizationRepository,
  OrgRole,
  Page,
  User,
} from '@aigov/db';
import { DomainError } from '@aigov/errors';
import type { Actor } from './actor';
import type { AuditTrail } from './audit-trail';
import { ROLE_TABLE, can, grantableOrgRoles } from './policy';
import { UUID, forbidden, notFound, requireAllowed, userRef } from './store-checks';

export class OrganizationStore {
  constructor(
    private readonly organizations: OrganizationRepository,
    private readonly trail: AuditTrail,
  ) {}

  /** `ref`: an id, or a name. Not found when the actor cannot see it. */
  async getOrganization(actor: Actor, ref: string): Promise<Organization> {
    const o = UUID.test(ref)
      ? await this.organizations.getOrganizationById(ref.toLowerCase())
      : await this.organizations.getOrganizationByName(ref);
    if (!o || !can(actor, 'organization.read', { organizationIds: [o.id] })) throw notFound('Organization')();
    return o;
  }

  async listOrganizations(actor: Actor, page: Page): Promise<{ organizations: Organization[] } & Counted> {
    if (actor.kind !== 'user') throw forbidden('list organizations')();
    const seesAll = ROLE_TABLE['organization.read'].site.some((r) => actor.siteRoles.has(r));
    return this.organizations.listOrganizations(seesAll ? null : [...actor.orgRoles.keys()], page);
  }

  async createOrganization(actor: Actor, name: string, displayName: string | null): Promise<Organization> {
    requireAllowed(actor, 'organization.create', {}, forbidden('create organizations'));
    const o = await this.organizations.createOrganization({ name, displayName });
    // Its Everyone group (id = organization id) comes with it: one entry for both.
    await this.trail.record(actor, {
      action: 'create',
      resourceType: 'organization',
      resourceId: o.id,
      organizationId: o.id,
      diff: { name: o.name, display_name: o.displayName, everyone_group_id: o.id },
    });
    return o;
  }

  async listMembers(
    actor: Actor,
    o: Organization,
    page: Page,
  ): Promise<{ members: OrganizationMember[] } & Counted> {
    requireAllowed(actor, 'organization.members.read', { organizationIds: [o.id] }, notFound('Organization'));
    return this.organizations.listOrganizationMembers(o.id, page);
  }

  /**
   * Idempotent add; `roles` null keeps the member's roles. Audited: `create` when the membership
   * came into being, else `write`. Roles are granted only as CONTRACT 3 allows (grantableOrgRoles):
   * the new roles, and on a change the member's current ones, must all be grantable by the actor.
   */
  async upsertMember(
    actor: Actor,
    o: Organization,
    u: User,
    roles: OrgRole[] | null,
  ): Promise<{ before: OrganizationMember | null; after: OrganizationMember }> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    const grantable = grantableOrgRoles(actor, o.id);
    if (roles !== null) {
      const beyond = roles.filter((r) => !grantable.has(r));
      if (beyond.length > 0) throw forbidden(`grant ${beyond.join(', ')}`)();
      // Locked, so the roles checked are the roles replaced (a concurrent promotion waits).
      const current = await this.organizations.lockOrganizationMemberRoles(o.id, u.id);
      const held = (current ?? []).filter((r) => !grantable.has(r));
      if (held.length > 0) throw forbidden(`change the roles of a member who holds ${held.join(', ')}`)();
    }
    const { before, after } = await this.organizations.upsertOrganizationMember(o.id, u.id, roles);
    // A membership created concurrently after the lock above found none: the row is locked now,
    // and the transaction rolls back the write.
    if (roles !== null && before?.roles.some((r) => !grantable.has(r))) {
      throw forbidden(`change the roles of a member who holds ${before.roles.join(', ')}`)();
    }
    await this.trail.record(actor, {
      action: before ? 'write' : 'create',
      resourceType: 'organization_member',
      resourceId: `${o.id}/${u.id}`,
      organizationId: o.id,
      diff: { user: userRef(u), roles: { before: before?.roles ?? null, after: after.roles } },
    });
    return { before, after };
  }

  /**
   * Removes the membership; the database removes and records the user's memberships of the
   * organization's groups and the overrides that lose their group. A member holding a role the
   * actor cannot grant cannot be removed by it.
   */
  async removeMember(actor: Actor, o: Organization, u: User): Promise<OrganizationMember> {
    requireAllowed(
      actor,
      'organization.members.manage',
      { organizationIds: [o.id] },
      forbidden('manage members here'),
    );
    const current = await this.organizations.lockOrganizationMemberRoles(o.id, u.id);
    const grantable = grantableOrgRoles(actor, o.id);
    const held = (current ?? []).filter((r) => !grantable.has(r));
    if (held.length > 0) throw forbidden(`remove a member who holds ${held.join(', ')}`)();
    const removed = await this.organizations.deleteOrganizationMember(o.id, u.id);
    if (!removed) throw new DomainError('not_found', 'User is not a member of the organization.');
    await this.trail.record(actor, {
      action: 'delete',
      resourceType: 'organization_member',
      resourceId: `${o.id}/${u.id}`,
      organizationId: o.id,
      diff: { user: userRef(u), roles: { before: removed.roles, after: null } },
    });
    return removed;
  }
}
