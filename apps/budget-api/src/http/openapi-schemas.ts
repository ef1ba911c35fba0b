import { getMetadataStorage } from 'class-validator';

type Schema = Record<string, unknown>;
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- class constructors of any shape
type Ctor = Function;

interface ValidationMeta {
  type: string;
  name?: string;
  propertyName: string;
  constraints?: unknown[];
  each?: boolean;
  target: unknown;
}

/**
 * Request body and query schemas for the OpenAPI document, derived from the same class-validator
 * decorators that validate the requests, so the document cannot drift from the checks.
 */
export function schemasFromValidators(): Record<string, Schema> {
  const storage = getMetadataStorage() as unknown as {
    validationMetadatas: Map<unknown, ValidationMeta[]> | ValidationMeta[];
  };
  const all: ValidationMeta[] =
    storage.validationMetadatas instanceof Map
      ? [...storage.validationMetadatas.values()].flat()
      : storage.validationMetadatas;
  const byClass = new Map<Ctor, ValidationMeta[]>();
  for (const m of all) {
    if (typeof m.target !== 'function') continue;
    const list = byClass.get(m.target) ?? [];
    list.push(m);
    byClass.set(m.target, list);
  }
  const out: Record<string, Schema> = {};
  for (const [cls, metas] of byClass) {
    // Inherited decorators (CreateUserDto extends FirstUserDto) count for the subclass too.
    let parent = Object.getPrototypeOf(cls) as Ctor | null;
    const inherited: ValidationMeta[] = [];
    while (parent && parent !== Function.prototype) {
      inherited.push(...(byClass.get(parent) ?? []));
      parent = Object.getPrototypeOf(parent) as Ctor | null;
    }
    out[cls.name] = toSchema([...inherited, ...metas]);
  }
  return out;
}

function toSchema(metas: ValidationMeta[]): Schema {
  const properties: Record<string, Schema> = {};
  const optional = new Set<string>();
  for (const m of metas) {
    const p = (properties[m.propertyName] ??= {});
    const target = m.each ? ((p.items as Schema | undefined) ?? (p.items = {})) : p;
    const c = m.constraints ?? [];
    if (m.type === 'conditionalValidation') optional.add(m.propertyName);
    switch (m.name) {
      case 'isInt':
        target.type = 'integer';
        break;
      case 'isString':
        target.type = 'string';
        break;
      case 'isBoolean':
        target.type = 'boolean';
        break;
      case 'isArray':
        p.type = 'array';
        p.items ??= {};
        break;
      case 'min':
        target.minimum = c[0];
        break;
      case 'max':
        target.maximum = c[0];
        break;
      case 'maxLength':
        target.maxLength = c[0];
        break;
      case 'minLength':
        target.minLength = c[0];
        break;
      case 'arrayMaxSize':
        p.maxItems = c[0];
        break;
      case 'isIn':
        target.enum = c[0];
        break;
      case 'isUuid':
        target.type = 'string';
        target.format = 'uuid';
        break;
      case 'isEmail':
        target.type = 'string';
        target.format = 'email';
        break;
      case 'isRfc3339':
      case 'isISO8601':
        target.type = 'string';
        target.format = 'date-time';
        break;
      case 'matches':
        target.pattern = c[0] instanceof RegExp ? c[0].source : String(c[0]);
        break;
    }
  }
  const required = Object.keys(properties).filter((k) => !optional.has(k));
  return {
    type: 'object',
    additionalProperties: false,
    properties,
    ...(required.length ? { required } : {}),
  };
}
