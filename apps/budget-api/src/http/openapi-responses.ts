/** Response bodies of the API for the OpenAPI document: the wire shapes of http/responses.ts. */

type Schema = Record<string, unknown>;

const str = { type: 'string' };
const nstr = { type: 'string', nullable: true };
const time = { type: 'string', format: 'date-time' };
const uuid = { type: 'string', format: 'uuid' };
const micros = { type: 'integer', minimum: 0, description: 'micro-USD (1 USD = 1,000,000)' };
const price = {
  type: 'integer',
  minimum: 0,
  nullable: true,
  description: 'micro-USD per 1,000,000 tokens; null = unknown',
};
const obj = (properties: Schema): Schema => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
/** A check reply; reserve replies add their own fields (reason and those only sometimes present). */
const budgetState = (extra: Schema = {}): Schema => {
  const optional = new Set(['reason', 'reservation_id', 'expires_at', 'duplicate']);
  const properties: Schema = {
    allowed: { type: 'boolean' },
    reason: {
      type: 'string',
      enum: ['limit_reached', 'insufficient_budget', 'unpriced_model', 'user_suspended', 'unknown_user'],
      description: 'present when not allowed',
    },
    limit_source: { type: 'string', enum: ['user_override', 'group'], nullable: true },
    spend_limit_micros: { ...micros, nullable: true },
    spent_micros: micros,
    held_micros: micros,
    remaining_micros: {
      ...micros,
      nullable: true,
      description: 'max(0, limit - spent - held); null: no limit',
    },
    effective_group_id: { ...uuid, nullable: true },
    period_start: time,
    period_end: { ...time, description: 'exclusive' },
    ...extra,
  };
  return { type: 'object', properties, required: Object.keys(properties).filter((k) => !optional.has(k)) };
};
/** A list body: count_capped appears only when the count stopped at 10,000 (there are more). */
const list = (key: string, item: string): Schema => ({
  type: 'object',
  properties: {
    [key]: { type: 'array', items: ref(item) },
    count: { type: 'integer', description: 'exact up to 10,000; then 10,000 with count_capped' },
    count_capped: { type: 'boolean', enum: [true], description: 'present when there are more than count' },
  },
  required: [key, 'count'],
});

export const RESPONSE_SCHEMAS: Record<string, Schema> = {
  User: obj({
    id: uuid,
    username: str,
    email: str,
    name: nstr,
    status: { type: 'string', enum: ['active', 'suspended'] },
    roles: {
      type: 'array',
      items: { type: 'string', enum: ['owner', 'user-admin', 'auditor', 'ai-gateway'] },
    },
    created_at: time,
    updated_at: time,
  }),
  Organization: obj({ id: uuid, name: str, display_name: nstr, created_at: time, updated_at: time }),
  OrganizationMember: obj({
    user_id: uuid,
    username: str,
    name: nstr,
    roles: { type: 'array', items: str },
    created_at: time,
  }),
  GroupMember: obj({ user_id: uuid, username: str, name: nstr }),
  GroupMembership: obj({ user_id: uuid, username: str, name: nstr, created_at: time }),
  Group: obj({
    id: uuid,
    organization_id: uuid,
    name: str,
    display_name: nstr,
    member_count: { type: 'integer', minimum: 0 },
    members: {
      type: 'array',
      items: ref('GroupMember'),
      description: 'the first 1,000 by username; GET /api/v2/groups/{group}/members pages them all',
    },
    created_at: time,
    updated_at: time,
  }),
  GroupSummary: obj({
    id: uuid,
    organization_id: uuid,
    name: str,
    display_name: nstr,
    created_at: time,
    updated_at: time,
  }),
  GroupBudget: obj({ group_id: uuid, spend_limit_micros: micros, created_at: time, updated_at: time }),
  UserOverride: obj({
    user_id: uuid,
    group_id: uuid,
    spend_limit_micros: micros,
    created_at: time,
    updated_at: time,
  }),
  ApiKey: obj({
    id: str,
    name: nstr,
    expires_at: { ...time, nullable: true },
    last_used_at: { ...time, nullable: true },
    created_at: time,
  }),
  NewApiKey: obj({
    id: str,
    key: { type: 'string', description: '<id>-<secret>; shown only once' },
    name: nstr,
    expires_at: { ...time, nullable: true },
  }),
  PriceTier: obj({
    min_context_tokens: { type: 'integer', minimum: 0 },
    input_price: price,
    output_price: price,
    cache_read_price: price,
    cache_write_price: price,
  }),
  Price: obj({
    provider: str,
    model: str,
    source: { type: 'string', enum: ['default', 'custom'] },
    input_price: price,
    output_price: price,
    cache_read_price: price,
    cache_write_price: price,
    tiers: { type: 'array', items: ref('PriceTier'), nullable: true },
    created_at: time,
    updated_at: time,
  }),
  PriceSyncResult: obj({
    source: { type: 'string', enum: ['embedded', 'upstream'] },
    total: { type: 'integer' },
    inserted: { type: 'integer' },
    updated: { type: 'integer' },
    unchanged: { type: 'integer' },
    duration_ms: { type: 'integer' },
  }),
  AuditLog: obj({
    id: uuid,
    time,
    actor_id: { ...uuid, nullable: true },
    actor: str,
    action: { type: 'string', enum: ['create', 'write', 'delete'] },
    resource_type: str,
    resource_id: str,
    organization_id: { ...uuid, nullable: true },
    diff: { type: 'object', description: 'before/after; money as {"usd": "$500.00", "micros": 500000000}' },
    request_id: nstr,
    reason: nstr,
  }),
  FirstUser: obj({
    user: ref('User'),
    token: { type: 'string', description: '<id>-<secret>; shown only once' },
  }),
  BudgetCheckReply: budgetState(),
  BudgetReserveReply: budgetState({
    reservation_id: { ...uuid, description: 'present when allowed' },
    amount_micros: { ...micros, description: 'the amount reserved (or asked for, when denied)' },
    expires_at: { ...time, description: 'present when allowed' },
    duplicate: { type: 'boolean', enum: [true], description: 'a replay of a request id granted before' },
  }),
  BudgetReleaseReply: obj({ released: { type: 'boolean', description: 'false: no longer held' } }),
  UsageReply: obj({
    request_id: str,
    cost_micros: { ...micros, nullable: true, description: 'null: unpriced (no price for the model)' },
    price_source: { type: 'string', enum: ['default', 'custom'], nullable: true },
    effective_group_id: { ...uuid, nullable: true },
    duplicate: { type: 'boolean', description: 'a replay of a known request_id: the first result' },
    reservation_settled: { type: 'boolean' },
  }),
  UserSpend: obj({
    user_id: uuid,
    effective_group_id: { ...uuid, nullable: true },
    limit_source: { type: 'string', enum: ['user_override', 'group'], nullable: true },
    spend_limit_micros: { ...micros, nullable: true },
    spent_micros: micros,
    held_micros: micros,
    remaining_micros: { ...micros, nullable: true },
    period_start: time,
    period_end: { ...time, description: 'exclusive' },
  }),
  BudgetCandidate: obj({
    rank: { type: 'integer', minimum: 1, description: '1 wins' },
    kind: { type: 'string', enum: ['user_override', 'group'] },
    group_id: { ...uuid, nullable: true, description: 'null: in an organization the caller may not see' },
    organization_id: { ...uuid, nullable: true },
    spend_limit_micros: micros,
    member_since: { ...time, nullable: true, description: "when the user joined the group's organization" },
  }),
  BudgetExplanation: obj({
    user_id: uuid,
    user_status: { type: 'string', enum: ['active', 'suspended'] },
    rule: { type: 'string', description: 'the resolution rule' },
    decision: { type: 'string', description: 'why the winner won' },
    candidates: { type: 'array', items: ref('BudgetCandidate') },
    winner: { allOf: [ref('BudgetCandidate')], nullable: true, description: 'null: no limit' },
    limit_source: { type: 'string', enum: ['user_override', 'group'], nullable: true },
    spend_limit_micros: { ...micros, nullable: true },
    effective_group_id: { ...uuid, nullable: true },
    spent_micros: micros,
    held_micros: micros,
    remaining_micros: { ...micros, nullable: true },
    period_start: time,
    period_end: time,
  }),
  GroupSpend: obj({
    group_id: uuid,
    spend_limit_micros: {
      ...micros,
      nullable: true,
      description: "the group's budget per member; null: none",
    },
    members: { type: 'integer', minimum: 0 },
    spent_micros: { ...micros, description: 'attributed to this group in the current period' },
    period_start: time,
    period_end: time,
  }),
  UserList: list('users', 'User'),
  OrganizationList: list('organizations', 'Organization'),
  OrganizationMemberList: list('members', 'OrganizationMember'),
  GroupList: list('groups', 'GroupSummary'),
  GroupMemberList: list('members', 'GroupMembership'),
  ApiKeyList: list('keys', 'ApiKey'),
  PriceList: list('prices', 'Price'),
  AuditLogList: list('audit_logs', 'AuditLog'),
};

/** operationId -> schema of its success body (routes answering 204 have none). */
export const SUCCESS_BODIES: Record<string, string> = {
  UsersController_first: 'FirstUser',
  UsersController_list: 'UserList',
  UsersController_create: 'User',
  UsersController_get: 'User',
  UsersController_setRoles: 'User',
  UsersController_setStatus: 'User',
  UsersController_createKey: 'NewApiKey',
  UsersController_listKeys: 'ApiKeyList',
  OrganizationsController_create: 'Organization',
  OrganizationsController_list: 'OrganizationList',
  OrganizationsController_get: 'Organization',
  OrganizationsController_listMembers: 'OrganizationMemberList',
  OrganizationsController_putMember: 'OrganizationMember',
  OrganizationGroupsController_create: 'Group',
  OrganizationGroupsController_list: 'GroupList',
  GroupsController_get: 'Group',
  GroupsController_listMembers: 'GroupMemberList',
  GroupsController_patch: 'Group',
  GroupBudgetsController_get: 'GroupBudget',
  GroupBudgetsController_put: 'GroupBudget',
  OverridesController_get: 'UserOverride',
  OverridesController_put: 'UserOverride',
  PricesController_list: 'PriceList',
  PricesController_sync: 'PriceSyncResult',
  PricesController_get: 'Price',
  PricesController_put: 'Price',
  AuditController_list: 'AuditLogList',
  EnforcementController_check: 'BudgetCheckReply',
  EnforcementController_reserve: 'BudgetReserveReply',
  EnforcementController_release: 'BudgetReleaseReply',
  EnforcementController_usage: 'UsageReply',
  SpendController_userSpend: 'UserSpend',
  SpendController_explain: 'BudgetExplanation',
  SpendController_groupSpend: 'GroupSpend',
};
