import { FEATURE_MODULES } from '../apps/budget-api/src/budget-api.module';
import { routeTable } from '../apps/budget-api/src/http/routes';
import { ApiHarness } from './helpers/api';

/** Every route of every feature module, read from Nest's own decorator metadata. */
const routes = () => routeTable(FEATURE_MODULES);

const SAMPLE: Record<string, string> = {
  group: '00000000-0000-4000-8000-000000000001',
  user: 'me',
  organization: 'default',
  id: 'abcdefghij',
  provider: 'anthropic',
  model: 'claude-sonnet-4-5',
};

describe('the API surface: deny by default, documented', () => {
  let api: ApiHarness;
  let doc: {
    paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
  };
  const all = routes();

  beforeAll(async () => {
    api = await ApiHarness.start();
    const res = await api.request<typeof doc>('GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    doc = res.body;
  });

  afterAll(async () => {
    await api.close();
  });

  it('finds the routes', () => {
    expect(all.length).toBeGreaterThanOrEqual(12);
  });

  it('every route declares @Public() or @Authenticated()', () => {
    expect(all.filter((r) => !r.isPublic && !r.authenticated).map((r) => `${r.method} ${r.path}`)).toEqual(
      [],
    );
  });

  it('every route that is not public answers 401 without a token', async () => {
    const open: string[] = [];
    for (const r of all.filter((x) => !x.isPublic)) {
      const path = r.path
        .replace(/:(\w+)/g, (_m, p: string) => encodeURIComponent(SAMPLE[p] ?? 'x'))
        .replace('*', encodeURIComponent(SAMPLE.model));
      const res = await api.request(
        r.method,
        path,
        r.method === 'GET' || r.method === 'DELETE' ? {} : { body: {} },
      );
      if (res.status !== 401) open.push(`${r.method} ${r.path}: ${res.status}`);
    }
    expect(open).toEqual([]);
  });

  it('every route is in the OpenAPI document with its auth requirement and the error responses', () => {
    const missing: string[] = [];
    for (const r of all) {
      // Nest's wildcard (the rest of the path: model ids may hold '/') is documented as {path}.
      const path = r.path.replace(/:(\w+)/g, '{$1}').replace('*', '{path}');
      const op = doc.paths[path]?.[r.method.toLowerCase()];
      if (!op) {
        missing.push(`${r.method} ${path}: not documented`);
        continue;
      }
      if (!r.isPublic && !op.security?.length) missing.push(`${r.method} ${path}: no security`);
      for (const code of r.isPublic ? ['400'] : ['400', '401', '403', '404']) {
        if (!op.responses[code]) missing.push(`${r.method} ${path}: no ${code}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every /api success response with a body has a schema, and every $ref resolves', () => {
    const undocumented: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith('/api/')) continue;
      for (const [method, op] of Object.entries(item)) {
        for (const [code, res] of Object.entries(op.responses)) {
          if (!code.startsWith('2') || code === '204') continue;
          if (!(res as { content?: unknown }).content)
            undocumented.push(`${method.toUpperCase()} ${path} ${code}`);
        }
      }
    }
    expect(undocumented).toEqual([]);
    const text = JSON.stringify(doc);
    const schemas = (doc as unknown as { components: { schemas: Record<string, unknown> } }).components
      .schemas;
    const refs = [...text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.filter((r) => !(r in schemas))).toEqual([]);
  });

  it('serves the docs UI and the health routes without a token', async () => {
    expect((await api.request('GET', '/api/docs')).status).toBe(200);
    expect((await api.request('GET', '/healthz')).status).toBe(200);
    expect((await api.request('GET', '/metrics')).status).toBe(200);
  });
});
