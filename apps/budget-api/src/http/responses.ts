import type {
  ApiKey,
  Group,
  GroupBudget,
  GroupMember,
  Organization,
  OrganizationMember,
  PriceChangeRow,
  PriceRow,
  User,
} from '@aigov/db';

/** Wire shapes (snake_case, RFC 3339 UTC, money as integer JSON numbers). Entities never go out. */

const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());
const num = (v: bigint | null): number | null => (v === null ? null : Number(v));

export const userResponse = (u: User) => ({
  id: u.id,
  username: u.username,
  email: u.email,
  name: u.name,
  status: u.status,
  roles: u.roles,
  created_at: iso(u.createdAt),
  updated_at: iso(u.updatedAt),
});

export const organizationResponse = (o: Organization) => ({
  id: o.id,
  name: o.name,
  display_name: o.displayName,
  created_at: iso(o.createdAt),
  updated_at: iso(o.updatedAt),
});

export const organizationMemberResponse = (m: OrganizationMember) => ({
  organization_id: m.organizationId,
  user_id: m.userId,
  username: m.username,
  name: m.name,
  roles: m.roles,
  created_at: iso(m.createdAt),
});

const groupMemberResponse = (m: GroupMember) => ({ user_id: m.userId, username: m.username, name: m.name });

/** With `preview`: the single-group shape (member_count and the first members); without: the list item. */
export const groupResponse = (g: Group, preview?: { memberCount: number; members: GroupMember[] }) => ({
  id: g.id,
  organization_id: g.organizationId,
  name: g.name,
  display_name: g.displayName,
  ...(preview
    ? { member_count: preview.memberCount, members: preview.members.map(groupMemberResponse) }
    : {}),
  created_at: iso(g.createdAt),
  updated_at: iso(g.updatedAt),
});

export const groupMembersPageResponse = (members: GroupMember[]) =>
  members.map((m) => ({ ...groupMemberResponse(m), created_at: iso(m.createdAt) }));

export const groupBudgetResponse = (b: GroupBudget) => ({
  group_id: b.groupId,
  spend_limit_micros: Number(b.spendLimitMicros),
  created_at: iso(b.createdAt),
  updated_at: iso(b.updatedAt),
});

export const apiKeyResponse = (k: ApiKey) => ({
  id: k.id,
  name: k.name,
  expires_at: iso(k.expiresAt),
  last_used_at: iso(k.lastUsedAt),
  created_at: iso(k.createdAt),
});

export const priceResponse = (p: PriceRow) => ({
  provider: p.provider,
  model: p.model,
  source: p.source,
  input_price: num(p.inputPrice),
  output_price: num(p.outputPrice),
  cache_read_price: num(p.cacheReadPrice),
  cache_write_price: num(p.cacheWritePrice),
  tiers: p.tiers,
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});

/** A price history entry: `before`/`after` as stored (integer prices, tiers), null for none. */
export const priceChangeResponse = (c: PriceChangeRow) => ({
  source: c.source,
  changed_at: iso(c.changedAt),
  actor: c.actor,
  before: c.before,
  after: c.after,
});
