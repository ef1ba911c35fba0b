import { request as httpRequest } from 'node:http';
import { ApiHarness, World, type ApiResponse, type Person } from './helpers/api';

// The HTTP edge against a hostile client (CONTRACT section 2): bodies built to make validation
// slow, text that imitates other names, framework-level errors in the common error body, headers
// that must (not) be there. Real PostgreSQL, real HTTP.

interface ErrorBody {
  message: string;
  detail?: string;
  validations: { field: string; detail: string }[];
  request_id: string;
}

/** The error body of CONTRACT 2, exactly: no other keys, request id as in the header when there is one. */
function expectErrorShape(res: ApiResponse): ErrorBody {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = res.body as unknown as ErrorBody;
  expect(Object.keys(body).sort()).toEqual(
    Object.keys(body)
      .filter((k) => ['message', 'detail', 'validations', 'request_id'].includes(k))
      .sort(),
  );
  expect(typeof body.message).toBe('string');
  expect(Array.isArray(body.validations)).toBe(true);
  expect(typeof body.request_id).toBe('string');
  const header = res.headers.get('x-request-id');
  if (header) expect(body.request_id).toBe(header);
  return body;
}

const fields = (res: ApiResponse): string[] =>
  (res.body as unknown as ErrorBody).validations.map((v) => v.field);

/** ~1 MiB of one-character unknown keys, the shape that froze the process for seconds. */
function hostileKeysBody(extra: Record<string, unknown>): string {
  const keys: string[] = [];
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  // Distinct keys: one and two characters first, then numbered ones, until ~1 MiB.
  let size = 0;
  for (let i = 0; size < 1024 * 1024 - 64 * 1024; i++) {
    const k = i < alphabet.length ? alphabet[i] : `k${i}`;
    const entry = `"${k}":1`;
    keys.push(entry);
    size += entry.length + 1;
  }
  const head = Object.entries(extra).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
  return `{${[...head, ...keys].join(',')}}`;
}

/** Raw HTTP, for requests fetch refuses to send (oversized or malformed headers). */
function rawRequest(
  url: string,
  opts: { method?: string; path: string; headers?: Record<string, string> },
): Promise<ApiResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname, port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: the assertion on the shape will say so
          }
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (typeof v === 'string') headers.set(k, v);
          }
          resolve({ status: res.statusCode ?? 0, body: body as Record<string, unknown>, headers });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP hardening (real PostgreSQL)', () => {
  let api: ApiHarness;
  let owner: Person;
  let org: string;

  beforeAll(async () => {
    api = await ApiHarness.start();
    const world = new World(api);
    // The unauthenticated hostile body first, while /users/first is still open.
    ({ owner } = await world.bootstrap());
    org = await world.organization('org-h');
  });

  afterAll(async () => {
    await api?.close();
  });

  describe('hostile bodies', () => {
    // Generous: the point is milliseconds against the seconds this used to take, on a loaded machine.
    const BOUND_MS = 5_000;

    async function expectFastRejection(method: string, path: string, token?: string) {
      const body = hostileKeysBody({ username: 'x', email: 'x@example.com' });
      expect(body.length).toBeLessThan(1024 * 1024);
      expect(body.length).toBeGreaterThan(900 * 1024);
      const started = Date.now();
      let healthMs = -1;
      const health = (async () => {
        // Asked while the hostile body is being handled: the event loop must stay free.
        await new Promise((r) => setTimeout(r, 20));
        const t = Date.now();
        const res = await api.request('GET', '/healthz');
        healthMs = Date.now() - t;
        expect(res.status).toBe(200);
      })();
      const res = await api.request(method, path, { token, rawBody: body });
      const elapsed = Date.now() - started;
      await health;
      expect(res.status).toBe(400);
      const err = expectErrorShape(res);
      expect(err.validations.length).toBeGreaterThan(0);
      expect(err.validations.length).toBeLessThanOrEqual(20);
      expect(JSON.stringify(res.body).length).toBeLessThan(8 * 1024);
      expect(elapsed).toBeLessThan(BOUND_MS);
      expect(healthMs).toBeLessThan(BOUND_MS);
    }

    it('POST /users/first (no token): 1 MiB of unknown keys is a small, fast 400', async () => {
      // /users/first is closed once the owner exists, but validation runs first all the same.
      await expectFastRejection('POST', '/api/v2/users/first');
    });

    it('POST /users (authenticated): the same', async () => {
      await expectFastRejection('POST', '/api/v2/users', owner.token);
    });

    it('PUT a price with unknown keys inside a tier: named, fast', async () => {
      const tier = JSON.parse(
        hostileKeysBody({
          min_context_tokens: 1,
          input_price: 1,
          output_price: 1,
          cache_read_price: 1,
          cache_write_price: 1,
        }),
      ) as Record<string, unknown>;
      const started = Date.now();
      const res = await api.request('PUT', '/api/v2/ai/model-prices/openai/hostile-model', {
        token: owner.token,
        body: { input_price: 1, output_price: 1, cache_read_price: 1, cache_write_price: 1, tiers: [tier] },
      });
      expect(Date.now() - started).toBeLessThan(BOUND_MS);
      expect(res.status).toBe(400);
      const err = expectErrorShape(res);
      expect(err.validations.length).toBeLessThanOrEqual(20);
      expect(err.validations[0].field).toMatch(/^tiers\[0\]\./);
    });

    it('a body with many bad array elements answers at most 20 validations', async () => {
      const res = await api.request('POST', '/api/v2/users', {
        token: owner.token,
        body: { username: 'many', email: 'many@example.com', roles: Array.from({ length: 500 }, () => 'x') },
      });
      expect(res.status).toBe(400);
      const err = expectErrorShape(res);
      expect(err.validations).toHaveLength(20);
      expect(err.validations[0].field).toBe('roles[0]');
      expect(err.validations[0].detail).toMatch(/^must be one of /);
    });
  });

  describe('text', () => {
    const groups = () => `/api/v2/organizations/${org}/groups`;

    it.each([
      ['a zero-width space', 'Everyone\u200b'],
      ['a Cyrillic capital Ie', '\u0415veryone'],
      ['a trailing space', 'Everyone '],
      ['a leading space', ' Everyone'],
      ['fullwidth letters', '\uff25veryone'],
      ['another case', 'EVERYONE'],
    ])('no look-alike of Everyone: %s', async (_what, name) => {
      const res = await api.request('POST', groups(), { token: owner.token, body: { name } });
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['name']);
      expectErrorShape(res);
    });

    it.each([
      ['a zero-width joiner', 'eng\u200dineering'],
      ['a right-to-left override', 'eng\u202eineering'],
      ['a byte order mark', '\ufeffengineering'],
      ['a soft hyphen', 'engi\u00adneering'],
      ['mixed Latin and Cyrillic', 'engin\u0435ering'],
      ['a non-breaking space at the end', 'engineering\u00a0'],
    ])('group names refuse %s', async (_what, name) => {
      const res = await api.request('POST', groups(), { token: owner.token, body: { name } });
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['name']);
    });

    it('display names and key names follow the same rules', async () => {
      const display = await api.request('POST', groups(), {
        token: owner.token,
        body: { name: 'display-test', display_name: 'Team\u200b' },
      });
      expect(display.status).toBe(400);
      expect(fields(display)).toEqual(['display_name']);
      const key = await api.request('POST', '/api/v2/users/me/keys', {
        token: owner.token,
        body: { name: 'laptop ' },
      });
      expect(key.status).toBe(400);
      expect(fields(key)).toEqual(['name']);
      const user = await api.request('POST', '/api/v2/users', {
        token: owner.token,
        body: { username: 'ann', email: 'ann@example.com', name: 'Ann\u0000' },
      });
      expect(user.status).toBe(400);
      expect(fields(user)).toEqual(['name']);
    });

    it('names in one script, or CJK scripts together, and emoji-free punctuation are accepted', async () => {
      for (const name of ['Инженеры', 'Ingénieurs', '開発チーム', 'R&D: Team 2', 'Équipe São Paulo']) {
        const res = await api.request('POST', groups(), { token: owner.token, body: { name } });
        expect({ name, status: res.status }).toEqual({ name, status: 201 });
      }
    });

    it('text is NFC-normalized: a decomposed name is stored composed and then conflicts', async () => {
      const decomposed = 'Cafe\u0301';
      const res = await api.request<{ name: string }>('POST', groups(), {
        token: owner.token,
        body: { name: decomposed },
      });
      expect(res.status).toBe(201);
      expect(res.body.name).toBe('Caf\u00e9');
      const again = await api.request('POST', groups(), { token: owner.token, body: { name: 'Caf\u00e9' } });
      expect(again.status).toBe(409);
    });

    it('a lone surrogate anywhere in a body is a 400 naming the field (keys too), not a 500', async () => {
      const inValue = await api.request('POST', '/api/v2/users/me/keys', {
        token: owner.token,
        rawBody: '{"name": "a\\ud800b"}',
      });
      expect(inValue.status).toBe(400);
      expect(fields(inValue)).toEqual(['name']);
      const inKey = await api.request('POST', '/api/v2/users/me/keys', {
        token: owner.token,
        rawBody: '{"name": "ok", "\\udc00": 1}',
      });
      expect(inKey.status).toBe(400);
      expect(fields(inKey)).toEqual(['\ufffd']);
      expectErrorShape(inKey);
    });

    it('model ids: no control or format characters, no surrounding spaces', async () => {
      for (const model of ['gpt%E2%80%8B4', '%20gpt-4', 'gpt-4%20', 'gpt%C2%AD4']) {
        const res = await api.request('GET', `/api/v2/ai/model-prices/openai/${model}`, {
          token: owner.token,
        });
        expect({ model, status: res.status }).toEqual({ model, status: 400 });
        expect(fields(res)).toEqual(['model']);
      }
      const ok = await api.request('GET', '/api/v2/ai/model-prices/openai/accounts%2Fx%2Fmodels%2Fm%40v1', {
        token: owner.token,
      });
      expect(ok.status).toBe(404);
    });
  });

  describe('headers and framework errors', () => {
    it('token-bearing responses are not stored', async () => {
      const key = await api.request('POST', '/api/v2/users/me/keys', { token: owner.token, body: {} });
      expect(key.status).toBe(201);
      expect(key.headers.get('cache-control')).toBe('no-store');
      const fresh = await ApiHarness.start();
      try {
        const first = await fresh.request('POST', '/api/v2/users/first', {
          body: { username: 'owner', email: 'owner@example.com' },
        });
        expect(first.status).toBe(201);
        expect(first.headers.get('cache-control')).toBe('no-store');
      } finally {
        await fresh.close();
      }
    });

    it('431 for oversized headers, in the error body', async () => {
      const res = await rawRequest(api.url, { path: '/healthz', headers: { 'x-big': 'a'.repeat(20_000) } });
      expect(res.status).toBe(431);
      const body = expectErrorShape(res);
      expect(JSON.stringify(body)).not.toContain('aaaa');
    });

    it('a malformed header is a 400 in the error body', async () => {
      const { hostname, port } = new URL(api.url);
      const net = await import('node:net');
      const text = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), hostname, () => {
          socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: <probe>\r\n\r\n');
        });
        let data = '';
        socket.on('data', (c) => (data += c.toString('utf8')));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as ErrorBody;
      expect(Object.keys(json).sort()).toEqual(['message', 'request_id', 'validations']);
      expect(text).not.toContain('<probe>');
    });

    it('a too-long path and a broken percent-encoding are in the error body and echo nothing', async () => {
      const long = await api.request('GET', `/api/v2/groups/${'z'.repeat(3000)}`, { token: owner.token });
      expect([400, 414]).toContain(long.status);
      expect(JSON.stringify(expectErrorShape(long))).not.toContain('zzzz');
      const broken = await api.request('GET', '/api/v2/groups/%zz-probe', { token: owner.token });
      expect(broken.status).toBe(400);
      expect(JSON.stringify(expectErrorShape(broken))).not.toContain('probe');
      const unknown = await api.request('GET', '/api/v2/no-such-route-probe', { token: owner.token });
      expect(unknown.status).toBe(404);
      expect(JSON.stringify(expectErrorShape(unknown))).not.toContain('probe');
    });

    it.each(['__proto__', 'constructor', 'prototype', 'hasOwnProperty'])(
      '?%s=x is a 400 like any unknown query parameter',
      async (name) => {
        const res = await api.request('GET', `/api/v2/organizations?${name}=x`, { token: owner.token });
        expect(res.status).toBe(400);
        expect(fields(res)).toEqual([name]);
      },
    );

    it.each(['utf-16', 'latin1', 'UTF-16LE'])('charset=%s is 415', async (charset) => {
      const res = await api.request('POST', '/api/v2/users/me/keys', {
        token: owner.token,
        rawBody: '{}',
        headers: { 'content-type': `application/json; charset=${charset}` },
      });
      expect(res.status).toBe(415);
      expectErrorShape(res);
    });

    it('charset=utf-8 (any case, quoted) is accepted', async () => {
      for (const charset of ['utf-8', 'UTF-8', '"utf-8"']) {
        const res = await api.request('POST', '/api/v2/users/me/keys', {
          token: owner.token,
          rawBody: '{}',
          headers: { 'content-type': `application/json; charset=${charset}` },
        });
        expect({ charset, status: res.status }).toEqual({ charset, status: 201 });
      }
    });

    it('a known path with another method is 405 with Allow', async () => {
      const res = await api.request('PATCH', '/api/v2/users/me/keys', { token: owner.token, body: {} });
      expect(res.status).toBe(405);
      expect((res.headers.get('allow') ?? '').split(/,\s*/).sort()).toEqual(['GET', 'HEAD', 'POST']);
      expectErrorShape(res);
      const group = await api.request('POST', `/api/v2/groups/${org}`, { token: owner.token, body: {} });
      expect(group.status).toBe(405);
      expect(group.headers.get('allow')).toContain('PATCH');
    });

    it('Basic authentication is refused with a message saying what to send', async () => {
      const res = await api.request('GET', '/api/v2/users/me', {
        headers: { authorization: 'Basic b3duZXI6c2VjcmV0' },
      });
      expect(res.status).toBe(401);
      expect(expectErrorShape(res).message).toBe(
        'Authentication required: use Authorization: Bearer <token>.',
      );
    });

    it('an audit filter that cannot match is 400 naming the allowed values', async () => {
      const res = await api.request('GET', '/api/v2/audit-logs?resource_type=bogus', { token: owner.token });
      expect(res.status).toBe(400);
      expect(fields(res)).toEqual(['resource_type']);
      expect((res.body as unknown as ErrorBody).validations[0].detail).toContain('group_ai_budget');
      const ok = await api.request('GET', '/api/v2/audit-logs?resource_type=api_key', { token: owner.token });
      expect(ok.status).toBe(200);
    });
  });

  describe('one message style', () => {
    it.each([
      ['GET', '/api/v2/organizations?page=2', undefined, 'page'],
      ['POST', '/api/v2/users/me/keys', { lifetime_seconds: 'x' }, 'lifetime_seconds'],
      ['POST', '/api/v2/users/me/keys', { nme: 'x' }, 'nme'],
    ] as const)('%s %s names the field and states the rule', async (method, path, body, field) => {
      const res = await api.request(method, path, { token: owner.token, body });
      expect(res.status).toBe(400);
      const err = expectErrorShape(res);
      expect(err.message).toMatch(/^[A-Z]/);
      expect(err.message).toContain(field);
      expect(err.message).not.toMatch(/Validation failed|should not exist|property /);
    });
  });
});
