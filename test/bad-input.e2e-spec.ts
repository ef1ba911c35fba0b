import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Malformed bodies, parameters and query strings across the routes (docs/api.md): each is
// a 400 naming the offending field in `validations`, with the error body of section 2 and a
// request id equal to the X-Request-Id header; never a 500. The caller is an owner, so that
// authorization passes and validation is what is tested.

interface ErrorBody {
  message: string;
  detail?: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

/** Placeholders in paths and bodies, replaced by the ids of the world built in beforeAll. */
interface Ids {
  ':ORG': string;
  ':GROUP': string;
  ':MEMBER': string;
  ':OUTSIDER': string;
}

interface Case {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** Serialized as JSON (placeholders replaced); ignored when `raw` is given. */
  body?: unknown;
  /** Sent as is with Content-Type application/json. */
  raw?: string;
  /** The fields `validations` must name (in any order, each once). */
  fields: string[];
  /** Other field sets that are as right (e.g. the whole body instead of the field holding it). */
  alt?: string[][];
}

const MAX_SPEND = 1_000_000_000_000;
const MISSING_UUID = '00000000-0000-4000-8000-000000000000';
const BUDGET = '/api/v2/groups/:GROUP/ai/budget';
const OVERRIDE = '/api/v2/users/:MEMBER/ai/budget';
const USERS = '/api/v2/users';
const KEYS = '/api/v2/users/me/keys';
const ROLES = '/api/v2/users/:MEMBER/roles';
const ORGS = '/api/v2/organizations';
const MEMBER = '/api/v2/organizations/:ORG/members/:MEMBER';
const GROUPS = '/api/v2/organizations/:ORG/groups';
const GROUP = '/api/v2/groups/:GROUP';
const PRICE = '/api/v2/ai/model-prices/openai/bad-input-model';
const PRICES = '/api/v2/ai/model-prices';
const SYNC = '/api/v2/ai/model-prices/sync';
const AUDIT = '/api/v2/audit-logs';

const PRICE_OK = {
  input_price: 1_000_000,
  output_price: 2_000_000,
  cache_read_price: null,
  cache_write_price: 0,
};
const TIER_OK = {
  min_context_tokens: 200_000,
  input_price: 2_000_000,
  output_price: null,
  cache_read_price: null,
  cache_write_price: null,
};
const USER_OK = { username: 'new-user', email: 'new-user@example.com' };
/** A value nested `n` levels deep (about 2n bytes): more than the validation can recurse through. */
const deepArray = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

const CASES: Record<string, Case> = {
  // group budget PUT (docs/api.md: strict numbers)
  'budget: unknown field': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: 1, limit: 1 },
    fields: ['limit'],
  },
  'budget: string for an integer': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: '100' },
    fields: ['spend_limit_micros'],
  },
  'budget: boolean': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: true },
    fields: ['spend_limit_micros'],
  },
  'budget: null': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: null },
    fields: ['spend_limit_micros'],
  },
  'budget: array': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: [1] },
    fields: ['spend_limit_micros'],
  },
  'budget: object': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: { micros: 1 } },
    fields: ['spend_limit_micros'],
  },
  'budget: fraction 1.5': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: 1.5 },
    fields: ['spend_limit_micros'],
  },
  'budget: negative': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: -1 },
    fields: ['spend_limit_micros'],
  },
  'budget: 1e30': {
    method: 'PUT',
    path: BUDGET,
    raw: '{"spend_limit_micros": 1e30}',
    fields: ['spend_limit_micros'],
  },
  'budget: one above the maximum': {
    method: 'PUT',
    path: BUDGET,
    body: { spend_limit_micros: MAX_SPEND + 1 },
    fields: ['spend_limit_micros'],
  },
  'budget: missing field': { method: 'PUT', path: BUDGET, body: {}, fields: ['spend_limit_micros'] },
  'budget: malformed JSON': { method: 'PUT', path: BUDGET, raw: '{"spend_limit_micros": ', fields: ['body'] },
  'budget: trailing garbage after JSON': {
    method: 'PUT',
    path: BUDGET,
    raw: '{"spend_limit_micros": 1} x',
    fields: ['body'],
  },
  'budget: empty body with application/json': { method: 'PUT', path: BUDGET, raw: '', fields: ['body'] },
  'budget: JSON array body': {
    method: 'PUT',
    path: BUDGET,
    raw: '[{"spend_limit_micros": 1}]',
    fields: ['body'],
  },
  'budget: JSON null body': { method: 'PUT', path: BUDGET, raw: 'null', fields: ['body'] },
  'budget: JSON number body': { method: 'PUT', path: BUDGET, raw: '100', fields: ['body'] },
  'budget: JSON string body': { method: 'PUT', path: BUDGET, raw: '"100"', fields: ['body'] },
  'budget: array nested 10,000 deep (20 KB)': {
    method: 'PUT',
    path: BUDGET,
    raw: `{"spend_limit_micros": ${deepArray(10_000)}}`,
    fields: ['spend_limit_micros'],
    alt: [['body']],
  },
  'budget: unknown field holding an object nested 10,000 deep': {
    method: 'PUT',
    path: BUDGET,
    raw: `{"spend_limit_micros": 1, "x": ${deepObject(10_000)}}`,
    fields: ['x'],
    alt: [['body']],
  },
  'budget: bad uuid in the path': {
    method: 'PUT',
    path: '/api/v2/groups/not-a-uuid/ai/budget',
    body: { spend_limit_micros: 1 },
    fields: ['group'],
  },
  'budget: uuid with a non-hex digit in the path': {
    method: 'GET',
    path: '/api/v2/groups/0000000g-0000-4000-8000-000000000000/ai/budget',
    fields: ['group'],
  },

  // user budget override PUT (docs/api.md)
  'override: bad uuid for group_id': {
    method: 'PUT',
    path: OVERRIDE,
    body: { group_id: 'not-a-uuid', spend_limit_micros: 1 },
    fields: ['group_id'],
  },
  'override: null group_id and a string limit': {
    method: 'PUT',
    path: OVERRIDE,
    body: { group_id: null, spend_limit_micros: '1' },
    fields: ['group_id', 'spend_limit_micros'],
  },
  'override: negative limit': {
    method: 'PUT',
    path: OVERRIDE,
    body: { group_id: ':GROUP', spend_limit_micros: -5 },
    fields: ['spend_limit_micros'],
  },
  'override: limit 1e30': {
    method: 'PUT',
    path: OVERRIDE,
    raw: '{"group_id": ":GROUP", "spend_limit_micros": 1e30}',
    fields: ['spend_limit_micros'],
  },
  'override: unknown field': {
    method: 'PUT',
    path: OVERRIDE,
    body: { group_id: ':GROUP', spend_limit_micros: 1, user_id: ':MEMBER' },
    fields: ['user_id'],
  },
  'override: JSON array body': { method: 'PUT', path: OVERRIDE, raw: '[]', fields: ['body'] },

  // POST /users (docs/api.md: username and email rules)
  'users: uppercase username': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: 'Alice' },
    fields: ['username'],
  },
  'users: username "me"': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: 'me' },
    fields: ['username'],
  },
  'users: username with a space': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: 'new user' },
    fields: ['username'],
  },
  'users: username of 65 characters': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: 'a'.repeat(65) },
    fields: ['username'],
  },
  'users: empty username': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: '' },
    fields: ['username'],
  },
  'users: number for username': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, username: 42 },
    fields: ['username'],
  },
  'users: bad email': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, email: 'not-an-email' },
    fields: ['email'],
  },
  'users: email of 255 characters': {
    method: 'POST',
    path: USERS,
    body: {
      ...USER_OK,
      email: `${'e'.repeat(64)}@${'d'.repeat(63)}.${'d'.repeat(63)}.${'d'.repeat(63)}.com`,
    },
    fields: ['email'],
  },
  'users: missing email': { method: 'POST', path: USERS, body: { username: 'new-user' }, fields: ['email'] },
  'users: name too long': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, name: 'n'.repeat(256) },
    fields: ['name'],
  },
  'users: unknown role': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, roles: ['king'] },
    fields: ['roles[0]'],
  },
  'users: roles as a string': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, roles: 'owner' },
    fields: ['roles'],
  },
  'users: bad uuid in organization_ids': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, organization_ids: ['not-a-uuid'] },
    fields: ['organization_ids[0]'],
  },
  'users: organization_ids as an object': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, organization_ids: { id: MISSING_UUID } },
    fields: ['organization_ids'],
  },
  'users: unknown field': {
    method: 'POST',
    path: USERS,
    body: { ...USER_OK, admin: true },
    fields: ['admin'],
  },
  'users: roles null': {
    method: 'POST',
    path: USERS,
    body: { username: 'roles-null', email: 'roles-null@example.com', roles: null },
    fields: ['roles'],
  },
  'users: organization_ids null': {
    method: 'POST',
    path: USERS,
    body: { username: 'orgs-null', email: 'orgs-null@example.com', organization_ids: null },
    fields: ['organization_ids'],
  },
  'users: NUL character in the name': {
    method: 'POST',
    path: USERS,
    body: { username: 'nul-name', email: 'nul-name@example.com', name: 'a\u0000b' },
    fields: ['name'],
  },

  // POST /users/{user}/keys
  'keys: string lifetime': {
    method: 'POST',
    path: KEYS,
    body: { lifetime_seconds: '3600' },
    fields: ['lifetime_seconds'],
  },
  'keys: fractional lifetime': {
    method: 'POST',
    path: KEYS,
    body: { lifetime_seconds: 3600.5 },
    fields: ['lifetime_seconds'],
  },
  'keys: negative lifetime': {
    method: 'POST',
    path: KEYS,
    body: { lifetime_seconds: -3600 },
    fields: ['lifetime_seconds'],
  },
  'keys: lifetime 1e30': {
    method: 'POST',
    path: KEYS,
    raw: '{"lifetime_seconds": 1e30}',
    fields: ['lifetime_seconds'],
  },
  'keys: name too long': { method: 'POST', path: KEYS, body: { name: 'k'.repeat(256) }, fields: ['name'] },
  'keys: number for name': { method: 'POST', path: KEYS, body: { name: 7 }, fields: ['name'] },
  'keys: unknown field': { method: 'POST', path: KEYS, body: { name: 'k', scope: 'all' }, fields: ['scope'] },
  'keys: null lifetime': {
    method: 'POST',
    path: KEYS,
    body: { lifetime_seconds: null },
    fields: ['lifetime_seconds'],
  },
  'keys: NUL character in the name': {
    method: 'POST',
    path: KEYS,
    body: { name: 'a\u0000b' },
    fields: ['name'],
  },
  'keys: NUL character in the key id of DELETE': {
    method: 'DELETE',
    path: '/api/v2/users/me/keys/abc%00def',
    fields: ['id'],
  },
  'keys: bad username in the path': {
    method: 'POST',
    path: '/api/v2/users/Not%20A%20User/keys',
    body: {},
    fields: ['user'],
  },

  // PUT /users/{user}/roles
  'roles: unknown site role': {
    method: 'PUT',
    path: ROLES,
    body: { roles: ['superuser'] },
    fields: ['roles[0]'],
  },
  'roles: organization role as a site role': {
    method: 'PUT',
    path: ROLES,
    body: { roles: ['organization-admin'] },
    fields: ['roles[0]'],
  },
  'roles: missing roles': { method: 'PUT', path: ROLES, body: {}, fields: ['roles'] },
  'roles: null': { method: 'PUT', path: ROLES, body: { roles: null }, fields: ['roles'] },
  'roles: string instead of array': {
    method: 'PUT',
    path: ROLES,
    body: { roles: 'owner' },
    fields: ['roles'],
  },

  // POST /organizations
  'organizations: uppercase name': { method: 'POST', path: ORGS, body: { name: 'ACME' }, fields: ['name'] },
  'organizations: name with a space': {
    method: 'POST',
    path: ORGS,
    body: { name: 'ac me' },
    fields: ['name'],
  },
  'organizations: name of 65 characters': {
    method: 'POST',
    path: ORGS,
    body: { name: 'o'.repeat(65) },
    fields: ['name'],
  },
  'organizations: uuid-shaped name': {
    method: 'POST',
    path: ORGS,
    body: { name: MISSING_UUID },
    fields: ['name'],
  },
  'organizations: missing name': {
    method: 'POST',
    path: ORGS,
    body: { display_name: 'Acme' },
    fields: ['name'],
  },
  'organizations: display_name too long': {
    method: 'POST',
    path: ORGS,
    body: { name: 'acme', display_name: 'd'.repeat(256) },
    fields: ['display_name'],
  },
  'organizations: NUL character in display_name': {
    method: 'POST',
    path: ORGS,
    body: { name: 'nul-org', display_name: 'a\u0000b' },
    fields: ['display_name'],
  },
  'organizations: number for display_name': {
    method: 'POST',
    path: ORGS,
    body: { name: 'acme', display_name: 5 },
    fields: ['display_name'],
  },

  // PUT /organizations/{organization}/members/{user}
  'members: unknown organization role': {
    method: 'PUT',
    path: MEMBER,
    body: { roles: ['organization-owner'] },
    fields: ['roles[0]'],
  },
  'members: site role as an organization role': {
    method: 'PUT',
    path: MEMBER,
    body: { roles: ['organization-admin', 'owner'] },
    fields: ['roles[1]'],
  },
  'members: roles null': { method: 'PUT', path: MEMBER, body: { roles: null }, fields: ['roles'] },
  'members: roles as a string': {
    method: 'PUT',
    path: MEMBER,
    body: { roles: 'organization-admin' },
    fields: ['roles'],
  },
  'members: unknown field': {
    method: 'PUT',
    path: MEMBER,
    body: { roles: [], admin: true },
    fields: ['admin'],
  },
  'members: bad organization name in the path': {
    method: 'PUT',
    path: '/api/v2/organizations/Org%20A/members/:MEMBER',
    body: {},
    fields: ['organization'],
  },
  'members: bad username in the path': {
    method: 'PUT',
    path: '/api/v2/organizations/:ORG/members/UPPER',
    body: {},
    fields: ['user'],
  },

  // POST /organizations/{organization}/groups
  'groups POST: empty name': { method: 'POST', path: GROUPS, body: { name: '' }, fields: ['name'] },
  'groups POST: blank name': { method: 'POST', path: GROUPS, body: { name: '   ' }, fields: ['name'] },
  'groups POST: name of 256 characters': {
    method: 'POST',
    path: GROUPS,
    body: { name: 'g'.repeat(256) },
    fields: ['name'],
  },
  'groups POST: control character in the name': {
    method: 'POST',
    path: GROUPS,
    body: { name: 'bell\u0007' },
    fields: ['name'],
  },
  'groups POST: number for name': { method: 'POST', path: GROUPS, body: { name: 42 }, fields: ['name'] },
  'groups POST: display_name too long': {
    method: 'POST',
    path: GROUPS,
    body: { name: 'ok', display_name: 'd'.repeat(256) },
    fields: ['display_name'],
  },
  'groups POST: NUL character in display_name': {
    method: 'POST',
    path: GROUPS,
    body: { name: 'nul-group', display_name: 'a\u0000b' },
    fields: ['display_name'],
  },
  'groups POST: unknown field': {
    method: 'POST',
    path: GROUPS,
    body: { name: 'ok', members: [] },
    fields: ['members'],
  },

  // PATCH /groups/{group}
  'groups PATCH: null name': { method: 'PATCH', path: GROUP, body: { name: null }, fields: ['name'] },
  'groups PATCH: number for display_name': {
    method: 'PATCH',
    path: GROUP,
    body: { display_name: 42 },
    fields: ['display_name'],
  },
  'groups PATCH: bad uuid in add_users': {
    method: 'PATCH',
    path: GROUP,
    body: { add_users: [':MEMBER', 'not-a-uuid'] },
    fields: ['add_users[1]'],
  },
  'groups PATCH: number in remove_users': {
    method: 'PATCH',
    path: GROUP,
    body: { remove_users: [42] },
    fields: ['remove_users[0]'],
  },
  'groups PATCH: add_users not an array': {
    method: 'PATCH',
    path: GROUP,
    body: { add_users: ':MEMBER' },
    fields: ['add_users'],
  },
  'groups PATCH: adding a non-member of the organization': {
    method: 'PATCH',
    path: GROUP,
    body: { add_users: [':MEMBER', ':OUTSIDER'] },
    fields: ['add_users[1]'],
  },
  'groups PATCH: NUL character in display_name': {
    method: 'PATCH',
    path: GROUP,
    body: { display_name: 'a\u0000b' },
    fields: ['display_name'],
  },
  'groups PATCH: unknown field': {
    method: 'PATCH',
    path: GROUP,
    body: { organization_id: ':ORG' },
    fields: ['organization_id'],
  },
  'groups PATCH: bad uuid in the path': {
    method: 'PATCH',
    path: '/api/v2/groups/123',
    body: { display_name: 'x' },
    fields: ['group'],
  },

  // PUT /ai/model-prices/{provider}/{model} (docs/api.md)
  'price: all four null': {
    method: 'PUT',
    path: PRICE,
    body: { input_price: null, output_price: null, cache_read_price: null, cache_write_price: null },
    fields: ['input_price', 'output_price', 'cache_read_price', 'cache_write_price'],
  },
  'price: a key missing': {
    method: 'PUT',
    path: PRICE,
    body: { input_price: 1, output_price: 1, cache_read_price: 1 },
    fields: ['cache_write_price'],
  },
  'price: string for a price': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, input_price: '100' },
    fields: ['input_price'],
  },
  'price: negative price': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, output_price: -1 },
    fields: ['output_price'],
  },
  'price: fractional price': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, cache_read_price: 1.5 },
    fields: ['cache_read_price'],
  },
  'price: boolean price': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, cache_write_price: false },
    fields: ['cache_write_price'],
  },
  'price: price 1e30': {
    method: 'PUT',
    path: PRICE,
    raw: '{"input_price": 1e30, "output_price": 1, "cache_read_price": null, "cache_write_price": null}',
    fields: ['input_price'],
  },
  'price: unknown field': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, currency: 'USD' },
    fields: ['currency'],
  },
  'price: tiers not an array': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: 'none' },
    fields: ['tiers'],
  },
  'price: tier that is a number': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [1] },
    fields: ['tiers[0]'],
    alt: [['tiers']], // class-validator's `each` names the array itself
  },
  'price: empty tier object': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [{}] },
    fields: [
      'tiers[0].min_context_tokens',
      'tiers[0].input_price',
      'tiers[0].output_price',
      'tiers[0].cache_read_price',
      'tiers[0].cache_write_price',
    ],
  },
  'price: tier that is an array': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [[]] },
    fields: ['tiers[0]'],
    alt: [['tiers']], // class-validator's `each` names the array itself
  },
  'price: tier with a negative min_context_tokens': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [{ ...TIER_OK, min_context_tokens: -1 }] },
    fields: ['tiers[0].min_context_tokens'],
  },
  'price: tier with a string price': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [{ ...TIER_OK, output_price: '5' }] },
    fields: ['tiers[0].output_price'],
  },
  'price: tier with an unknown field': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [{ ...TIER_OK, max_context_tokens: 1 }] },
    fields: ['tiers[0].max_context_tokens'],
  },
  'price: tiers out of order': {
    method: 'PUT',
    path: PRICE,
    body: { ...PRICE_OK, tiers: [TIER_OK, { ...TIER_OK, min_context_tokens: 100_000 }] },
    fields: ['tiers[1].min_context_tokens'],
  },
  'price: uppercase provider in the path': {
    method: 'PUT',
    path: '/api/v2/ai/model-prices/OpenAI/bad-input-model',
    body: PRICE_OK,
    fields: ['provider'],
  },
  'price: control character in the model': {
    method: 'PUT',
    path: '/api/v2/ai/model-prices/openai/bad%07model',
    body: PRICE_OK,
    fields: ['model'],
  },

  // POST /ai/model-prices/sync
  'sync: unknown source': { method: 'POST', path: SYNC, body: { source: 'ftp' }, fields: ['source'] },
  'sync: missing source': { method: 'POST', path: SYNC, body: {}, fields: ['source'] },
  'sync: number for source': { method: 'POST', path: SYNC, body: { source: 1 }, fields: ['source'] },
  'sync: unknown field': {
    method: 'POST',
    path: SYNC,
    body: { source: 'embedded', url: 'http://example.com' },
    fields: ['url'],
  },

  // list query parameters (docs/api.md: limit 1..1000, offset >= 0, anything else is 400)
  'list: limit=0': { method: 'GET', path: `${PRICES}?limit=0`, fields: ['limit'] },
  'list: limit=1001': { method: 'GET', path: `${PRICES}?limit=1001`, fields: ['limit'] },
  'list: limit=abc': { method: 'GET', path: `${PRICES}?limit=abc`, fields: ['limit'] },
  'list: limit=1.5': { method: 'GET', path: `${PRICES}?limit=1.5`, fields: ['limit'] },
  'list: limit=-1': { method: 'GET', path: `${USERS}?limit=-1`, fields: ['limit'] },
  'list: empty limit': { method: 'GET', path: `${USERS}?limit=`, fields: ['limit'] },
  'list: limit given twice': { method: 'GET', path: `${ORGS}?limit=1&limit=2`, fields: ['limit'] },
  'list: limit of 20 digits': {
    method: 'GET',
    path: `${ORGS}?limit=99999999999999999999`,
    fields: ['limit'],
  },
  'list: offset=-1': { method: 'GET', path: `${PRICES}?offset=-1`, fields: ['offset'] },
  'list: offset=abc': { method: 'GET', path: `${ORGS}/:ORG/members?offset=abc`, fields: ['offset'] },
  'list: offset=0.5': { method: 'GET', path: `${GROUPS}?offset=0.5`, fields: ['offset'] },
  'list: unknown query parameter': { method: 'GET', path: `${PRICES}?sort=model`, fields: ['sort'] },
  'list: unknown price source': { method: 'GET', path: `${PRICES}?source=upstream`, fields: ['source'] },
  'list: provider given twice': {
    method: 'GET',
    path: `${PRICES}?provider=a&provider=b`,
    fields: ['provider'],
  },
  'list: NUL character in the users search': { method: 'GET', path: `${USERS}?q=a%00b`, fields: ['q'] },
  'list: NUL character in the price provider filter': {
    method: 'GET',
    path: `${PRICES}?provider=%00`,
    fields: ['provider'],
  },
  'audit: NUL character in the actor filter': {
    method: 'GET',
    path: `${AUDIT}?actor=a%00`,
    fields: ['actor'],
  },
  'audit: since not a timestamp': { method: 'GET', path: `${AUDIT}?since=yesterday`, fields: ['since'] },
  'audit: since on 30 February': {
    method: 'GET',
    path: `${AUDIT}?since=2024-02-30T00:00:00Z`,
    fields: ['since'],
  },
  'audit: since without a time zone': {
    method: 'GET',
    path: `${AUDIT}?since=2024-05-01T00:00:00`,
    fields: ['since'],
  },
  'audit: until before since': {
    method: 'GET',
    path: `${AUDIT}?since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z`,
    fields: ['until'],
  },
  'audit: unknown action': { method: 'GET', path: `${AUDIT}?action=read`, fields: ['action'] },
  'audit: limit=0': { method: 'GET', path: `${AUDIT}?limit=0`, fields: ['limit'] },

  // path uuids
  'path: group id too short': { method: 'GET', path: '/api/v2/groups/123', fields: ['group'] },
  'path: group id with braces': {
    method: 'GET',
    path: `/api/v2/groups/%7B${MISSING_UUID}%7D`,
    fields: ['group'],
  },
  'path: group id as a name': { method: 'DELETE', path: '/api/v2/groups/engineering', fields: ['group'] },
  'path: organization that is neither an id nor a name': {
    method: 'GET',
    path: '/api/v2/organizations/Not_An_Org/groups',
    fields: ['organization'],
  },
  'path: user that is neither an id, a username nor me': {
    method: 'GET',
    path: '/api/v2/users/Bob',
    fields: ['user'],
  },
  'path: group id of 101 characters': {
    method: 'GET',
    path: `/api/v2/groups/${'a'.repeat(101)}`,
    fields: ['group'],
  },
  'path: username of 101 characters': {
    method: 'GET',
    path: `/api/v2/users/${'u'.repeat(101)}`,
    fields: ['user'],
  },
  'path: organization name of 101 characters': {
    method: 'GET',
    path: `/api/v2/organizations/${'o'.repeat(101)}/members`,
    fields: ['organization'],
  },
  'path: group id with a broken percent-encoding': {
    method: 'GET',
    path: '/api/v2/groups/%zz',
    fields: ['group'],
    alt: [['path']],
  },
};

describe('bad input over HTTP (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let ids: Ids;
  let auditBefore: number;
  let seq = 0;

  const resolve = (text: string): string =>
    text.replace(/:ORG|:GROUP|:MEMBER|:OUTSIDER/g, (k) => ids[k as keyof Ids]);

  const nextRequestId = () => `bad-input-${process.pid}-${++seq}`;

  /** Asserts the error body of docs/api.md and that it is not a 500. */
  function expectErrorBody(res: ApiResponse, requestId: string): ErrorBody {
    expect(res.status).not.toBe(500);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = res.body as unknown as ErrorBody;
    expect(typeof body.message).toBe('string');
    expect(body.message.length).toBeGreaterThan(0);
    expect(Array.isArray(body.validations)).toBe(true);
    for (const v of body.validations) {
      expect(typeof v.field).toBe('string');
      expect(typeof v.detail).toBe('string');
    }
    expect(body.request_id).toBe(requestId);
    const allowed = new Set(['message', 'detail', 'validations', 'request_id']);
    expect(Object.keys(body).filter((k) => !allowed.has(k))).toEqual([]);
    return body;
  }

  async function auditCount(): Promise<number> {
    const [row] = await api.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_logs');
    return row.n;
  }

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    ({ owner } = await world.bootstrap());
    const org = await world.organization('org-a');
    const member = await world.person(owner, 'member-a', { orgs: [{ id: org }] });
    const outsider = await world.person(owner, 'outsider');
    const group = await world.group(org, 'engineering', [member.id]);
    ids = { ':ORG': org, ':GROUP': group, ':MEMBER': member.id, ':OUTSIDER': outsider.id };
    await api.sql(`INSERT INTO group_ai_budgets (group_id, spend_limit_micros) VALUES ($1, 777)`, [group]);
    auditBefore = await auditCount();
  });

  afterAll(async () => {
    await api?.close();
  });

  it('has at least 40 cases', () => {
    expect(Object.keys(CASES).length).toBeGreaterThanOrEqual(40);
  });

  it.each(Object.entries(CASES))('%s: 400 naming the field', async (_name, c) => {
    const requestId = nextRequestId();
    const res = await api.request(c.method, resolve(c.path), {
      token: owner.token,
      headers: { 'x-request-id': requestId },
      ...(c.raw !== undefined
        ? { rawBody: resolve(c.raw) }
        : c.body !== undefined
          ? { rawBody: resolve(JSON.stringify(c.body)) }
          : {}),
    });
    expect(res.status).not.toBe(500);
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 400 });
    const body = expectErrorBody(res, requestId);
    const named = [...new Set(body.validations.map((v) => v.field))].sort();
    const accepted = [c.fields, ...(c.alt ?? [])].map((f) => [...f].sort());
    if (!accepted.some((f) => JSON.stringify(f) === JSON.stringify(named))) {
      expect(named).toEqual(accepted[0]);
    }
  });

  it('generates a request id when none (or an unusable one) is sent, and still answers the error body', async () => {
    const plain = await api.request('PUT', resolve(BUDGET), {
      token: owner.token,
      body: { spend_limit_micros: 'x' },
    });
    expect(plain.status).toBe(400);
    const generated = plain.headers.get('x-request-id') ?? '';
    expect(generated).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
    expectErrorBody(plain, generated);

    const unusable = await api.request('PUT', resolve(BUDGET), {
      token: owner.token,
      body: { spend_limit_micros: 'x' },
      headers: { 'x-request-id': 'not usable!' },
    });
    expect(unusable.status).toBe(400);
    const replaced = unusable.headers.get('x-request-id') ?? '';
    expect(replaced).not.toBe('not usable!');
    expect(replaced).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
    expectErrorBody(unusable, replaced);
  });

  describe('413: a body over 1 MiB', () => {
    const big = (n: number) => JSON.stringify({ name: 'x'.repeat(n) });

    it.each([
      ['PUT', BUDGET],
      ['POST', USERS],
      ['PUT', PRICE],
    ] as const)('%s %s', async (method, path) => {
      const requestId = nextRequestId();
      const res = await api.request(method, resolve(path), {
        token: owner.token,
        rawBody: big(1024 * 1024 + 16),
        headers: { 'x-request-id': requestId },
      });
      expect(res.status).toBe(413);
      expectErrorBody(res, requestId);
    });
  });

  describe('415: a body that is not application/json', () => {
    it.each([
      ['PUT', BUDGET, 'text/plain', '{"spend_limit_micros": 1}'],
      ['POST', USERS, 'text/plain', JSON.stringify(USER_OK)],
      ['POST', ORGS, 'application/x-www-form-urlencoded', 'name=acme'],
      ['PUT', PRICE, 'application/xml', '<price/>'],
    ] as const)('%s %s as %s', async (method, path, contentType, rawBody) => {
      const requestId = nextRequestId();
      const res = await api.request(method, resolve(path), {
        token: owner.token,
        rawBody,
        headers: { 'x-request-id': requestId, 'content-type': contentType },
      });
      expect(res.status).toBe(415);
      expectErrorBody(res, requestId);
    });
  });

  it('changed nothing: no audit entry, no new user, organization or group, the budget and prices as they were', async () => {
    expect(await auditCount()).toBe(auditBefore);
    expect(
      await api.sql(`SELECT username FROM users WHERE username NOT IN ('owner', 'member-a', 'outsider')`),
    ).toEqual([]);
    expect(await api.sql(`SELECT name FROM organizations WHERE name NOT IN ('default', 'org-a')`)).toEqual(
      [],
    );
    expect(
      await api.sql(`SELECT name FROM groups WHERE organization_id = $1 ORDER BY name`, [ids[':ORG']]),
    ).toEqual([{ name: 'Everyone' }, { name: 'engineering' }]);
    expect(
      await api.sql(`SELECT spend_limit_micros::int AS micros FROM group_ai_budgets WHERE group_id = $1`, [
        ids[':GROUP'],
      ]),
    ).toEqual([{ micros: 777 }]);
    expect(await api.sql(`SELECT 1 FROM ai_model_prices WHERE source = 'custom'`)).toEqual([]);
    expect(await api.sql(`SELECT roles FROM users WHERE id = $1`, [ids[':MEMBER']])).toEqual([{ roles: [] }]);
  });
});
