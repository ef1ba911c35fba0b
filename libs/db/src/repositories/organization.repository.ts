import { q, type Db, type Organization, type OrganizationMember, type OrgRole, type Page } from './types';
import { countFor, type Counted } from './paging';

const ORG_COLUMNS = `id, name, display_name AS "displayName", created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Organizations and their members with roles (migrations/). Invariants live in the database. */
export class OrganizationRepository {
  constructor(private readonly db: Db) {}

  async createOrganization(o: { name: string; displayName: string | null }): Promise<Organization> {
    const rows = await q<Organization[]>(
      this.db,
      `INSERT INTO organizations (name, display_name) VALUES ($1, $2) RETURNING ${ORG_COLUMNS}`,
      [o.name, o.displayName],
    );
    return rows[0];
  }

  async getOrganizationById(id: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(this.db, `SELECT ${ORG_COLUMNS} FROM organizations WHERE id = $1`, [
      id,
    ]);
    return rows[0] ?? null;
  }

  async getOrganizationByName(name: string): Promise<Organization | null> {
    const rows = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} FROM organizations WHERE name = $1`,
      [name],
    );
    return rows[0] ?? null;
  }

  /** `ids` null: all organizations. */
  async listOrganizations(
    ids: string[] | null,
    page: Page,
  ): Promise<{ organizations: Organization[] } & Counted> {
    const fromWhere = `FROM organizations WHERE $1::uuid[] IS NULL OR id = ANY($1::uuid[])`;
    const organizations = await q<Organization[]>(
      this.db,
      `SELECT ${ORG_COLUMNS} ${fromWhere} ORDER BY name LIMIT $2 OFFSET $3`,
      [ids, page.limit, page.offset],
    );
    return { organizations, ...(await countFor(this.db, page, organizations.length, fromWhere, [ids])) };
  }

  async getOrganizationMember(organizationId: string, userId: string): Promise<OrganizationMember | null> {
    const rows = await q<OrganizationMember[]>(
      this.db,
      `SELECT m.organization_id AS "organizationId", m.user_id AS "userId", u.username, u.name, m.roles,
              m.created_at AS "createdAt"
         FROM organization_members m JOIN users u ON u.id = m.user_id
        WHERE m.organization_id = $1 AND m.user_id = $2`,
      [organizationId, userId],
    );
    return rows[0] ?? null;
  }

  /** The member's roles, the row locked until the transaction ends; null when not a member. */
  async lockOrganizationMemberRoles(organizationId: string, userId: string): Promise<OrgRole[] | null> {
    const rows = await q<{ roles: OrgRole[] }[]>(
      this.db,
      'SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE',
      [organizationId, userId],
    );
    return rows[0]?.roles ?? null;
  }

  /**
   * Adds the membership, or updates its roles when `roles` is given; a missing `roles` keeps
   * existing ones. Returns the member and the state before (null when it was created).
   */
  async upsertOrganizationMember(
    organizationId: string,
    userId: string,
    roles: OrgRole[] | null,
  ): Promise<{ before: OrganizationMember | null; after: OrganizationMember }> {
    // Insert first: exactly one of two racing adds creates the row, the other sees a conflict
    // and takes the update path below with the row locked, so create/write is never doubled.
    const inserted = await q<{ user_id: string }[]>(
      this.db,
      `INSERT INTO organization_members (organization_id, user_id, roles) VALUES ($1, $2, coalesce($3::text[], '{}'))
       ON CONFLICT (organization_id, user_id) DO NOTHING RETURNING user_id`,
      [organizationId, userId, roles],
    );
    let before: { roles: OrgRole[] } | null = null;
    if (inserted.length === 0) {
      const locked = await q<{ roles: OrgRole[] }[]>(
        this.db,
        `SELECT roles FROM organization_members WHERE organization_id = $1 AND user_id = $2 FOR UPDATE`,
        [organizationId, userId],
      );
      before = locked[0] ?? null;
      if (roles !== null) {
        await q(
          this.db,
          `UPDATE organization_members SET roles = $3::text[],
                  updated_at = CASE WHEN roles IS DISTINCT FROM $3::text[] THEN now() ELSE updated_at END
            WHERE organization_id = $1 AND user_id = $2`,
          [organizationId, userId, roles],
        );
      }
    }
    const after = await this.getOrganizationMember(organizationId, userId);
    if (!after) throw new Error('organization member vanished inside its own transaction');
    return { before: before ? { ...after, roles: before.roles } : null, after };
  }

  async deleteOrganizationMember(organizationId: string, userId: string): Promise<OrganizationMember | null> {
    const existing = await this.getOrganizationMember(organizationId, userId);
    if (!existing) return null;
    const rows = await q<{ user_id: string }[]>(
      this.db,
      'DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 RETURNING user_id',
      [organizationId, userId],
    );
    return rows.length > 0 ? existing : null;
  }

  async listOrganizationMembers(
    organizationId: string,
    page: Page,
  ): Promise<{ members: OrganizationMember[] } & Counted> {
    const members = await q<OrganizationMember[]>(
      this.db,
      `SELECT m.organization_id AS "organizationId", m.user_id AS "userId", u.username, u.name, m.roles,
              m.created_at AS "createdAt"
         FROM organization_members m JOIN users u ON u.id = m.user_id
        WHERE m.organization_id = $1 ORDER BY u.username LIMIT $2 OFFSET $3`,
      [organizationId, page.limit, page.offset],
    );
    const fromWhere = 'FROM organization_members WHERE organization_id = $1';
    return { members, ...(await countFor(this.db, page, members.length, fromWhere, [organizationId])) };
  }
}
