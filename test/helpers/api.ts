import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { loadConfig } from '@aigov/config';
import { Metrics, Readiness, createLogger, startApp } from '@aigov/observability';
import type { OrgRole } from '@aigov/db';
import {
  addGroupMember,
  addOrganizationMember,
  closePool,
  createTestDatabase,
  insertGroup,
  insertOrganization,
  type TestDatabase,
  testPool,
} from '@aigov/testing';
import type { Pool } from 'pg';
import { BudgetApiModule } from '../../apps/budget-api/src/budget-api.module';
import { configureHttp } from '../../apps/budget-api/src/http/setup';

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is (for malformed JSON tests); overrides body. */
  rawBody?: string;
  headers?: Record<string, string>;
}

/**
 * The budget API in this process on a database of the test file's own (real PostgreSQL),
 * listening on a free port and spoken to over real HTTP.
 */
export class ApiHarness {
  private constructor(
    readonly app: INestApplication,
    readonly url: string,
    readonly db: TestDatabase,
    readonly pg: Pool,
  ) {}

  /** `db`: a database of the caller's own (e.g. on a private server); default: a fresh clone. */
  static async start(
    env: Record<string, string> = {},
    database?: TestDatabase,
    /** Receives every log line (at debug level); by default nothing is logged. */
    logLine?: (line: string) => void,
  ): Promise<ApiHarness> {
    const db = database ?? (await createTestDatabase());
    const config = loadConfig({
      DATABASE_URL: db.url,
      NATS_ENABLED: 'false',
      DATABASE_POOL_SIZE: '4',
      ...env,
    });
    const logger = logLine
      ? createLogger('budget-api', 'debug', { write: (line: string) => logLine(line) })
      : createLogger('budget-api', 'silent');
    const metrics = new Metrics('budget-api');
    const readiness = new Readiness();
    const app = await startApp({
      name: 'budget-api',
      module: BudgetApiModule.forRoot({ config, logger, metrics, readiness }),
      port: 0,
      logger,
      metrics,
      // As in main.ts: the budget subjects are the app's own subscriptions, no Nest microservice.
      nats: null,
      configure: configureHttp,
    });
    const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
    // A fault test stops the database under the pool: idle connections then report errors.
    const pg = testPool({ connectionString: db.url, max: 2 });
    return new ApiHarness(app, `http://127.0.0.1:${port}`, db, pg);
  }

  async close(): Promise<void> {
    await this.app.close();
    await closePool(this.pg);
    await this.db.drop();
  }

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    opts: RequestOptions = {},
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.rawBody !== undefined) body = opts.rawBody;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${this.url}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** A request as `who` (null: no token), optionally with our own X-Request-Id to find its audit entries. */
  call<T = Record<string, unknown>>(
    method: string,
    path: string,
    who: { token: string } | null,
    body?: unknown,
    requestId?: string,
  ): Promise<ApiResponse<T>> {
    return this.request<T>(method, path, {
      token: who?.token,
      body,
      headers: requestId ? { 'x-request-id': requestId } : {},
    });
  }

  async sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pg.query(text, params)).rows as T[];
  }
}

export interface Person {
  id: string;
  username: string;
  token: string;
}

/**
 * A populated world for authorization tests: users and their keys through the API (tokens are
 * real), everything else with the SQL factories of @aigov/testing where the route is not the
 * subject of the test.
 */
export class World {
  constructor(readonly api: ApiHarness) {}

  /** POST /users/first: the owner, member of organization `default`. */
  async bootstrap(): Promise<{ owner: Person; defaultOrg: string }> {
    const res = await this.api.request<{ user: { id: string; username: string }; token: string }>(
      'POST',
      '/api/v2/users/first',
      {
        body: { username: 'owner', email: 'owner@example.com', name: 'Owner' },
      },
    );
    if (res.status !== 201) throw new Error(`bootstrap failed: ${res.status} ${JSON.stringify(res.body)}`);
    const [org] = await this.api.sql<{ id: string }>(`SELECT id FROM organizations WHERE name = 'default'`);
    return {
      owner: { id: res.body.user.id, username: res.body.user.username, token: res.body.token },
      defaultOrg: org.id,
    };
  }

  /** A user with site roles, a member of the given organizations (with org roles), and a token. */
  async person(
    owner: Person,
    username: string,
    opts: { siteRoles?: string[]; orgs?: { id: string; roles?: OrgRole[] }[] } = {},
  ): Promise<Person> {
    const created = await this.api.request<{ id: string }>('POST', '/api/v2/users', {
      token: owner.token,
      body: { username, email: `${username}@example.com`, roles: opts.siteRoles ?? [], organization_ids: [] },
    });
    if (created.status !== 201)
      throw new Error(`create ${username}: ${created.status} ${JSON.stringify(created.body)}`);
    for (const org of opts.orgs ?? []) {
      await addOrganizationMember(this.api.pg, org.id, created.body.id, org.roles);
    }
    const key = await this.api.request<{ key: string }>('POST', `/api/v2/users/${created.body.id}/keys`, {
      token: owner.token,
      body: { name: 'test' },
    });
    if (key.status !== 201) throw new Error(`key for ${username}: ${key.status} ${JSON.stringify(key.body)}`);
    return { id: created.body.id, username, token: key.body.key };
  }

  async organization(name: string): Promise<string> {
    return (await insertOrganization(this.api.pg, name)).id;
  }

  async group(orgId: string, name: string, memberIds: string[] = []): Promise<string> {
    const { id } = await insertGroup(this.api.pg, orgId, name);
    for (const u of memberIds) await addGroupMember(this.api.pg, id, u);
    return id;
  }
}
