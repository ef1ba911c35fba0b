import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { PriceBookRepository } from '@aigov/db';
import {
  startNatsServer,
  startPrivatePostgres,
  type PrivatePostgres,
  type TestNatsServer,
} from '@aigov/testing';
import { readEmbeddedSeed } from '../apps/pricing-worker/src/pricing/embedded-seed';
import { periodOf } from '../apps/budget-api/src/spend/period';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// Spend and enforcement over HTTP and NATS (CONTRACT 2.5, 4.3, 7) on real PostgreSQL and a real
// nats-server: who may enforce and read, the check rule, reservations, usage with exact cost
// from the committed price seed, strict bodies, the feature switch and a database outage.

const MISSING_UUID = '00000000-0000-4000-8000-000000000000';
const DISABLED = 'AI budgets are disabled on this deployment.';
const CHECK = '/api/v2/ai/budget/check';
const RESERVE = '/api/v2/ai/budget/reserve';
const RELEASE = '/api/v2/ai/budget/release';
const USAGE = '/api/v2/ai/usage';
/** Committed seed: 0.25 / 1.25 / 0.03 / 0.30 USD per million (input, output, cache read, cache write). */
const HAIKU = { provider: 'anthropic', model: 'claude-3-haiku-20240307' };
/** Committed seed: 15 / 75 / 1.5 / 18.75 USD per million. */
const OPUS = { provider: 'anthropic', model: 'claude-3-opus-20240229' };

interface ErrorBody {
  message: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

interface CheckBody {
  allowed: boolean;
  reason?: string;
  limit_source: string | null;
  spend_limit_micros: number | null;
  spent_micros: number;
  held_micros: number;
  remaining_micros: number | null;
  effective_group_id: string | null;
  period_start: string;
  period_end: string;
}

interface ReserveBody extends CheckBody {
  reservation_id?: string;
  amount_micros: number;
  expires_at?: string;
  duplicate?: boolean;
}

interface UsageBody {
  request_id: string;
  cost_micros: number | null;
  price_source: string | null;
  effective_group_id: string | null;
  duplicate: boolean;
  reservation_settled: boolean;
}

interface Candidate {
  rank: number;
  kind: string;
  group_id: string | null;
  organization_id: string | null;
  spend_limit_micros: number;
  member_since: string | null;
}

interface ExplainBody {
  user_id: string;
  user_status: string;
  rule: string;
  decision: string;
  candidates: Candidate[];
  winner: Candidate | null;
  limit_source: string | null;
  spend_limit_micros: number | null;
  effective_group_id: string | null;
  period_start: string;
  period_end: string;
}

type Envelope<T> = { ok: true; data: T } | { ok: false; error: { code: string; message: string } };

const fields = (res: ApiResponse<unknown>) => (res.body as ErrorBody).validations.map((v) => v.field);

function currentPeriod() {
  const p = periodOf('month', new Date());
  return { period_start: p.start.toISOString(), period_end: p.end.toISOString(), start: p.start };
}

async function seedPrices(api: ApiHarness): Promise<void> {
  const repo = new PriceBookRepository(api.app.get(DataSource));
  await repo.upsertDefaultPrices(await readEmbeddedSeed(), {
    actor: 'system:pricing-worker',
    source: 'embedded',
    requestId: null,
  });
}

async function natsRequest<T>(nc: NatsConnection, subject: string, body: unknown): Promise<Envelope<T>> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return JSON.parse((await nc.request(subject, data, { timeout: 10_000 })).string()) as Envelope<T>;
}

describe('spend and enforcement over HTTP and NATS (real PostgreSQL and nats-server)', () => {
  let nats: TestNatsServer;
  let api: ApiHarness;
  let nc: NatsConnection;
  let world: World;
  let owner: Person;
  let gateway: Person;
  /** Org A: alice in eng (1.00 USD) and Everyone A (0.50 USD); frank in eng too. */
  let alice: Person;
  let frank: Person;
  /** A plain member of A, in no group. */
  let memberA: Person;
  /** Override of 0 on Everyone A. */
  let bob: Person;
  /** Suspended. */
  let carol: Person;
  /** Org B only, in no budgeted group: no limit. */
  let dave: Person;
  /** Member of A and B; the b-team budget (2.00 USD) wins, in an organization A's admin cannot see. */
  let erin: Person;
  /** Org A, alone in the `race` group (1.00 USD). */
  let gina: Person;
  let orgAdminA: Person;
  let orgAdminB: Person;
  let memberB: Person;
  let orgA: string;
  let orgB: string;
  let eng: string;
  let bTeam: string;
  let seq = 0;
  const rid = (p: string) => `${p}-${process.pid}-${++seq}`;

  const call = <T>(method: string, path: string, who: Person | null, body?: unknown) =>
    api.call<T>(method, path, who, body);
  const check = (who: Person | null, body: unknown) => call<CheckBody & ErrorBody>('POST', CHECK, who, body);
  const reserve = (who: Person | null, body: unknown) =>
    call<ReserveBody & ErrorBody>('POST', RESERVE, who, body);
  const release = (who: Person | null, body: unknown) =>
    call<{ released: boolean } & ErrorBody>('POST', RELEASE, who, body);
  const usage = (who: Person | null, body: unknown) => call<UsageBody & ErrorBody>('POST', USAGE, who, body);

  beforeAll(async () => {
    nats = await startNatsServer();
    api = await ApiHarness.start({ NATS_ENABLED: 'true', NATS_URL: nats.url, UNPRICED_USAGE: 'block' });
    await seedPrices(api);
    nc = await connect({ servers: nats.url });
    world = new World(api);
    ({ owner } = await world.bootstrap());
    orgA = await world.organization('org-a');
    orgB = await world.organization('org-b');
    gateway = await world.person(owner, 'gateway', { siteRoles: ['ai-gateway'] });
    alice = await world.person(owner, 'alice', { orgs: [{ id: orgA }] });
    frank = await world.person(owner, 'frank', { orgs: [{ id: orgA }] });
    memberA = await world.person(owner, 'member-a', { orgs: [{ id: orgA }] });
    bob = await world.person(owner, 'bob', { orgs: [{ id: orgA }] });
    carol = await world.person(owner, 'carol', { orgs: [{ id: orgA }] });
    dave = await world.person(owner, 'dave', { orgs: [{ id: orgB }] });
    erin = await world.person(owner, 'erin', { orgs: [{ id: orgA }, { id: orgB }] });
    orgAdminA = await world.person(owner, 'org-admin-a', {
      orgs: [{ id: orgA, roles: ['organization-admin'] }],
    });
    orgAdminB = await world.person(owner, 'org-admin-b', {
      orgs: [{ id: orgB, roles: ['organization-admin'] }],
    });
    memberB = await world.person(owner, 'member-b', { orgs: [{ id: orgB }] });
    gina = await world.person(owner, 'gina', { orgs: [{ id: orgA }] });
    const race = await world.group(orgA, 'race', [gina.id]);
    eng = await world.group(orgA, 'eng', [alice.id, frank.id]);
    bTeam = await world.group(orgB, 'b-team', [erin.id, memberB.id]);
    for (const [group, limit] of [
      [eng, 1_000_000],
      [orgA, 500_000],
      [bTeam, 2_000_000],
      [race, 1_000_000],
    ] as const) {
      const res = await call('PUT', `/api/v2/groups/${group}/ai/budget`, owner, {
        spend_limit_micros: limit,
      });
      expect(res.status).toBe(200);
    }
    const override = await call('PUT', `/api/v2/users/${bob.id}/ai/budget`, owner, {
      group_id: orgA,
      spend_limit_micros: 0,
    });
    expect(override.status).toBe(200);
    const suspended = await call('PUT', `/api/v2/users/${carol.id}/status`, owner, { status: 'suspended' });
    expect(suspended.status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await api?.close();
    await nats?.stop();
  });

  describe('who may enforce', () => {
    it('ai-gateway and owner may; plain users and organization admins get 403; no token 401', async () => {
      const body = { user_id: alice.id };
      for (const who of [gateway, owner]) {
        for (const [path, b] of [
          [CHECK, body],
          [RELEASE, { reservation_id: MISSING_UUID }],
        ] as const) {
          const res = await call('POST', path, who, b);
          expect({ path, status: res.status }).toEqual({ path, status: path === RELEASE ? 404 : 200 });
        }
      }
      for (const who of [alice, memberA, orgAdminA]) {
        for (const [path, b] of [
          [CHECK, body],
          [RESERVE, { request_id: rid('denied'), user_id: alice.id, amount_micros: 1 }],
          [RELEASE, { reservation_id: MISSING_UUID }],
          [
            USAGE,
            { request_id: rid('denied'), user_id: alice.id, ...HAIKU, input_tokens: 1, output_tokens: 1 },
          ],
        ] as const) {
          const res = await call<ErrorBody>('POST', path, who, b);
          expect({ who: who.username, path, status: res.status }).toEqual({
            who: who.username,
            path,
            status: 403,
          });
          expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
        }
      }
      expect((await check(null, body)).status).toBe(401);
      // Nothing of the refused requests was kept.
      const [n] = await api.sql<{ n: number }>(
        `SELECT (SELECT count(*) FROM ai_usage) + (SELECT count(*) FROM ai_reservations) AS n`,
      );
      expect(Number(n.n)).toBe(0);
    });
  });

  describe('check, reserve, release and usage', () => {
    it('checks a user by the group budget with the highest limit, for the current month', async () => {
      const res = await check(gateway, { user_id: alice.id });
      expect(res.status).toBe(200);
      const { period_start, period_end } = currentPeriod();
      expect(res.body).toEqual({
        allowed: true,
        limit_source: 'group',
        spend_limit_micros: 1_000_000,
        spent_micros: 0,
        held_micros: 0,
        remaining_micros: 1_000_000,
        effective_group_id: eng,
        period_start,
        period_end,
      });
    });

    it('reserves, replays a granted reservation, refuses what does not fit and settles by usage', async () => {
      const r1 = rid('r1');
      const first = await reserve(gateway, { request_id: r1, user_id: alice.id, amount_micros: 400_000 });
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({
        allowed: true,
        amount_micros: 400_000,
        held_micros: 400_000,
        remaining_micros: 600_000,
        effective_group_id: eng,
      });
      expect(first.body.reservation_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(first.body.expires_at!) - Date.now()).toBeGreaterThan(500_000);
      expect(first.body.duplicate).toBeUndefined();

      const replay = await reserve(owner, { request_id: r1, user_id: alice.id, amount_micros: 400_000 });
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({
        allowed: true,
        duplicate: true,
        reservation_id: first.body.reservation_id,
        held_micros: 400_000,
      });

      expect((await check(gateway, { user_id: alice.id, amount_micros: 600_000 })).body.allowed).toBe(true);
      const tooMuch = await check(gateway, { user_id: alice.id, amount_micros: 600_001 });
      expect(tooMuch.body).toMatchObject({
        allowed: false,
        reason: 'insufficient_budget',
        remaining_micros: 600_000,
      });

      const r2 = rid('r2');
      const denied = await reserve(gateway, { request_id: r2, user_id: alice.id, amount_micros: 700_000 });
      expect(denied.status).toBe(200);
      expect(denied.body).toMatchObject({
        allowed: false,
        reason: 'insufficient_budget',
        amount_micros: 700_000,
        held_micros: 400_000,
      });
      expect(denied.body.reservation_id).toBeUndefined();

      // Usage settles the hold at the real cost: 1000 x 0.25 + 1000 x 1.25 micros.
      const u1 = rid('u1');
      const used = await usage(gateway, {
        request_id: u1,
        user_id: alice.id,
        ...HAIKU,
        input_tokens: 1000,
        output_tokens: 1000,
        reservation_id: first.body.reservation_id,
      });
      expect(used.status).toBe(200);
      expect(used.body).toEqual({
        request_id: u1,
        cost_micros: 1500,
        price_source: 'default',
        effective_group_id: eng,
        duplicate: false,
        reservation_settled: true,
      });
      const again = await usage(owner, {
        request_id: u1,
        user_id: alice.id,
        ...HAIKU,
        input_tokens: 5,
        output_tokens: 5,
      });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({
        request_id: u1,
        cost_micros: 1500,
        price_source: 'default',
        effective_group_id: eng,
        duplicate: true,
      });

      // The settled reservation is no longer held; the denied request id is evaluated afresh.
      expect((await release(gateway, { reservation_id: first.body.reservation_id })).body).toEqual({
        released: false,
      });
      const retried = await reserve(gateway, { request_id: r2, user_id: alice.id, amount_micros: 700_000 });
      expect(retried.body).toMatchObject({ allowed: true, held_micros: 700_000, spent_micros: 1500 });
      const rel = await release(gateway, { reservation_id: retried.body.reservation_id });
      expect(rel.status).toBe(200);
      expect(rel.body).toEqual({ released: true });
      expect((await release(gateway, { reservation_id: retried.body.reservation_id })).body).toEqual({
        released: false,
      });
      const unknown = await release(gateway, { reservation_id: MISSING_UUID });
      expect(unknown.status).toBe(404);

      const after = await check(gateway, { user_id: alice.id });
      expect(after.body).toMatchObject({ spent_micros: 1500, held_micros: 0, remaining_micros: 998_500 });
    });

    it('reserves the token form at the most expensive input kind and refuses an unpriced model (block)', async () => {
      // Haiku's cache-write price (0.30) is above its input price (0.25): 1000 x 0.30 + 1000 x 1.25.
      const priced = await reserve(gateway, {
        request_id: rid('tokens'),
        user_id: frank.id,
        ...HAIKU,
        max_input_tokens: 1000,
        max_output_tokens: 1000,
      });
      expect(priced.body).toMatchObject({ allowed: true, amount_micros: 1550, held_micros: 1550 });
      expect((await release(gateway, { reservation_id: priced.body.reservation_id })).body.released).toBe(
        true,
      );

      const unpriced = await reserve(gateway, {
        request_id: rid('unpriced'),
        user_id: frank.id,
        provider: 'acme',
        model: 'no-such-model',
        max_input_tokens: 10,
        max_output_tokens: 10,
      });
      expect(unpriced.status).toBe(200);
      expect(unpriced.body).toMatchObject({ allowed: false, reason: 'unpriced_model', amount_micros: 0 });
      expect(unpriced.body.reservation_id).toBeUndefined();
      const [held] = await api.sql<{ n: string }>(
        `SELECT count(*) AS n FROM ai_reservations WHERE user_id = $1 AND status = 'held'`,
        [frank.id],
      );
      expect(Number(held.n)).toBe(0);
    });

    it('denies a limit of 0 (limit_reached), a suspended user and an unknown user', async () => {
      const zero = await check(gateway, { user_id: bob.id });
      expect(zero.body).toMatchObject({
        allowed: false,
        reason: 'limit_reached',
        limit_source: 'user_override',
        spend_limit_micros: 0,
        remaining_micros: 0,
        effective_group_id: orgA,
      });
      const zeroReserve = await reserve(gateway, {
        request_id: rid('zero'),
        user_id: bob.id,
        amount_micros: 0,
      });
      expect(zeroReserve.body).toMatchObject({ allowed: false, reason: 'limit_reached' });

      expect((await check(gateway, { user_id: carol.id })).body).toMatchObject({
        allowed: false,
        reason: 'user_suspended',
      });
      expect(
        (await reserve(gateway, { request_id: rid('susp'), user_id: carol.id, amount_micros: 1 })).body,
      ).toMatchObject({ allowed: false, reason: 'user_suspended' });
      expect((await check(gateway, { user_id: MISSING_UUID })).body).toMatchObject({
        allowed: false,
        reason: 'unknown_user',
        spend_limit_micros: null,
        remaining_micros: null,
      });
    });

    it('without a limit everything is allowed and remaining is null', async () => {
      expect((await check(gateway, { user_id: dave.id, amount_micros: 999_999_999 })).body).toMatchObject({
        allowed: true,
        limit_source: null,
        spend_limit_micros: null,
        remaining_micros: null,
        effective_group_id: orgB,
      });
    });

    it('prices usage exactly from the committed seed: all four token kinds (golden case)', async () => {
      // ceil((1234 x 15 + 567 x 75 + 8901 x 1.5 + 2345 x 18.75) micros) = ceil(118355.25)
      const request_id = rid('golden');
      const res = await usage(gateway, {
        request_id,
        user_id: dave.id,
        ...OPUS,
        input_tokens: 1234,
        output_tokens: 567,
        cache_read_tokens: 8901,
        cache_write_tokens: 2345,
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        request_id,
        cost_micros: 118_356,
        price_source: 'default',
        effective_group_id: orgB,
        duplicate: false,
        reservation_settled: false,
      });
      const [row] = await api.sql<Record<string, string>>(
        `SELECT input_price::text, output_price::text, cache_read_price::text, cache_write_price::text,
                cost_micros::text FROM ai_usage WHERE request_id = $1`,
        [request_id],
      );
      expect(row).toEqual({
        input_price: '15000000',
        output_price: '75000000',
        cache_read_price: '1500000',
        cache_write_price: '18750000',
        cost_micros: '118356',
      });
      // An unpriced model is recorded at cost null (blocking applies to reservations).
      const unpriced = await usage(gateway, {
        request_id: rid('unpriced-usage'),
        user_id: dave.id,
        provider: 'acme',
        model: 'no-such-model',
        input_tokens: 10,
        output_tokens: 10,
      });
      expect(unpriced.body).toMatchObject({ cost_micros: null, price_source: null, duplicate: false });
    });
  });

  describe('strict bodies', () => {
    const expect400 = (res: ApiResponse<unknown>, field: string, detail?: RegExp) => {
      expect(res.status).toBe(400);
      expect(fields(res)).toContain(field);
      expect((res.body as ErrorBody).message).toContain(field);
      if (detail) {
        expect((res.body as ErrorBody).validations.find((v) => v.field === field)?.detail).toMatch(detail);
      }
    };

    it('names unknown fields, wrong types, fractions and out-of-range numbers', async () => {
      expect400(await check(gateway, { user_id: alice.id, foo: 1 }), 'foo', /not a field/);
      expect400(await check(gateway, { user_id: alice.id, amount_micros: '100' }), 'amount_micros');
      expect400(await check(gateway, { user_id: alice.id, amount_micros: 1.5 }), 'amount_micros');
      expect400(await check(gateway, { user_id: alice.id, amount_micros: -1 }), 'amount_micros');
      expect400(await check(gateway, { user_id: alice.id, amount_micros: null }), 'amount_micros');
      expect400(await check(gateway, { user_id: 'alice' }), 'user_id', /uuid/);
      const huge = await api.request('POST', CHECK, {
        token: gateway.token,
        rawBody: `{"user_id": "${alice.id}", "amount_micros": 1e30}`,
      });
      expect400(huge, 'amount_micros');
      // Above the configured maximum spend limit, although a safe integer.
      expect400(
        await check(gateway, { user_id: alice.id, amount_micros: 1_000_000_000_001 }),
        'amount_micros',
        /exceed/,
      );
      // 1e3 is the integer 1000.
      const exp = await api.request<CheckBody>('POST', CHECK, {
        token: gateway.token,
        rawBody: `{"user_id": "${alice.id}", "amount_micros": 1e3}`,
      });
      expect(exp.status).toBe(200);
    });

    it('refuses a reservation with both forms, with neither, or with too many tokens', async () => {
      const both = await reserve(gateway, {
        request_id: rid('both'),
        user_id: alice.id,
        amount_micros: 10,
        ...HAIKU,
        max_input_tokens: 1,
        max_output_tokens: 1,
      });
      expect(both.status).toBe(400);
      expect(fields(both)).toEqual(['provider', 'model', 'max_input_tokens', 'max_output_tokens']);
      expect400(await reserve(gateway, { request_id: rid('neither'), user_id: alice.id }), 'amount_micros');
      expect400(
        await reserve(gateway, { request_id: rid('half'), user_id: alice.id, ...HAIKU, max_input_tokens: 1 }),
        'max_output_tokens',
      );
      expect400(
        await reserve(gateway, {
          request_id: rid('many'),
          user_id: alice.id,
          ...HAIKU,
          max_input_tokens: 10 ** 12 + 1,
          max_output_tokens: 1,
        }),
        'max_input_tokens',
        /exceed/,
      );
      expect400(
        await reserve(gateway, {
          request_id: rid('ttl'),
          user_id: alice.id,
          amount_micros: 1,
          ttl_seconds: 0,
        }),
        'ttl_seconds',
      );
      expect400(
        await reserve(gateway, { request_id: '', user_id: alice.id, amount_micros: 1 }),
        'request_id',
      );
      // null is not "absent": refused, never taken for 0.
      expect400(
        await reserve(gateway, {
          request_id: rid('null'),
          user_id: alice.id,
          ...HAIKU,
          max_input_tokens: null,
          max_output_tokens: 1,
        }),
        'max_input_tokens',
      );
      expect400(
        await reserve(gateway, { request_id: rid('null'), user_id: alice.id, amount_micros: null }),
        'amount_micros',
      );
      expect400(await release(gateway, { reservation_id: 'nope' }), 'reservation_id');
    });

    it('refuses usage with too many tokens or an occurred_at outside the window, keeping nothing', async () => {
      const base = { user_id: alice.id, ...HAIKU, input_tokens: 1, output_tokens: 1 };
      expect400(
        await usage(gateway, { ...base, request_id: rid('tok'), input_tokens: 10 ** 12 + 1 }),
        'input_tokens',
      );
      expect400(
        await usage(gateway, { ...base, request_id: rid('tok'), cache_read_tokens: 'x' }),
        'cache_read_tokens',
      );
      for (const field of ['cache_write_tokens', 'occurred_at', 'reservation_id']) {
        expect400(await usage(gateway, { ...base, request_id: rid('null'), [field]: null }), field);
      }
      const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
      const tooOld = rid('old');
      expect400(await usage(gateway, { ...base, request_id: tooOld, occurred_at: old }), 'occurred_at');
      const ahead = new Date(Date.now() + 10 * 60_000).toISOString();
      expect400(
        await usage(gateway, { ...base, request_id: rid('ahead'), occurred_at: ahead }),
        'occurred_at',
      );
      expect400(
        await usage(gateway, { ...base, request_id: rid('fmt'), occurred_at: 'yesterday' }),
        'occurred_at',
      );
      const [n] = await api.sql<{ n: string }>('SELECT count(*) AS n FROM ai_usage WHERE request_id = $1', [
        tooOld,
      ]);
      expect(Number(n.n)).toBe(0);
    });
  });

  describe('reports', () => {
    it('user spend: readers of the user; others 404', async () => {
      const { period_start, period_end } = currentPeriod();
      for (const who of [alice, owner, orgAdminA]) {
        const res = await call('GET', `/api/v2/users/${alice.username}/ai/spend`, who);
        expect({ who: who.username, status: res.status }).toEqual({ who: who.username, status: 200 });
        expect(res.body).toEqual({
          user_id: alice.id,
          effective_group_id: eng,
          limit_source: 'group',
          spend_limit_micros: 1_000_000,
          spent_micros: 1500,
          held_micros: 0,
          remaining_micros: 998_500,
          period_start,
          period_end,
        });
      }
      expect((await call('GET', '/api/v2/users/me/ai/spend', alice)).body).toMatchObject({
        user_id: alice.id,
      });
      for (const who of [memberA, orgAdminB, gateway]) {
        const res = await call('GET', `/api/v2/users/${alice.id}/ai/spend`, who);
        expect({ who: who.username, status: res.status }).toEqual({ who: who.username, status: 404 });
      }
      expect((await call('GET', `/api/v2/users/${MISSING_UUID}/ai/spend`, owner)).status).toBe(404);
      expect((await call('GET', `/api/v2/users/Not%20A%20User/ai/spend`, owner)).status).toBe(400);
    });

    it('counts usage in the period of its occurred_at', async () => {
      const { start } = currentPeriod();
      const lastPeriod = new Date(start.getTime() - 3_600_000).toISOString();
      const res = await usage(gateway, {
        request_id: rid('previous-period'),
        user_id: alice.id,
        ...HAIKU,
        input_tokens: 1000,
        output_tokens: 0,
        occurred_at: lastPeriod,
      });
      expect(res.body).toMatchObject({ cost_micros: 250, effective_group_id: eng });
      expect((await call('GET', `/api/v2/users/${alice.id}/ai/spend`, alice)).body).toMatchObject({
        spent_micros: 1500,
      });
      expect((await call('GET', `/api/v2/groups/${eng}/ai/spend`, alice)).body).toMatchObject({
        spent_micros: 1500,
      });
    });

    it('explain: the candidates, the rule and the winner', async () => {
      const { period_start, period_end } = currentPeriod();
      const res = await call<ExplainBody>('GET', `/api/v2/users/${alice.id}/ai/budget/explain`, alice);
      expect(res.status).toBe(200);
      const engCandidate = {
        rank: 1,
        kind: 'group',
        group_id: eng,
        organization_id: orgA,
        spend_limit_micros: 1_000_000,
        member_since: expect.any(String) as unknown,
      };
      expect(res.body).toEqual({
        user_id: alice.id,
        user_status: 'active',
        rule: expect.stringMatching(/override.*highest spend_limit_micros.*no limit/s) as unknown,
        decision: 'The budgeted group with the highest limit applies.',
        candidates: [engCandidate, { ...engCandidate, rank: 2, group_id: orgA, spend_limit_micros: 500_000 }],
        winner: engCandidate,
        limit_source: 'group',
        spend_limit_micros: 1_000_000,
        effective_group_id: eng,
        spent_micros: 1500,
        held_micros: 0,
        remaining_micros: 998_500,
        period_start,
        period_end,
      });

      const overridden = await call<ExplainBody>(
        'GET',
        `/api/v2/users/${bob.id}/ai/budget/explain`,
        orgAdminA,
      );
      expect(overridden.body).toMatchObject({
        decision: "The user's override applies; group budgets are not considered.",
        winner: { rank: 1, kind: 'user_override', group_id: orgA, spend_limit_micros: 0 },
        limit_source: 'user_override',
      });
      expect(overridden.body.candidates.map((c) => c.kind)).toEqual(['user_override', 'group']);

      const unlimited = await call<ExplainBody>('GET', `/api/v2/users/${dave.id}/ai/budget/explain`, dave);
      expect(unlimited.body).toMatchObject({
        candidates: [],
        winner: null,
        limit_source: null,
        spend_limit_micros: null,
        effective_group_id: orgB,
        decision: 'No override and no budgeted group: no limit applies.',
      });

      const suspended = await call<ExplainBody>('GET', `/api/v2/users/${carol.id}/ai/budget/explain`, owner);
      expect(suspended.body.user_status).toBe('suspended');

      for (const who of [memberA, orgAdminB]) {
        expect((await call('GET', `/api/v2/users/${alice.id}/ai/budget/explain`, who)).status).toBe(404);
      }
    });

    it('explain withholds the groups of organizations an organization admin cannot see', async () => {
      const full = await call<ExplainBody>('GET', `/api/v2/users/${erin.id}/ai/budget/explain`, owner);
      expect(full.body.candidates.map((c) => [c.group_id, c.spend_limit_micros])).toEqual([
        [bTeam, 2_000_000],
        [orgA, 500_000],
      ]);
      expect(full.body.effective_group_id).toBe(bTeam);
      const redacted = await call<ExplainBody>(
        'GET',
        `/api/v2/users/${erin.id}/ai/budget/explain`,
        orgAdminA,
      );
      expect(redacted.status).toBe(200);
      expect(
        redacted.body.candidates.map((c) => [c.group_id, c.organization_id, c.spend_limit_micros]),
      ).toEqual([
        [null, null, 2_000_000],
        [orgA, orgA, 500_000],
      ]);
      expect(redacted.body.winner).toMatchObject({ group_id: null, spend_limit_micros: 2_000_000 });
      expect(redacted.body.effective_group_id).toBeNull();
    });

    it('group spend: limit, members and the spend attributed to the group this period', async () => {
      const { period_start, period_end } = currentPeriod();
      for (const who of [alice, frank, orgAdminA, owner]) {
        const res = await call('GET', `/api/v2/groups/${eng}/ai/spend`, who);
        expect({ who: who.username, status: res.status }).toEqual({ who: who.username, status: 200 });
        expect(res.body).toEqual({
          group_id: eng,
          spend_limit_micros: 1_000_000,
          members: 2,
          spent_micros: 1500,
          period_start,
          period_end,
        });
      }
      for (const who of [memberA, orgAdminB, memberB, gateway]) {
        const res = await call('GET', `/api/v2/groups/${eng}/ai/spend`, who);
        expect({ who: who.username, status: res.status }).toEqual({ who: who.username, status: 404 });
      }
      // Everyone A: every member of A may read it; bob's (zero) override attributes to it, unused.
      const everyone = await call('GET', `/api/v2/groups/${orgA}/ai/spend`, memberA);
      expect(everyone.body).toMatchObject({
        group_id: orgA,
        spend_limit_micros: 500_000,
        members: 8,
        spent_micros: 0,
      });
      // No budget: limit null; dave's usage (golden case) is attributed to Everyone B.
      await call('DELETE', `/api/v2/groups/${bTeam}/ai/budget`, owner);
      const b = await call('GET', `/api/v2/groups/${orgB}/ai/spend`, orgAdminB);
      expect(b.body).toMatchObject({ group_id: orgB, spend_limit_micros: null, spent_micros: 118_356 });
      const bt = await call('GET', `/api/v2/groups/${bTeam}/ai/spend`, memberB);
      expect(bt.body).toMatchObject({ spend_limit_micros: null, members: 2, spent_micros: 0 });
      await call('PUT', `/api/v2/groups/${bTeam}/ai/budget`, owner, { spend_limit_micros: 2_000_000 });
      expect((await call('GET', `/api/v2/groups/not-a-uuid/ai/spend`, owner)).status).toBe(400);
      expect((await call('GET', `/api/v2/groups/${MISSING_UUID}/ai/spend`, owner)).status).toBe(404);
    });

    it('documents the routes and their replies in the OpenAPI document', async () => {
      const doc = await api.request<{
        paths: Record<
          string,
          Record<
            string,
            { responses: Record<string, { content?: { 'application/json': { schema: { $ref: string } } } }> }
          >
        >;
      }>('GET', '/api/openapi.json');
      const schemaOf = (path: string, method: string) =>
        doc.body.paths[path]?.[method]?.responses['200']?.content?.['application/json'].schema.$ref;
      expect({
        check: schemaOf(CHECK, 'post'),
        reserve: schemaOf(RESERVE, 'post'),
        release: schemaOf(RELEASE, 'post'),
        usage: schemaOf(USAGE, 'post'),
        spend: schemaOf('/api/v2/users/{user}/ai/spend', 'get'),
        explain: schemaOf('/api/v2/users/{user}/ai/budget/explain', 'get'),
        group: schemaOf('/api/v2/groups/{group}/ai/spend', 'get'),
      }).toEqual({
        check: '#/components/schemas/BudgetCheckReply',
        reserve: '#/components/schemas/BudgetReserveReply',
        release: '#/components/schemas/BudgetReleaseReply',
        usage: '#/components/schemas/UsageReply',
        spend: '#/components/schemas/UserSpend',
        explain: '#/components/schemas/BudgetExplanation',
        group: '#/components/schemas/GroupSpend',
      });
    });
  });

  describe('over NATS (system:ai-gateway)', () => {
    it('checks, reserves, replays and releases with plain JSON envelopes', async () => {
      const checked = await natsRequest<CheckBody>(nc, 'aigov.budget.check', {
        user_id: frank.id,
        amount_micros: 5,
      });
      expect(checked).toEqual({
        ok: true,
        data: expect.objectContaining({
          allowed: true,
          spend_limit_micros: 1_000_000,
          effective_group_id: eng,
        }) as unknown,
      });
      expect(Object.keys(checked).sort()).toEqual(['data', 'ok']);

      const request_id = rid('nats');
      const reserved = await natsRequest<ReserveBody>(nc, 'aigov.budget.reserve', {
        request_id,
        user_id: frank.id,
        amount_micros: 250_000,
      });
      if (!reserved.ok) throw new Error(JSON.stringify(reserved));
      expect(reserved.data).toMatchObject({ allowed: true, amount_micros: 250_000, held_micros: 250_000 });
      const replay = await natsRequest<ReserveBody>(nc, 'aigov.budget.reserve', {
        request_id,
        user_id: frank.id.toUpperCase(),
        amount_micros: 250_000,
      });
      expect(replay).toMatchObject({
        ok: true,
        data: { duplicate: true, reservation_id: reserved.data.reservation_id },
      });
      // Seen over HTTP too: the same ledger.
      expect((await check(gateway, { user_id: frank.id })).body.held_micros).toBe(250_000);

      const big = await natsRequest<ReserveBody>(nc, 'aigov.budget.reserve', {
        request_id: rid('nats-big'),
        user_id: frank.id,
        amount_micros: 750_001,
      });
      expect(big).toMatchObject({ ok: true, data: { allowed: false, reason: 'insufficient_budget' } });

      const id = reserved.data.reservation_id;
      expect(await natsRequest(nc, 'aigov.budget.release', { reservation_id: id })).toEqual({
        ok: true,
        data: { released: true },
      });
      expect(await natsRequest(nc, 'aigov.budget.release', { reservation_id: id })).toEqual({
        ok: true,
        data: { released: false },
      });
      expect(await natsRequest(nc, 'aigov.budget.release', { reservation_id: MISSING_UUID })).toEqual({
        ok: false,
        error: { code: 'not_found', message: expect.stringMatching(/reservation/i) as unknown },
      });
    });

    it('denies like HTTP: suspended, unknown, limit 0, unpriced model', async () => {
      const reasons: (string | undefined)[] = [];
      for (const body of [{ user_id: carol.id }, { user_id: MISSING_UUID }, { user_id: bob.id }]) {
        const r = await natsRequest<CheckBody>(nc, 'aigov.budget.check', body);
        reasons.push(r.ok ? r.data.reason : r.error.code);
      }
      expect(reasons).toEqual(['user_suspended', 'unknown_user', 'limit_reached']);
      const unpriced = await natsRequest<ReserveBody>(nc, 'aigov.budget.reserve', {
        request_id: rid('nats-unpriced'),
        user_id: frank.id,
        provider: 'acme',
        model: 'no-such-model',
        max_input_tokens: 1,
        max_output_tokens: 1,
      });
      expect(unpriced).toMatchObject({ ok: true, data: { allowed: false, reason: 'unpriced_model' } });
    });

    it('grants concurrent reservations over HTTP and NATS exactly up to the limit', async () => {
      // 25 requests of 0.10 USD against a limit of 1.00 USD, half over each transport, at once.
      const attempts = Array.from({ length: 25 }, (_, i) => {
        const body = { request_id: rid('race'), user_id: gina.id, amount_micros: 100_000 };
        return i % 2 === 0
          ? reserve(gateway, body).then((r) => r.body)
          : natsRequest<ReserveBody>(nc, 'aigov.budget.reserve', body).then((r) => {
              if (!r.ok) throw new Error(JSON.stringify(r));
              return r.data;
            });
      });
      const replies = await Promise.all(attempts);
      const granted = replies.filter((r) => r.allowed);
      expect(granted).toHaveLength(10);
      expect(new Set(granted.map((r) => r.reservation_id)).size).toBe(10);
      expect(replies.filter((r) => !r.allowed).map((r) => r.reason)).toEqual(Array(15).fill('limit_reached'));
      expect((await check(gateway, { user_id: gina.id })).body).toMatchObject({
        held_micros: 1_000_000,
        remaining_micros: 0,
      });
      await Promise.all(granted.map((r) => release(gateway, { reservation_id: r.reservation_id })));
      expect((await check(gateway, { user_id: gina.id })).body.held_micros).toBe(0);
    });

    it('records usage of a user it does not know (history outlives users), attributed to no group', async () => {
      const request_id = rid('ghost');
      const res = await usage(gateway, {
        request_id,
        user_id: MISSING_UUID,
        ...HAIKU,
        input_tokens: 1000,
        output_tokens: 0,
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ request_id, cost_micros: 250, effective_group_id: null });
    });

    it('answers invalid_argument naming the fields, also for what is not JSON', async () => {
      const invalid = async (subject: string, body: unknown) => {
        const r = await natsRequest(nc, subject, body);
        if (r.ok) throw new Error(`accepted ${JSON.stringify(body)}`);
        expect(r.error.code).toBe('invalid_argument');
        return r.error.message;
      };
      expect(await invalid('aigov.budget.check', { user_id: frank.id, foo: 1, bar: 2 })).toMatch(/foo.*bar/);
      const twoBad = await invalid('aigov.budget.check', { user_id: 'frank', amount_micros: 1e30 });
      expect(twoBad).toMatch(/user_id must be a uuid/);
      expect(twoBad).toMatch(/amount_micros/);
      expect(await invalid('aigov.budget.check', { user_id: frank.id, amount_micros: '5' })).toMatch(
        /amount_micros/,
      );
      const both = await invalid('aigov.budget.reserve', {
        request_id: rid('nats-both'),
        user_id: frank.id,
        amount_micros: 1,
        ...HAIKU,
        max_input_tokens: 1,
        max_output_tokens: 1,
      });
      expect(both).toMatch(/provider.*model.*max_input_tokens.*max_output_tokens/);
      expect(
        await invalid('aigov.budget.reserve', {
          request_id: rid('nats-many'),
          user_id: frank.id,
          ...HAIKU,
          max_input_tokens: 10 ** 12 + 1,
          max_output_tokens: 1,
        }),
      ).toMatch(/max_input_tokens/);
      expect(await invalid('aigov.budget.release', { reservation_id: 'x' })).toMatch(/reservation_id/);
      expect(await invalid('aigov.budget.check', 'not json')).toMatch(/JSON/);
      expect(await invalid('aigov.budget.check', [1, 2])).toMatch(/JSON object/);
    });
  });
});

describe('AI_BUDGETS_ENABLED=false', () => {
  let nats: TestNatsServer;
  let api: ApiHarness;
  let nc: NatsConnection;
  let owner: Person;

  beforeAll(async () => {
    // A server of its own: a second app in queue group budget-api would share the requests.
    nats = await startNatsServer();
    api = await ApiHarness.start({ NATS_ENABLED: 'true', NATS_URL: nats.url, AI_BUDGETS_ENABLED: 'false' });
    nc = await connect({ servers: nats.url });
    ({ owner } = await new World(api).bootstrap());
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await api?.close();
    await nats?.stop();
  });

  it('answers 403 on every spend and enforcement route (after 401), and forbidden over NATS', async () => {
    const routes: [string, string, unknown][] = [
      ['POST', CHECK, { user_id: owner.id }],
      ['POST', RESERVE, { request_id: 'x', user_id: owner.id, amount_micros: 1 }],
      ['POST', RELEASE, { reservation_id: MISSING_UUID }],
      ['POST', USAGE, { request_id: 'x', user_id: owner.id, ...HAIKU, input_tokens: 1, output_tokens: 1 }],
      ['GET', '/api/v2/users/me/ai/spend', undefined],
      ['GET', '/api/v2/users/me/ai/budget/explain', undefined],
      ['GET', `/api/v2/groups/${MISSING_UUID}/ai/spend`, undefined],
    ];
    for (const [method, path, body] of routes) {
      expect((await api.call(method, path, null, body)).status).toBe(401);
      const res = await api.call<ErrorBody>(method, path, owner, body);
      expect({ path, status: res.status, message: res.body.message }).toEqual({
        path,
        status: 403,
        message: DISABLED,
      });
    }
    for (const [subject, body] of [
      ['aigov.budget.check', { user_id: owner.id }],
      ['aigov.budget.reserve', { request_id: 'x', user_id: owner.id, amount_micros: 1 }],
      ['aigov.budget.release', { reservation_id: MISSING_UUID }],
    ] as const) {
      expect(await natsRequest(nc, subject, body)).toEqual({
        ok: false,
        error: { code: 'forbidden', message: DISABLED },
      });
    }
  });
});

describe('enforcement while the database is down (private PostgreSQL and nats-server)', () => {
  let pg: PrivatePostgres;
  let nats: TestNatsServer;
  let api: ApiHarness;
  let nc: NatsConnection;
  let owner: Person;

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPrivatePostgres(), startNatsServer()]);
    // Not migrated here: the API migrates its own database at start.
    const url = await pg.createDatabase('aigov_spend_fault', { migrated: false });
    api = await ApiHarness.start(
      { NATS_ENABLED: 'true', NATS_URL: nats.url },
      { name: 'aigov_spend_fault', url, drop: async () => undefined },
    );
    nc = await connect({ servers: nats.url });
    ({ owner } = await new World(api).bootstrap());
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await api?.close().catch(() => undefined);
    pg?.destroy();
    await nats?.stop();
  });

  it('answers unavailable over NATS and 503 over HTTP, and recovers', async () => {
    const body = { user_id: owner.id };
    expect(await natsRequest(nc, 'aigov.budget.check', body)).toMatchObject({
      ok: true,
      data: { allowed: true },
    });
    pg.stop();
    try {
      expect(await natsRequest(nc, 'aigov.budget.check', body)).toEqual({
        ok: false,
        error: { code: 'unavailable', message: expect.stringMatching(/database is unavailable/) as unknown },
      });
      expect(
        await natsRequest(nc, 'aigov.budget.reserve', {
          request_id: 'down',
          user_id: owner.id,
          amount_micros: 1,
        }),
      ).toMatchObject({ ok: false, error: { code: 'unavailable' } });
      const res = await api.call('POST', CHECK, owner, body);
      expect(res.status).toBe(503);
    } finally {
      pg.start();
    }
    let back: Envelope<CheckBody> | null = null;
    for (let i = 0; i < 50 && !back?.ok; i++) {
      back = await natsRequest<CheckBody>(nc, 'aigov.budget.check', body);
      if (!back.ok) await new Promise((r) => setTimeout(r, 200));
    }
    expect(back).toMatchObject({ ok: true, data: { allowed: true } });
  });
});
