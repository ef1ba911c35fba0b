import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { RESPONSE_SCHEMAS, SUCCESS_BODIES } from './openapi-responses';
import { schemasFromValidators } from './openapi-schemas';

const ERROR_SCHEMA = {
  type: 'object',
  required: ['message', 'validations', 'request_id'],
  properties: {
    message: { type: 'string' },
    detail: { type: 'string' },
    validations: {
      type: 'array',
      items: {
        type: 'object',
        required: ['field', 'detail'],
        properties: { field: { type: 'string' }, detail: { type: 'string' } },
      },
    },
    request_id: { type: 'string', description: 'Equals the X-Request-Id response header.' },
  },
};

const ERRORS: Record<string, string> = {
  '400':
    'Invalid input: unknown fields, wrong JSON types, out-of-range numbers, malformed JSON, bad uuids (each named in validations).',
  '401': 'Missing or invalid token.',
  '403': 'The caller can see the resource but may not do this to it (or AI budgets are disabled).',
  '404': 'Not found, or not visible to the caller.',
  '409': 'Conflict (duplicate name).',
  '413': 'Body over 1 MiB.',
  '415': 'Body is not application/json.',
};

/**
 * The OpenAPI document at /api/openapi.json and its UI at /api/docs (no token needed). Routes
 * and parameters come from the controllers, bodies from the DTOs; every authenticated operation
 * carries the bearer requirement and every operation the shared error responses.
 */
export function setupOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('aigov API')
    .setDescription(
      'AI spend governance: price book, group budgets, user overrides, audit log. Money is integer micro-USD. ' +
        'Authenticate with `Authorization: Bearer <id>-<secret>`.',
    )
    .setVersion('2')
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'API key <id>-<secret>',
        description: 'API key: <id>-<secret>',
      },
      'bearer',
    )
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  const derived = schemasFromValidators();
  const schemas: Record<string, unknown> = {
    ...doc.components?.schemas,
    ...RESPONSE_SCHEMAS,
    Error: ERROR_SCHEMA,
  };
  for (const name of Object.keys(schemas)) if (derived[name]) schemas[name] = derived[name];
  doc.components = {
    ...doc.components,
    schemas: schemas as NonNullable<OpenAPIObject['components']>['schemas'],
  };
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/api/')) continue; // health and metrics: no token, no error envelope
    for (const op of Object.values(item) as {
      operationId?: string;
      security?: unknown[];
      responses?: Record<string, unknown>;
    }[]) {
      if (typeof op !== 'object' || op === null || !('responses' in op)) continue;
      const body = op.operationId ? SUCCESS_BODIES[op.operationId] : undefined;
      if (body) {
        const code = Object.keys(op.responses ?? {}).find((c) => c.startsWith('2')) ?? '200';
        op.responses = {
          ...op.responses,
          [code]: {
            description: body,
            content: { 'application/json': { schema: { $ref: `#/components/schemas/${body}` } } },
          },
        };
      }
      if (op.operationId === 'PricesController_sync') {
        op.responses = {
          ...op.responses,
          '502': {
            description: 'The pricing worker answered with an error.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
          '503': {
            description: 'No pricing worker answered in time, or NATS is unavailable.',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        };
      }
      const isPublic = path === '/api/v2/users/first';
      if (!isPublic) op.security = [{ bearer: [] }];
      for (const [code, description] of Object.entries(ERRORS)) {
        if (isPublic && (code === '401' || code === '403')) continue;
        op.responses = {
          ...op.responses,
          [code]: op.responses?.[code] ?? {
            description,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        };
      }
    }
  }
  SwaggerModule.setup('api/docs', app, doc, {
    jsonDocumentUrl: 'api/openapi.json',
    yamlDocumentUrl: 'api/openapi.yaml',
  });
  return doc;
}
