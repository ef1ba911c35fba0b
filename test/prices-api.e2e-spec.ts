import { connect, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import { startNatsServer, type TestNatsServer } from '@aigov/testing';
import type { INestApplication } from '@nestjs/common';
import { PricingWorkerModule } from '../apps/pricing-worker/src/pricing-worker.module';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../apps/budget-api/src/options';
import { ApiHarness, World, type Person } from './helpers/api';

interface Price {
  provider: string;
  model: string;
  source: 'default' | 'custom';
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
  tiers: Record<string, number | null>[] | null;
  created_at: string;
  updated_at: string;
}

interface ErrorBody {
  message: string;
  detail?: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

interface AuditRow {
  id: string;
  actor: string;
  actor_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  organization_id: string | null;
  diff: Record<string, unknown>;
  request_id: string | null;
}

const PRICES = '/api/v2/ai/model-prices';
/** A price path with the model id URL-encoded the way clients send it. */
const pricePath = (provider: string, model: string) =>
  `${PRICES}/${encodeURIComponent(provider)}/${encodeURIComponent(model)}`;

const SONNET = 'claude-3-5-sonnet@20240620';
const FIREWORKS = 'accounts/fireworks/models/llama-v3p1-8b-instruct';
const ODD = 'vendor:model~v1.2/preview@2025';
const GPT_TIERS = [
  {
    min_context_tokens: 200_000,
    input_price: 5_000_000,
    output_price: null,
    cache_read_price: 500_000,
    cache_write_price: null,
  },
];

const VALID_BODY = {
  input_price: 2_000_000,
  output_price: 8_000_000,
  cache_read_price: 200_000,
  cache_write_price: null,
};

const fields = (body: unknown) => (body as ErrorBody).validations.map((v) => v.field);

/** Default rows as the pricing worker's seed would have written them. */
async function seedDefaults(api: ApiHarness): Promise<void> {
  await api.sql(
    `INSERT INTO ai_model_prices (provider, model, source, input_price, output_price, cache_read_price, cache_write_price, tiers)
     VALUES ('anthropic', $1, 'default', 3000000, 15000000, 300000, 3750000, NULL),
            ('anthropic', 'claude-3-haiku', 'default', 250000, 1250000, NULL, NULL, NULL),
            ('fireworks', $2, 'default', 200000, 200000, NULL, NULL, NULL),
            ('openai', 'gpt-4o', 'default', 2500000, 10000000, 1250000, NULL, $3::jsonb),
            ('openai', $4, 'default', 1, 0, NULL, NULL, NULL)`,
    [SONNET, FIREWORKS, JSON.stringify(GPT_TIERS), ODD],
  );
}

async function auditFor(api: ApiHarness, resourceId: string): Promise<AuditRow[]> {
  return api.sql<AuditRow>(
    `SELECT id, actor, actor_id, action, resource_type, resource_id, organization_id, diff, request_id
       FROM audit_logs WHERE resource_type = 'ai_model_price' AND resource_id = $1 ORDER BY time`,
    [resourceId],
  );
}

describe('price book API (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let plain: Person;
  let auditor: Person;
  let userAdmin: Person;

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
    plain = await world.person(owner, 'plain', { orgs: [{ id: boot.defaultOrg }] });
    auditor = await world.person(owner, 'auditor', { siteRoles: ['auditor'] });
    userAdmin = await world.person(owner, 'useradmin', { siteRoles: ['user-admin'] });
    await seedDefaults(api);
  });

  afterAll(async () => {
    await api.close();
  });

  describe('GET /ai/model-prices', () => {
    it('answers 401 without a valid token', async () => {
      expect((await api.request('GET', PRICES)).status).toBe(401);
      expect((await api.request('GET', PRICES, { token: 'abcdefghij-nottherealsecretatall00' })).status).toBe(
        401,
      );
    });

    it('lists every row to any authenticated user, ordered, with the documented shape', async () => {
      const res = await api.request<{ prices: Price[]; count: number }>('GET', PRICES, {
        token: plain.token,
      });
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['count', 'prices']);
      expect(res.body.count).toBe(5);
      expect(res.body.prices.map((p) => `${p.provider}/${p.model}`)).toEqual([
        'anthropic/claude-3-5-sonnet@20240620',
        'anthropic/claude-3-haiku',
        `fireworks/${FIREWORKS}`,
        'openai/gpt-4o',
        `openai/${ODD}`,
      ]);
      const gpt = res.body.prices[3];
      expect(Object.keys(gpt).sort()).toEqual(
        [
          'cache_read_price',
          'cache_write_price',
          'created_at',
          'input_price',
          'model',
          'output_price',
          'provider',
          'source',
          'tiers',
          'updated_at',
        ].sort(),
      );
      expect(gpt).toMatchObject({
        provider: 'openai',
        model: 'gpt-4o',
        source: 'default',
        input_price: 2_500_000,
        output_price: 10_000_000,
        cache_read_price: 1_250_000,
        cache_write_price: null,
        tiers: GPT_TIERS,
      });
      expect(gpt.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    });

    it('filters by provider, model and source, and pages with a total count', async () => {
      const byProvider = await api.request<{ prices: Price[]; count: number }>(
        'GET',
        `${PRICES}?provider=anthropic`,
        {
          token: plain.token,
        },
      );
      expect(byProvider.body.count).toBe(2);
      expect(byProvider.body.prices.every((p) => p.provider === 'anthropic')).toBe(true);

      const byModel = await api.request<{ prices: Price[]; count: number }>(
        'GET',
        `${PRICES}?model=${encodeURIComponent(FIREWORKS)}`,
        { token: plain.token },
      );
      expect(byModel.body.count).toBe(1);
      expect(byModel.body.prices[0].model).toBe(FIREWORKS);

      const custom = await api.request<{ prices: Price[]; count: number }>('GET', `${PRICES}?source=custom`, {
        token: plain.token,
      });
      expect(custom.body).toEqual({ prices: [], count: 0 });

      const paged = await api.request<{ prices: Price[]; count: number }>(
        'GET',
        `${PRICES}?limit=2&offset=1`,
        {
          token: plain.token,
        },
      );
      expect(paged.body.count).toBe(5);
      expect(paged.body.prices.map((p) => p.model)).toEqual(['claude-3-haiku', FIREWORKS]);
    });

    it.each([
      ['source=bogus', 'source'],
      ['source=', 'source'],
      ['provider=a&provider=b', 'provider'],
      ['provider=', 'provider'],
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=abc', 'limit'],
      ['limit=1.5', 'limit'],
      ['offset=-1', 'offset'],
      ['sort=model', 'sort'],
    ])('answers 400 for ?%s naming %s', async (query, field) => {
      const res = await api.request('GET', `${PRICES}?${query}`, { token: plain.token });
      expect(res.status).toBe(400);
      expect(fields(res.body)).toContain(field);
      expect((res.body as unknown as ErrorBody).request_id).toBe(res.headers.get('x-request-id'));
    });
  });

  describe('GET /ai/model-prices/{provider}/{model}', () => {
    it.each([
      ['anthropic', SONNET, 3_000_000],
      ['fireworks', FIREWORKS, 200_000],
      ['openai', ODD, 1],
    ])('round-trips the encoded model id %s/%s', async (provider, model, input) => {
      const res = await api.request<Price>('GET', pricePath(provider, model), { token: plain.token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ provider, model, source: 'default', input_price: input });
    });

    it('reads %2F (any case) and a plain slash after the provider alike as part of the model', async () => {
      const mixed = await api.request<Price>(
        'GET',
        `${PRICES}/fireworks/accounts%2ffireworks%2Fmodels%2Fllama-v3p1-8b-instruct`,
        { token: plain.token },
      );
      expect(mixed.status).toBe(200);
      expect(mixed.body.model).toBe(FIREWORKS);
      const plainSlashes = await api.request<Price>('GET', `${PRICES}/fireworks/${FIREWORKS}`, {
        token: plain.token,
      });
      expect(plainSlashes.status).toBe(200);
      expect(plainSlashes.body.model).toBe(FIREWORKS);
    });

    it('handles model ids up to 255 characters', async () => {
      const long = `accounts/acme/models/${'m'.repeat(234)}`;
      expect(long).toHaveLength(255);
      const put = await api.request<Price>('PUT', pricePath('acme', long), {
        token: owner.token,
        body: VALID_BODY,
      });
      expect(put.status).toBe(200);
      expect(put.body.model).toBe(long);
      const get = await api.request<Price>('GET', pricePath('acme', long), { token: plain.token });
      expect(get.body.model).toBe(long);
      expect((await api.request('DELETE', pricePath('acme', long), { token: owner.token })).status).toBe(204);
    });

    it('answers 404 for an unknown model and 401 without a token', async () => {
      const res = await api.request<ErrorBody>('GET', pricePath('anthropic', 'nope'), { token: plain.token });
      expect(res.status).toBe(404);
      expect(res.body.message).toContain('anthropic/nope');
      expect((await api.request('GET', pricePath('anthropic', SONNET))).status).toBe(401);
    });

    it.each([
      ['OpenAI', 'gpt-4o', 'provider'],
      ['-openai', 'gpt-4o', 'provider'],
      ['a'.repeat(65), 'gpt-4o', 'provider'],
      ['openai', 'x'.repeat(256), 'model'],
      ['openai', 'gpt\u0001', 'model'],
      ['openai', 'gpt\n4o', 'model'],
      ['openai', 'ü'.repeat(256), 'model'],
      ['openai', '', 'model'],
    ])('answers 400 for the path %s/%s naming %s', async (provider, model, field) => {
      const res = await api.request('GET', pricePath(provider, model), { token: plain.token });
      expect(res.status).toBe(400);
      expect(fields(res.body)).toEqual([field]);
    });
  });

  describe('PUT and DELETE /ai/model-prices/{provider}/{model}', () => {
    it('lets only owners write: 403 for a plain user, an auditor and a user-admin, and no audit entry', async () => {
      for (const who of [plain, auditor, userAdmin]) {
        const put = await api.request<ErrorBody>('PUT', pricePath('anthropic', SONNET), {
          token: who.token,
          body: VALID_BODY,
        });
        expect(put.status).toBe(403);
        expect(
          (await api.request('DELETE', pricePath('anthropic', SONNET), { token: who.token })).status,
        ).toBe(403);
      }
      expect((await api.request('PUT', pricePath('anthropic', SONNET), { body: VALID_BODY })).status).toBe(
        401,
      );
      expect(await auditFor(api, `anthropic/${SONNET}`)).toEqual([]);
      const rows = await api.sql(`SELECT 1 FROM ai_model_prices WHERE source = 'custom'`);
      expect(rows).toHaveLength(0);
    });

    it('sets a custom row that replaces the default entirely, tiers included, until it is deleted', async () => {
      const before = await api.request<Price>('GET', pricePath('openai', 'gpt-4o'), { token: plain.token });
      expect(before.body.tiers).toEqual(GPT_TIERS);

      const put = await api.request<Price>('PUT', pricePath('openai', 'gpt-4o'), {
        token: owner.token,
        body: { input_price: 1e3, output_price: 100.0, cache_read_price: null, cache_write_price: 0 },
      });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({
        provider: 'openai',
        model: 'gpt-4o',
        source: 'custom',
        input_price: 1000,
        output_price: 100,
        cache_read_price: null,
        cache_write_price: 0,
        tiers: null,
      });

      const effective = await api.request<Price>('GET', pricePath('openai', 'gpt-4o'), {
        token: plain.token,
      });
      expect(effective.body).toEqual(put.body);

      const list = await api.request<{ prices: Price[]; count: number }>('GET', `${PRICES}?model=gpt-4o`, {
        token: plain.token,
      });
      expect(list.body.prices.map((p) => p.source)).toEqual(['custom', 'default']);
      expect(list.body.prices[1].tiers).toEqual(GPT_TIERS);

      const del = await api.request('DELETE', pricePath('openai', 'gpt-4o'), { token: owner.token });
      expect(del.status).toBe(204);
      expect(del.body).toBeNull();
      const after = await api.request<Price>('GET', pricePath('openai', 'gpt-4o'), { token: plain.token });
      expect(after.body).toMatchObject({ source: 'default', input_price: 2_500_000, tiers: GPT_TIERS });
    });

    it('stores tiers, round-trips an encoded model id and prices a model that has no default', async () => {
      const model = 'accounts/acme/models/new:v2@2025~x.y';
      const tiers = [
        {
          min_context_tokens: 0,
          input_price: 1,
          output_price: 2,
          cache_read_price: null,
          cache_write_price: null,
        },
        {
          min_context_tokens: 128_000,
          input_price: 3,
          output_price: null,
          cache_read_price: 0,
          cache_write_price: 9,
        },
      ];
      const put = await api.request<Price>('PUT', pricePath('acme', model), {
        token: owner.token,
        body: { ...VALID_BODY, tiers },
      });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ provider: 'acme', model, source: 'custom', tiers });
      const get = await api.request<Price>('GET', pricePath('acme', model), { token: plain.token });
      expect(get.status).toBe(200);
      expect(get.body).toEqual(put.body);
      const [row] = await api.sql<{ model: string }>(
        `SELECT model FROM ai_model_prices WHERE provider = 'acme'`,
      );
      expect(row.model).toBe(model);

      const nulled = await api.request<Price>('PUT', pricePath('acme', model), {
        token: owner.token,
        body: { ...VALID_BODY, tiers: null },
      });
      expect(nulled.status).toBe(200);
      expect(nulled.body.tiers).toBeNull();
      // No tiers has one spelling: [] is stored like an absent list.
      const cleared = await api.request<Price>('PUT', pricePath('acme', model), {
        token: owner.token,
        body: { ...VALID_BODY, tiers: [] },
      });
      expect(cleared.body.tiers).toBeNull();
      expect((await api.request('DELETE', pricePath('acme', model), { token: owner.token })).status).toBe(
        204,
      );
      expect((await api.request('GET', pricePath('acme', model), { token: plain.token })).status).toBe(404);
    });

    it('writes one audit entry per change with dollar diffs, and keeps updated_at when nothing changed', async () => {
      const resourceId = `fireworks/${FIREWORKS}`;
      const path = pricePath('fireworks', FIREWORKS);
      const create = await api.request<Price>('PUT', path, {
        token: owner.token,
        body: {
          ...VALID_BODY,
          tiers: [
            {
              min_context_tokens: 1000,
              input_price: 9,
              output_price: null,
              cache_read_price: null,
              cache_write_price: null,
            },
          ],
        },
        headers: { 'x-request-id': 'price-create-1' },
      });
      expect(create.status).toBe(200);
      const update = await api.request<Price>('PUT', path, {
        token: owner.token,
        body: {
          input_price: 500_000_000,
          output_price: 0,
          cache_read_price: null,
          cache_write_price: 75_000,
        },
        headers: { 'x-request-id': 'price-write-1' },
      });
      expect(update.status).toBe(200);
      const same = await api.request<Price>('PUT', path, {
        token: owner.token,
        body: {
          input_price: 500_000_000,
          output_price: 0,
          cache_read_price: null,
          cache_write_price: 75_000,
        },
      });
      expect(same.body.updated_at).toBe(update.body.updated_at);
      const del = await api.request('DELETE', path, {
        token: owner.token,
        headers: { 'x-request-id': 'price-del-1' },
      });
      expect(del.status).toBe(204);

      const entries = await auditFor(api, resourceId);
      expect(entries.map((e) => e.action)).toEqual(['create', 'write', 'write', 'delete']);
      for (const e of entries) {
        expect(e).toMatchObject({
          actor: 'owner',
          actor_id: owner.id,
          resource_type: 'ai_model_price',
          organization_id: null,
        });
      }
      expect(entries.map((e) => e.request_id)).toEqual([
        'price-create-1',
        'price-write-1',
        expect.any(String),
        'price-del-1',
      ]);
      expect(entries[0].diff).toEqual({
        provider: 'fireworks',
        model: FIREWORKS,
        input_price: { before: null, after: { usd: '$2.00', micros: 2_000_000 } },
        output_price: { before: null, after: { usd: '$8.00', micros: 8_000_000 } },
        cache_read_price: { before: null, after: { usd: '$0.20', micros: 200_000 } },
        cache_write_price: { before: null, after: null },
        tiers: {
          before: null,
          after: [
            {
              min_context_tokens: 1000,
              input_price: { usd: '$0.000009', micros: 9 },
              output_price: null,
              cache_read_price: null,
              cache_write_price: null,
            },
          ],
        },
      });
      expect(entries[1].diff).toMatchObject({
        input_price: {
          before: { usd: '$2.00', micros: 2_000_000 },
          after: { usd: '$500.00', micros: 500_000_000 },
        },
        output_price: { before: { usd: '$8.00', micros: 8_000_000 }, after: { usd: '$0.00', micros: 0 } },
        cache_write_price: { before: null, after: { usd: '$0.075', micros: 75_000 } },
        tiers: { before: [expect.objectContaining({ min_context_tokens: 1000 })], after: null },
      });
      expect(entries[3].diff).toMatchObject({
        input_price: { before: { usd: '$500.00', micros: 500_000_000 }, after: null },
        cache_write_price: { before: { usd: '$0.075', micros: 75_000 }, after: null },
        tiers: { before: null, after: null },
      });
    });

    it('answers DELETE 404 when there is no custom row (a default alone is not deletable), without an audit entry', async () => {
      const res = await api.request<ErrorBody>('DELETE', pricePath('anthropic', 'claude-3-haiku'), {
        token: owner.token,
      });
      expect(res.status).toBe(404);
      expect(res.body.message).toContain('No custom price');
      expect(
        (await api.request('DELETE', pricePath('anthropic', 'unknown'), { token: owner.token })).status,
      ).toBe(404);
      expect(await auditFor(api, 'anthropic/claude-3-haiku')).toEqual([]);
      const def = await api.request<Price>('GET', pricePath('anthropic', 'claude-3-haiku'), {
        token: plain.token,
      });
      expect(def.body.source).toBe('default');
    });

    const bad: [string, unknown, string[]][] = [
      ['a string price', { ...VALID_BODY, input_price: '100' }, ['input_price']],
      ['a fraction', { ...VALID_BODY, output_price: 1.5 }, ['output_price']],
      ['a boolean', { ...VALID_BODY, cache_read_price: true }, ['cache_read_price']],
      ['a negative price', { ...VALID_BODY, cache_write_price: -1 }, ['cache_write_price']],
      ['an out-of-range price', { ...VALID_BODY, input_price: 1e30 }, ['input_price']],
      [
        'a price above USD 10,000 per million',
        { ...VALID_BODY, input_price: 10_000_000_001 },
        ['input_price'],
      ],
      ['an object price', { ...VALID_BODY, input_price: { micros: 1 } }, ['input_price']],
      ['a missing key', { input_price: 1, output_price: 1, cache_read_price: 1 }, ['cache_write_price']],
      [
        'all four prices null',
        { input_price: null, output_price: null, cache_read_price: null, cache_write_price: null },
        ['input_price', 'output_price', 'cache_read_price', 'cache_write_price'],
      ],
      ['an unknown field', { ...VALID_BODY, currency: 'USD' }, ['currency']],
      ['tiers that are not a list', { ...VALID_BODY, tiers: { min_context_tokens: 1 } }, ['tiers']],
      // class-validator's `each` check names the array itself
      ['a tier that is not an object', { ...VALID_BODY, tiers: [5] }, ['tiers']],
      [
        'an unknown tier field',
        {
          ...VALID_BODY,
          tiers: [
            {
              min_context_tokens: 1,
              input_price: 1,
              output_price: 1,
              cache_read_price: 1,
              cache_write_price: 1,
              size: 2,
            },
          ],
        },
        ['tiers[0].size'],
      ],
      [
        'a bad tier price',
        {
          ...VALID_BODY,
          tiers: [
            {
              min_context_tokens: 1,
              input_price: 1,
              output_price: 1,
              cache_read_price: 1,
              cache_write_price: 1,
            },
            {
              min_context_tokens: 2,
              input_price: '1',
              output_price: 1,
              cache_read_price: 1,
              cache_write_price: 1,
            },
          ],
        },
        ['tiers[1].input_price'],
      ],
      [
        'a tier without min_context_tokens',
        {
          ...VALID_BODY,
          tiers: [{ input_price: 1, output_price: 1, cache_read_price: 1, cache_write_price: 1 }],
        },
        ['tiers[0].min_context_tokens'],
      ],
      [
        'a tier missing a price key',
        {
          ...VALID_BODY,
          tiers: [{ min_context_tokens: 1, input_price: 1, output_price: 1, cache_read_price: 1 }],
        },
        ['tiers[0].cache_write_price'],
      ],
      [
        'tiers not in strictly increasing order',
        {
          ...VALID_BODY,
          tiers: [
            {
              min_context_tokens: 100,
              input_price: 1,
              output_price: 1,
              cache_read_price: 1,
              cache_write_price: 1,
            },
            {
              min_context_tokens: 100,
              input_price: 2,
              output_price: 2,
              cache_read_price: 2,
              cache_write_price: 2,
            },
          ],
        },
        ['tiers[1].min_context_tokens'],
      ],
      [
        'more than 20 tiers',
        {
          ...VALID_BODY,
          tiers: Array.from({ length: 21 }, (_, i) => ({
            min_context_tokens: i,
            input_price: 1,
            output_price: 1,
            cache_read_price: 1,
            cache_write_price: 1,
          })),
        },
        ['tiers'],
      ],
      ['a JSON array body', [VALID_BODY], ['body']],
    ];

    it.each([
      ['"100"', '100', /^must be null or an integer/],
      ['1.5', 1.5, /^must be null or an integer/],
      ['true', true, /^must be null or an integer/],
      ['-1', -1, /^must not be negative/],
      ['1e30', 1e30, /^must not exceed 10000000000/],
      ['10000000001', 10_000_000_001, /^must not exceed 10000000000/],
      ['undefined (missing)', undefined, /^is required/],
    ])('explains why input_price %s is refused', async (_name, value, detail) => {
      const res = await api.request<ErrorBody>('PUT', pricePath('anthropic', 'claude-3-haiku'), {
        token: owner.token,
        body: { ...VALID_BODY, input_price: value },
      });
      expect(res.status).toBe(400);
      expect(fields(res.body)).toEqual(['input_price']);
      expect(res.body.validations[0].detail).toMatch(detail);
    });

    it.each(bad)(
      'answers 400 for %s, naming the field, and writes nothing',
      async (_name, body, expected) => {
        const res = await api.request<ErrorBody>('PUT', pricePath('anthropic', 'claude-3-haiku'), {
          token: owner.token,
          body,
        });
        expect(res.status).toBe(400);
        expect(fields(res.body)).toEqual(expected);
        expect(res.body.message).toContain(expected[0]);
        expect(await auditFor(api, 'anthropic/claude-3-haiku')).toEqual([]);
      },
    );

    it('answers 400 for malformed JSON, 415 for a non-JSON body and 400 for bad path segments', async () => {
      const path = pricePath('anthropic', 'claude-3-haiku');
      expect(
        (await api.request('PUT', path, { token: owner.token, rawBody: '{"input_price": ' })).status,
      ).toBe(400);
      const text = await api.request('PUT', path, {
        token: owner.token,
        rawBody: 'input_price=1',
        headers: { 'content-type': 'text/plain' },
      });
      expect(text.status).toBe(415);
      const provider = await api.request('PUT', pricePath('Anthropic', 'x'), {
        token: owner.token,
        body: VALID_BODY,
      });
      expect(provider.status).toBe(400);
      expect(fields(provider.body)).toEqual(['provider']);
      const model = await api.request('DELETE', pricePath('anthropic', 'm'.repeat(256)), {
        token: owner.token,
      });
      expect(model.status).toBe(400);
      expect(fields(model.body)).toEqual(['model']);
      expect(await auditFor(api, 'anthropic/claude-3-haiku')).toEqual([]);
    });

    it('accepts the largest price, 10,000,000,000 micros', async () => {
      const res = await api.request<Price>('PUT', pricePath('anthropic', 'claude-3-haiku'), {
        token: owner.token,
        body: {
          input_price: 10_000_000_000,
          output_price: null,
          cache_read_price: null,
          cache_write_price: null,
        },
      });
      expect(res.status).toBe(200);
      expect(res.body.input_price).toBe(10_000_000_000);
      const [entry] = await auditFor(api, 'anthropic/claude-3-haiku');
      expect(entry.diff.input_price).toEqual({
        before: null,
        after: { usd: '$10000.00', micros: 10_000_000_000 },
      });
      expect(
        (await api.request('DELETE', pricePath('anthropic', 'claude-3-haiku'), { token: owner.token }))
          .status,
      ).toBe(204);
    });
  });

  describe('GET /ai/model-prices/{provider}/{model}/history', () => {
    interface Change {
      source: string;
      changed_at: string;
      actor: string;
      before: Record<string, unknown> | null;
      after: Record<string, unknown> | null;
    }
    const historyPath = (provider: string, model: string) => `${pricePath(provider, model)}/history`;
    const history = (path: string, who: Person = plain) =>
      api.request<{ changes: Change[]; count: number }>('GET', path, { token: who.token });
    const put = async (model: string, body: Record<string, unknown>) =>
      expect(
        (await api.request('PUT', pricePath('histco', model), { token: owner.token, body })).status,
      ).toBe(200);

    it('lists every change of both rows newest first, to any user, with the actor of each', async () => {
      const model = 'accounts/h/models/m@v1';
      // A default row written by hand in SQL: no actor named, so the database's.
      await api.sql(
        `INSERT INTO ai_model_prices (provider, model, source, input_price) VALUES ('histco', $1, 'default', 10)`,
        [model],
      );
      await put(model, VALID_BODY);
      await put(model, { ...VALID_BODY, input_price: 2_500_000, tiers: GPT_TIERS });
      await put(model, { ...VALID_BODY, input_price: 2_500_000, tiers: GPT_TIERS }); // no change
      expect((await api.request('DELETE', pricePath('histco', model), { token: owner.token })).status).toBe(
        204,
      );

      const res = await history(historyPath('histco', model));
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['changes', 'count']);
      expect(res.body.count).toBe(4);
      const [deleted, changed, created, seeded] = res.body.changes;
      expect(Object.keys(deleted).sort()).toEqual(['actor', 'after', 'before', 'changed_at', 'source']);
      expect(res.body.changes.map((c) => [c.source, c.actor])).toEqual([
        ['custom', owner.username],
        ['custom', owner.username],
        ['custom', owner.username],
        ['default', 'system:database'],
      ]);
      const first = { ...VALID_BODY, tiers: null };
      const second = { ...VALID_BODY, input_price: 2_500_000, tiers: GPT_TIERS };
      expect([deleted.before, deleted.after]).toEqual([second, null]);
      expect([changed.before, changed.after]).toEqual([first, second]);
      expect([created.before, created.after]).toEqual([null, first]);
      expect(seeded.after).toEqual({
        input_price: 10,
        output_price: null,
        cache_read_price: null,
        cache_write_price: null,
        tiers: null,
      });
      for (const c of res.body.changes) expect(new Date(c.changed_at).toISOString()).toBe(c.changed_at);
      expect(Date.parse(deleted.changed_at)).toBeGreaterThanOrEqual(Date.parse(seeded.changed_at));

      const paged = await history(`${historyPath('histco', model)}?limit=2&offset=1`, auditor);
      expect(paged.status).toBe(200);
      expect(paged.body.count).toBe(4);
      expect(paged.body.changes).toEqual([changed, created]);
    });

    it('keeps a model id that ends in /history apart from the history route', async () => {
      await put('x/history', VALID_BODY);
      await put('x', { ...VALID_BODY, input_price: 1 });
      // Encoded, `x/history` is a model: its price, and its own history.
      const price = await api.request<Price>('GET', pricePath('histco', 'x/history'), { token: plain.token });
      expect(price.status).toBe(200);
      expect(price.body).toMatchObject({ model: 'x/history', input_price: VALID_BODY.input_price });
      const own = await history(historyPath('histco', 'x/history'));
      expect(own.body.changes.map((c) => c.after?.input_price)).toEqual([VALID_BODY.input_price]);
      const ofX = await history(historyPath('histco', 'x'));
      expect(ofX.body.changes.map((c) => c.after?.input_price)).toEqual([1]);
      // More than one raw segment before /history is the wildcard's: a price lookup.
      const raw = await api.request<ErrorBody>('GET', `${PRICES}/histco/a/b/history`, { token: plain.token });
      expect(raw.status).toBe(404);
      expect(raw.body.message).toContain('histco/a/b/history');
    });

    it('answers 404 only when the model has neither history nor a price row', async () => {
      const none = await api.request<ErrorBody>('GET', historyPath('histco', 'never'), {
        token: plain.token,
      });
      expect(none.status).toBe(404);
      expect(none.body.message).toContain('histco/never');
      // A row older than the history: 200 with an empty list.
      await api.sql(
        `INSERT INTO ai_model_prices (provider, model, source, input_price) VALUES ('histco', 'old', 'default', 1)`,
      );
      await api.sql(`DELETE FROM ai_model_price_changes WHERE provider = 'histco' AND model = 'old'`);
      expect((await history(historyPath('histco', 'old'))).body).toEqual({ changes: [], count: 0 });
      // A model whose only row was deleted: no price, but its history.
      await put('gone', VALID_BODY);
      expect((await api.request('DELETE', pricePath('histco', 'gone'), { token: owner.token })).status).toBe(
        204,
      );
      expect((await api.request('GET', pricePath('histco', 'gone'), { token: plain.token })).status).toBe(
        404,
      );
      const gone = await history(historyPath('histco', 'gone'));
      expect(gone.status).toBe(200);
      expect(gone.body.changes.map((c) => c.after === null)).toEqual([true, false]);
    });

    it('answers 401 without a token and 400 for a bad page, an unknown parameter or a bad path', async () => {
      expect((await api.request('GET', historyPath('histco', 'x'))).status).toBe(401);
      for (const [query, field] of [
        ['limit=0', 'limit'],
        ['offset=-1', 'offset'],
        ['limit=1.5', 'limit'],
        ['source=custom', 'source'],
      ]) {
        const res = await api.request('GET', `${historyPath('histco', 'x')}?${query}`, {
          token: plain.token,
        });
        expect([query, res.status, fields(res.body)]).toEqual([query, 400, [field]]);
      }
      const badProvider = await api.request('GET', historyPath('HistCo', 'x'), { token: plain.token });
      expect([badProvider.status, fields(badProvider.body)]).toEqual([400, ['provider']]);
      const badModel = await api.request('GET', historyPath('histco', 'x\u0001'), { token: plain.token });
      expect([badModel.status, fields(badModel.body)]).toEqual([400, ['model']]);
    });
  });

  describe('POST /ai/model-prices/sync with NATS disabled', () => {
    it('answers 503 to an owner and 403 to anyone else', async () => {
      const res = await api.request<ErrorBody>('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/NATS is disabled/);
      expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
      for (const who of [plain, auditor, userAdmin]) {
        const denied = await api.request('POST', `${PRICES}/sync`, {
          token: who.token,
          body: { source: 'embedded' },
        });
        expect(denied.status).toBe(403);
      }
      expect((await api.request('POST', `${PRICES}/sync`, { body: { source: 'embedded' } })).status).toBe(
        401,
      );
    });

    it.each([
      [{ source: 'models.dev' }, 'source'],
      [{}, 'source'],
      [{ source: 'embedded', url: 'http://evil.example' }, 'url'],
      [{ source: 1 }, 'source'],
    ])('answers 400 for %j naming %s', async (body, field) => {
      const res = await api.request('POST', `${PRICES}/sync`, { token: owner.token, body });
      expect(res.status).toBe(400);
      expect(fields(res.body)).toEqual([field]);
    });
  });
});

describe('POST /ai/model-prices/sync over NATS (real nats-server)', () => {
  let nats: TestNatsServer;
  let api: ApiHarness;
  let nc: NatsConnection;
  let owner: Person;
  let plain: Person;

  /** A stand-in pricing worker in the real queue group; answers with `reply` and records what came. */
  function responder(reply: ((msg: Msg) => unknown) | null): { sub: Subscription; seen: Msg[] } {
    const seen: Msg[] = [];
    const sub = nc.subscribe('pricing.sync', {
      queue: 'pricing-worker',
      callback: (_err, msg) => {
        seen.push(msg);
        if (reply) msg.respond(JSON.stringify(reply(msg)));
      },
    });
    return { sub, seen };
  }

  beforeAll(async () => {
    nats = await startNatsServer();
    api = await ApiHarness.start({ NATS_ENABLED: 'true', NATS_URL: nats.url });
    nc = await connect({ servers: nats.url });
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
    plain = await world.person(owner, 'plain', { orgs: [{ id: boot.defaultOrg }] });
  });

  afterAll(async () => {
    await nc.close();
    await api.close();
    await nats.stop();
  });

  it('relays the worker data with 200, sending the bare request and the request id header', async () => {
    const data = { source: 'upstream', total: 80, inserted: 3, updated: 2, unchanged: 75, duration_ms: 12 };
    const { sub, seen } = responder(() => ({ ok: true, data }));
    await nc.flush();
    try {
      const res = await api.request('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'upstream' },
        headers: { 'x-request-id': 'sync-req-42' },
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(data);
      expect(seen).toHaveLength(1);
      expect(seen[0].headers?.get('X-Request-Id')).toBe('sync-req-42');
      expect(JSON.parse(seen[0].string())).toEqual({ source: 'upstream' });
    } finally {
      sub.unsubscribe();
    }
  });

  it('answers 403 to a non-owner without asking the worker', async () => {
    const { sub, seen } = responder(() => ({ ok: true, data: {} }));
    await nc.flush();
    try {
      const res = await api.request('POST', `${PRICES}/sync`, {
        token: plain.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(403);
      expect(seen).toHaveLength(0);
    } finally {
      sub.unsubscribe();
    }
  });

  it('answers 502 with the worker error when it replies ok: false', async () => {
    const { sub } = responder(() => ({
      ok: false,
      error: { code: 'upstream_error', message: 'models.dev answered 500' },
    }));
    await nc.flush();
    try {
      const res = await api.request<ErrorBody>('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'upstream' },
      });
      expect(res.status).toBe(502);
      expect(res.body.message).toContain('models.dev answered 500');
      expect(res.body.detail).toContain('upstream_error');
      expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
    } finally {
      sub.unsubscribe();
    }
  });

  it('answers 502 when the reply is not an envelope', async () => {
    const { sub } = responder(() => ['not', 'an', 'envelope']);
    await nc.flush();
    try {
      const res = await api.request<ErrorBody>('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(502);
      expect(res.body.message).toMatch(/unreadable reply/);
    } finally {
      sub.unsubscribe();
    }
  });

  it('answers 503 at once when no worker is subscribed (no responders)', async () => {
    const started = Date.now();
    const res = await api.request<ErrorBody>('POST', `${PRICES}/sync`, {
      token: owner.token,
      body: { source: 'embedded' },
    });
    expect(res.status).toBe(503);
    expect(res.body.message).toMatch(/No pricing worker/);
    // Half the 30 s default sync timeout: generous for a loaded machine, and waiting out the
    // timeout instead of failing at once still fails here.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('answers 503 when the worker does not answer within the timeout', async () => {
    const options = api.app.get<BudgetApiOptions>(BUDGET_API_OPTIONS);
    const saved = options.priceSyncTimeoutMs;
    options.priceSyncTimeoutMs = 300;
    const { sub, seen } = responder(null);
    await nc.flush();
    try {
      const started = Date.now();
      const res = await api.request<ErrorBody>('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/did not answer within 300 ms/);
      expect(seen).toHaveLength(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      // The 300 ms set above, not the 30 s default (with room for a loaded machine).
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      options.priceSyncTimeoutMs = saved;
      sub.unsubscribe();
    }
  });

  it('reaches the real pricing worker, which seeds the shared database', async () => {
    const logger = createLogger('pricing-worker', 'silent');
    const metrics = new Metrics('pricing-worker');
    let worker: INestApplication | null = null;
    try {
      worker = await startApp({
        name: 'pricing-worker',
        module: PricingWorkerModule.forRoot({
          config: loadConfig({ DATABASE_URL: api.db.url, NATS_URL: nats.url, DATABASE_POOL_SIZE: '2' }),
          logger,
          metrics,
          readiness: new Readiness(),
        }),
        port: 0,
        logger,
        metrics,
        nats: { connection: loadConfig({ NATS_URL: nats.url }).nats, queue: 'pricing-worker' },
      });
      const res = await api.request<Record<string, unknown>>('POST', `${PRICES}/sync`, {
        token: owner.token,
        body: { source: 'embedded' },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ source: 'embedded', inserted: 0, updated: 0 });
      expect(res.body.total).toBe(res.body.unchanged);
      expect(typeof res.body.duration_ms).toBe('number');
      const list = await api.request<{ count: number }>('GET', `${PRICES}?source=default&limit=1`, {
        token: plain.token,
      });
      expect(list.body.count).toBe(res.body.total);
    } finally {
      await worker?.close();
    }
  });
});
