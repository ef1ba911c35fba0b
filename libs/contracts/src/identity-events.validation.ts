import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import {
  EachElement,
  ValidateNestedList,
  ValidateNestedObject,
  validateStrict,
  type DtoClass,
} from './dto-validation';
import {
  IDENTITY_SUBJECT_LIST,
  type IdentityEvent,
  type IdentitySubject,
  type OrganizationRole,
  type UserStatus,
} from './identity-events';
import {
  DISPLAY_NAME_RULE,
  GROUP_NAME_RULE,
  IsEmailAddress,
  IsOrganizationName,
  IsUsername,
  ORGANIZATION_ROLES,
  ORGANIZATION_ROLE_RULE,
  UUID_PATTERN,
  isOrganizationRole,
  isUuid,
} from './identity-rules';
import { hasLoneSurrogate } from './text';
import { IsName } from './text.validators';

/**
 * Parsing of identity events as they arrive from NATS (docs/identity-events.md): a CloudEvent 1.0
 * in structured JSON whose `type` is its subject, and a `data` object checked field by field with
 * the same rules as the HTTP API. Never throws: a message that is not a valid event comes back
 * with a reason code and field-named errors, for the dead letter.
 */

/** Why a message is not a usable identity event (the dead letter's `reason`). */
export type IdentityParseReason = 'invalid_json' | 'invalid_cloudevent' | 'unknown_type' | 'invalid_data';

export type IdentityParseResult =
  | { ok: true; event: IdentityEvent }
  | { ok: false; reason: IdentityParseReason; errors: string[]; json: unknown };

/** Most entries a snapshot list may hold (larger organizations are sent in parts). */
export const MAX_SNAPSHOT_ENTRIES = 100_000;
export const MAX_SNAPSHOT_PARTS = 1_000;
export const MAX_EVENT_ID_LENGTH = 200;

const UUID_RULE = 'must be a UUID';
const STATUSES: readonly UserStatus[] = ['active', 'suspended'];

// class-validator runs the decorator nearest the property first: the type check goes last.

class UserUpsertedDto {
  @IsUuidField()
  user_id!: string;

  @IsUsername()
  username!: string;

  @IsEmailAddress()
  email!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME_RULE)
  name?: string | null;

  @ValidateIf((o: UserUpsertedDto) => o.status !== undefined)
  @IsIn(STATUSES, { message: `must be one of ${STATUSES.join(', ')}` })
  status?: UserStatus;
}

class UserDeletedDto {
  @IsUuidField()
  user_id!: string;
}

class OrganizationUpsertedDto {
  @IsUuidField()
  organization_id!: string;

  @IsOrganizationName()
  name!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME_RULE)
  display_name?: string | null;
}

class OrganizationDeletedDto {
  @IsUuidField()
  organization_id!: string;
}

class OrganizationMemberAddedDto {
  @IsUuidField()
  organization_id!: string;

  @IsUuidField()
  user_id!: string;

  // Absent keeps the member's roles; null is not "absent" and is refused.
  @ValidateIf((o: OrganizationMemberAddedDto) => o.roles !== undefined)
  @IsRoleList()
  roles?: OrganizationRole[];
}

class OrganizationMemberRemovedDto {
  @IsUuidField()
  organization_id!: string;

  @IsUuidField()
  user_id!: string;
}

class GroupUpsertedDto {
  @IsUuidField()
  group_id!: string;

  @IsUuidField()
  organization_id!: string;

  @IsName(GROUP_NAME_RULE)
  name!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME_RULE)
  display_name?: string | null;
}

class GroupDeletedDto {
  @IsUuidField()
  group_id!: string;
}

class GroupMemberDto {
  @IsUuidField()
  group_id!: string;

  @IsUuidField()
  user_id!: string;
}

class SnapshotMemberDto {
  @IsUuidField()
  user_id!: string;

  @IsRoleList()
  roles!: OrganizationRole[];
}

class SnapshotGroupDto {
  @IsUuidField()
  group_id!: string;

  @IsName(GROUP_NAME_RULE)
  name!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME_RULE)
  display_name?: string | null;

  @ArrayMaxSize(MAX_SNAPSHOT_ENTRIES, { message: `must have at most ${MAX_SNAPSHOT_ENTRIES} entries` })
  @IsArray({ message: 'must be an array of user ids' })
  @EachElement(isUuid, UUID_RULE)
  members!: string[];
}

class SnapshotPartDto {
  @MaxLength(MAX_EVENT_ID_LENGTH, { message: `must be at most ${MAX_EVENT_ID_LENGTH} characters` })
  @MinLength(1, { message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  snapshot_id!: string;

  @Max(MAX_SNAPSHOT_PARTS, { message: `must be at most ${MAX_SNAPSHOT_PARTS}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  index!: number;

  @Max(MAX_SNAPSHOT_PARTS, { message: `must be at most ${MAX_SNAPSHOT_PARTS}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  count!: number;
}

class OrganizationSnapshotDto {
  @IsUuidField()
  organization_id!: string;

  @IsOrganizationName()
  name!: string;

  @IsOptional()
  @IsName(DISPLAY_NAME_RULE)
  display_name?: string | null;

  @ValidateNestedList(() => UserUpsertedDto, MAX_SNAPSHOT_ENTRIES, 'users')
  users!: UserUpsertedDto[];

  @ValidateNestedList(() => SnapshotMemberDto, MAX_SNAPSHOT_ENTRIES, 'members')
  members!: SnapshotMemberDto[];

  @ValidateNestedList(() => SnapshotGroupDto, MAX_SNAPSHOT_ENTRIES, 'groups')
  groups!: SnapshotGroupDto[];

  @ValidateIf((o: OrganizationSnapshotDto) => o.part !== undefined)
  @ValidateNestedObject(() => SnapshotPartDto, 'an object {snapshot_id, index, count}')
  part?: SnapshotPartDto;
}

function IsUuidField(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    // Applied first, checked first: the type before the pattern.
    IsString({ message: 'must be a string' })(target, key);
    Matches(UUID_PATTERN, { message: UUID_RULE })(target, key);
  };
}

function IsRoleList(): PropertyDecorator {
  return (target: object, key: string | symbol) => {
    IsArray({ message: 'must be an array of organization roles' })(target, key);
    ArrayMaxSize(ORGANIZATION_ROLES.length * 4, { message: 'has too many entries' })(target, key);
    EachElement(isOrganizationRole, ORGANIZATION_ROLE_RULE)(target, key);
  };
}

const DTO_BY_SUBJECT: Record<IdentitySubject, DtoClass> = {
  'identity.user.upserted': UserUpsertedDto,
  'identity.user.deleted': UserDeletedDto,
  'identity.organization.upserted': OrganizationUpsertedDto,
  'identity.organization.deleted': OrganizationDeletedDto,
  'identity.organization.member.added': OrganizationMemberAddedDto,
  'identity.organization.member.removed': OrganizationMemberRemovedDto,
  'identity.group.upserted': GroupUpsertedDto,
  'identity.group.deleted': GroupDeletedDto,
  'identity.group.member.added': GroupMemberDto,
  'identity.group.member.removed': GroupMemberDto,
  'identity.organization.snapshot': OrganizationSnapshotDto,
};

const KNOWN_SUBJECTS: ReadonlySet<string> = new Set(IDENTITY_SUBJECT_LIST);

/** Attributes CloudEvents 1.0 defines for structured JSON; anything else must be an extension. */
const CLOUDEVENT_ATTRIBUTES = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'datacontenttype',
  'dataschema',
  'subject',
  'data',
]);
/** CloudEvents extension attribute names: lowercase letters and digits, at most 20 (spec 1.0). */
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const MAX_ENVELOPE_ERRORS = 20;
const MAX_SOURCE_LENGTH = 1_000;

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 timestamp (`2026-12-02T09:00:00Z`, `...T10:00:00.5+01:00`) as a Date, or null.
 * Checked by hand: Date.parse accepts many other shapes and guesses a time zone for some. Digits
 * past milliseconds are dropped (JavaScript dates hold milliseconds).
 */
export function parseRfc3339(value: string): Date | null {
  const m = RFC3339.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const base = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(base);
  // Date.UTC rolls 31 April over into 1 May: such a day does not exist.
  if (check.getUTCDate() !== day || check.getUTCFullYear() !== year) return null;
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  let offsetMinutes = 0;
  if (!m[8]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return new Date(base + millis - offsetMinutes * 60_000);
}

function describe(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  const shown = value.length > 80 ? `${value.slice(0, 80)}...` : value;
  return JSON.stringify(hasLoneSurrogate(shown) ? shown.replace(/\p{Cs}/gu, '\ufffd') : shown);
}

/** The problem with a short text attribute (`id`, `source`), or null. */
function attributeProblem(value: unknown, max: number): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > max) return `must be at most ${max} characters`;
  if (/[\p{Cc}\p{Cs}]/u.test(value)) return 'must not contain control characters or unpaired surrogates';
  return null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A message body as JSON: UTF-8 text that parses. Shared by the consumers of identity events and
 * usage records; `errors` say why not, for the dead letter.
 */
export function parseJsonPayload(
  payload: Uint8Array,
): { ok: true; json: unknown } | { ok: false; errors: string[] } {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { ok: false, errors: ['payload: must be UTF-8 text'] };
  }
  try {
    return { ok: true, json: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, errors: [`payload: must be JSON (${(err as Error).message})`] };
  }
}

/**
 * Parses one identity message: UTF-8 JSON, a CloudEvents 1.0 structured envelope whose `type`
 * equals the subject, and data valid for that type. Strings in `data` are NFC-normalized, ids
 * lowercased, emails lowercased. `json` is the parsed message when it was JSON (for the dead
 * letter), else undefined.
 */
export function parseIdentityMessage(subject: string, payload: Uint8Array): IdentityParseResult {
  const parsed = parseJsonPayload(payload);
  if (!parsed.ok) return { ok: false, reason: 'invalid_json', errors: parsed.errors, json: undefined };
  const { json } = parsed;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return {
      ok: false,
      reason: 'invalid_cloudevent',
      errors: ['payload: must be a JSON object (a CloudEvent)'],
      json,
    };
  }
  const envelope = json as Record<string, unknown>;
  const errors: string[] = [];
  const fail = (field: string, detail: string): void => {
    if (errors.length < MAX_ENVELOPE_ERRORS) errors.push(`${field}: ${detail}`);
  };

  const type = envelope.type;
  const knownType = typeof type === 'string' && KNOWN_SUBJECTS.has(type);
  if (!knownType) {
    const known =
      typeof type === 'string' ? `unknown identity event type ${describe(type)}` : 'must be a string';
    fail('type', known);
  } else if (type !== subject) {
    fail('type', `must equal the subject ${describe(subject)}`);
  }
  if (envelope.specversion !== '1.0') fail('specversion', 'must be "1.0"');
  const idProblem = attributeProblem(envelope.id, MAX_EVENT_ID_LENGTH);
  if (idProblem) fail('id', idProblem);
  const sourceProblem = attributeProblem(envelope.source, MAX_SOURCE_LENGTH);
  if (sourceProblem) fail('source', sourceProblem);
  let time: Date | null = null;
  if (envelope.time === undefined) fail('time', 'is required (an RFC 3339 timestamp)');
  else if (typeof envelope.time !== 'string' || (time = parseRfc3339(envelope.time)) === null) {
    fail('time', 'must be an RFC 3339 timestamp like 2026-12-02T09:00:00Z');
  }
  if (envelope.datacontenttype !== undefined && envelope.datacontenttype !== 'application/json') {
    fail('datacontenttype', 'must be "application/json" when present');
  }
  const data = envelope.data;
  if (data === undefined) fail('data', 'is required');
  else if (data === null || typeof data !== 'object' || Array.isArray(data))
    fail('data', 'must be a JSON object');
  let checked = 0;
  for (const key in envelope) {
    // Own keys only (JSON.parse makes `__proto__` an own key, never the prototype).
    if (!Object.prototype.hasOwnProperty.call(envelope, key)) continue;
    if (CLOUDEVENT_ATTRIBUTES.has(key)) continue;
    if (!EXTENSION_NAME.test(key)) {
      fail(
        describe(key).slice(1, -1),
        'is not a CloudEvents attribute (extensions are 1 to 20 lowercase letters or digits)',
      );
    }
    // A message is at most the server's max_payload; still, stop looking after enough noise.
    if (++checked > 1_000 && errors.length > 0) break;
  }
  if (!knownType) return { ok: false, reason: 'unknown_type', errors, json };
  if (errors.length > 0) return { ok: false, reason: 'invalid_cloudevent', errors, json };

  const eventType = type as IdentitySubject;
  const result = validateStrict(DTO_BY_SUBJECT[eventType], data, 'data');
  if (!result.ok) {
    return {
      ok: false,
      reason: 'invalid_data',
      errors: result.problems.map((p) => `${p.field}: ${p.detail}`),
      json,
    };
  }
  const plain = toPlain(result.value) as Record<string, unknown>;
  const crossField = crossFieldProblems(eventType, plain);
  if (crossField.length > 0) return { ok: false, reason: 'invalid_data', errors: crossField, json };
  return {
    ok: true,
    event: {
      id: envelope.id as string,
      source: envelope.source as string,
      type: eventType,
      time: time!,
      data: plain,
    } as unknown as IdentityEvent,
  };
}

// Ids compare lowercased; emails are stored lowercased, so that uniqueness ignores case.
const LOWERCASED_FIELDS = new Set(['user_id', 'organization_id', 'group_id', 'email']);

/** The validated DTO as plain JSON-like objects, ids and emails lowercased, absent optional fields left out. */
function toPlain(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) {
    // Roles are a set; `members` of a snapshot group is a list of user ids.
    if (key === 'roles') return [...new Set(value)];
    return value.map((v) => (key === 'members' && typeof v === 'string' ? v.toLowerCase() : toPlain(v)));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[k] = LOWERCASED_FIELDS.has(k) && typeof v === 'string' ? v.toLowerCase() : toPlain(v, k);
    }
    return out;
  }
  return value;
}

const EVERYONE_DETAIL =
  "must not be the organization's id (the Everyone group is managed with its organization)";

/** Rules between fields: the Everyone group is never targeted by id; snapshot lists hold no duplicates. */
function crossFieldProblems(type: IdentitySubject, data: Record<string, unknown>): string[] {
  if (type === 'identity.group.upserted' && data.group_id === data.organization_id) {
    return [`data.group_id: ${EVERYONE_DETAIL}`];
  }
  if (type !== 'identity.organization.snapshot') return [];
  const snapshot = data as unknown as {
    organization_id: string;
    users: { user_id: string; username: string; email: string }[];
    members: { user_id: string }[];
    groups: { group_id: string; name: string; members: string[] }[];
    part?: { index: number; count: number };
  };
  const out: string[] = [];
  const unique = <T>(list: T[], path: string, field: string, keyOf: (item: T) => string): void => {
    const seen = new Map<string, number>();
    list.forEach((item, i) => {
      const k = keyOf(item);
      const first = seen.get(k);
      if (first !== undefined) out.push(`${path}[${i}].${field}: duplicates ${path}[${first}]`);
      else seen.set(k, i);
    });
  };
  unique(snapshot.users, 'data.users', 'user_id', (u) => u.user_id);
  unique(snapshot.users, 'data.users', 'username', (u) => u.username);
  unique(snapshot.users, 'data.users', 'email', (u) => u.email);
  unique(snapshot.members, 'data.members', 'user_id', (m) => m.user_id);
  unique(snapshot.groups, 'data.groups', 'group_id', (g) => g.group_id);
  unique(snapshot.groups, 'data.groups', 'name', (g) => g.name);
  snapshot.groups.forEach((g, i) => {
    if (g.group_id === snapshot.organization_id) out.push(`data.groups[${i}].group_id: ${EVERYONE_DETAIL}`);
    const seen = new Set<string>();
    g.members.forEach((m, j) => {
      if (seen.has(m)) out.push(`data.groups[${i}].members[${j}]: is listed twice`);
      seen.add(m);
    });
  });
  if (snapshot.part && snapshot.part.index > snapshot.part.count) {
    out.push('data.part.index: must not be greater than part.count');
  }
  return out.slice(0, MAX_ENVELOPE_ERRORS);
}
