import 'reflect-metadata';
import { IDENTITY_SUBJECTS, IDENTITY_SUBJECT_LIST, type IdentitySubject } from './identity-events';
import { parseIdentityMessage, parseRfc3339, type IdentityParseResult } from './identity-events.validation';

const ORG = '7b0e1c5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f';
const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const GROUP = '9c5b94b1-35ad-49bb-b118-8e8fc24abf80';

function envelope(type: string, data: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: 'evt-1',
    source: 'test/idp',
    type,
    time: '2026-12-02T09:00:00Z',
    datacontenttype: 'application/json',
    data,
    ...extra,
  };
}

const bytes = (value: unknown): Uint8Array =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

function parse(subject: string, data: unknown, extra?: Record<string, unknown>): IdentityParseResult {
  return parseIdentityMessage(subject, bytes(envelope(subject, data, extra)));
}

function errorsOf(result: IdentityParseResult): string[] {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.event)}`);
  return result.errors;
}

const GOOD: Record<IdentitySubject, Record<string, unknown>> = {
  'identity.user.upserted': {
    user_id: USER,
    username: 'ada',
    email: 'ada@example.com',
    name: 'Ada',
    status: 'active',
  },
  'identity.user.deleted': { user_id: USER },
  'identity.organization.upserted': { organization_id: ORG, name: 'acme', display_name: 'Acme Inc.' },
  'identity.organization.deleted': { organization_id: ORG },
  'identity.organization.member.added': {
    organization_id: ORG,
    user_id: USER,
    roles: ['organization-admin'],
  },
  'identity.organization.member.removed': { organization_id: ORG, user_id: USER },
  'identity.group.upserted': {
    group_id: GROUP,
    organization_id: ORG,
    name: 'Platform team',
    display_name: null,
  },
  'identity.group.deleted': { group_id: GROUP },
  'identity.group.member.added': { group_id: GROUP, user_id: USER },
  'identity.group.member.removed': { group_id: GROUP, user_id: USER },
  'identity.organization.snapshot': {
    organization_id: ORG,
    name: 'acme',
    users: [{ user_id: USER, username: 'ada', email: 'ada@example.com' }],
    members: [{ user_id: USER, roles: [] }],
    groups: [{ group_id: GROUP, name: 'Platform', members: [USER] }],
    part: { snapshot_id: 'snap-1', index: 1, count: 2 },
  },
};

describe('parseIdentityMessage', () => {
  it.each(IDENTITY_SUBJECT_LIST)('accepts a valid %s event', (subject) => {
    const result = parse(subject, GOOD[subject]);
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.event.type).toBe(subject);
    expect(result.event.id).toBe('evt-1');
    expect(result.event.time.toISOString()).toBe('2026-12-02T09:00:00.000Z');
    expect(result.event.data).toEqual(GOOD[subject]);
  });

  it.each(IDENTITY_SUBJECT_LIST)('rejects an unknown field and a missing id in %s', (subject) => {
    const data = { ...GOOD[subject], extra: 1 };
    expect(errorsOf(parse(subject, data))).toEqual(['data.extra: is not a field of this request']);
    const idField = Object.keys(GOOD[subject]).find((k) => k.endsWith('_id'))!;
    const missing: Record<string, unknown> = { ...GOOD[subject] };
    delete missing[idField];
    expect(errorsOf(parse(subject, missing))).toContain(`data.${idField}: must be a string`);
    expect(errorsOf(parse(subject, { ...GOOD[subject], [idField]: 'not-a-uuid' }))).toContain(
      `data.${idField}: must be a UUID`,
    );
  });

  it('lowercases ids and emails, NFC-normalizes names, drops duplicate roles', () => {
    const result = parse(IDENTITY_SUBJECTS.userUpserted, {
      user_id: USER.toUpperCase(),
      username: 'ada',
      email: 'Ada@Example.COM',
      name: 'Cafe\u0301',
    });
    expect(result.ok && result.event.data).toEqual({
      user_id: USER,
      username: 'ada',
      email: 'ada@example.com',
      name: 'Caf\u00e9',
    });
    const member = parse(IDENTITY_SUBJECTS.organizationMemberAdded, {
      organization_id: ORG.toUpperCase(),
      user_id: USER,
      roles: ['organization-auditor', 'organization-auditor'],
    });
    expect(member.ok && member.event.data).toEqual({
      organization_id: ORG,
      user_id: USER,
      roles: ['organization-auditor'],
    });
    const snapshot = parse(IDENTITY_SUBJECTS.organizationSnapshot, {
      ...GOOD['identity.organization.snapshot'],
      groups: [{ group_id: GROUP, name: 'Platform', members: [USER.toUpperCase()] }],
    });
    expect(
      snapshot.ok && (snapshot.event.data as { groups: { members: string[] }[] }).groups[0].members,
    ).toEqual([USER]);
  });

  it('applies the name rules of the HTTP API', () => {
    const user = GOOD['identity.user.upserted'];
    expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, username: 'me' }))).toEqual([
      'data.username: must be 1 to 64 lowercase letters, digits, _ or -, and not "me"',
    ]);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, username: 'Ada' }))).toEqual([
      'data.username: must be 1 to 64 lowercase letters, digits, _ or -, and not "me"',
    ]);
    expect(
      errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, username: 'a'.repeat(65) })),
    ).toHaveLength(1);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, email: 'nope' }))).toEqual([
      'data.email: must be an email address',
    ]);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, status: 'gone' }))).toEqual([
      'data.status: must be one of active, suspended',
    ]);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, { ...user, status: null }))).toEqual([
      'data.status: must be one of active, suspended',
    ]);
    const org = GOOD['identity.organization.upserted'];
    expect(errorsOf(parse(IDENTITY_SUBJECTS.organizationUpserted, { ...org, name: 'Acme' }))).toEqual([
      'data.name: must be 1 to 64 lowercase letters, digits or -',
    ]);
    const group = GOOD['identity.group.upserted'];
    for (const name of ['Everyone', 'EVERYONE', 'Ｅveryone' /* fullwidth E */]) {
      expect(errorsOf(parse(IDENTITY_SUBJECTS.groupUpserted, { ...group, name }))).toEqual([
        'data.name: must not be or look like Everyone (reserved for the organization-wide group)',
      ]);
    }
    expect(errorsOf(parse(IDENTITY_SUBJECTS.groupUpserted, { ...group, name: ' padded' }))).toEqual([
      'data.name: must not start or end with a space',
    ]);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.groupUpserted, { ...group, group_id: ORG }))).toEqual([
      "data.group_id: must not be the organization's id (the Everyone group is managed with its organization)",
    ]);
    const member = GOOD['identity.organization.member.added'];
    expect(
      errorsOf(parse(IDENTITY_SUBJECTS.organizationMemberAdded, { ...member, roles: ['owner'] })),
    ).toEqual([
      'data.roles[0]: must be one of organization-admin, organization-user-admin, organization-auditor',
    ]);
    expect(errorsOf(parse(IDENTITY_SUBJECTS.organizationMemberAdded, { ...member, roles: null }))).toEqual([
      'data.roles: must be an array of organization roles',
    ]);
  });

  it('checks snapshot lists, nested entries and parts', () => {
    const good = GOOD['identity.organization.snapshot'];
    const parseSnapshot = (patch: Record<string, unknown>) =>
      parse(IDENTITY_SUBJECTS.organizationSnapshot, { ...good, ...patch });
    expect(
      errorsOf(parseSnapshot({ users: [{ user_id: USER, username: 'ada', email: 'x@y.z', x: 1 }] })),
    ).toEqual(['data.users[0].x: is not a field of this request']);
    expect(errorsOf(parseSnapshot({ groups: [{ group_id: GROUP, name: 'P', members: ['bad'] }] }))).toEqual([
      'data.groups[0].members[0]: must be a UUID',
    ]);
    expect(errorsOf(parseSnapshot({ members: [{ user_id: USER, roles: ['nope'] }] }))).toEqual([
      'data.members[0].roles[0]: must be one of organization-admin, organization-user-admin, organization-auditor',
    ]);
    expect(
      errorsOf(
        parseSnapshot({
          members: [
            { user_id: USER, roles: [] },
            { user_id: USER, roles: [] },
          ],
        }),
      ),
    ).toEqual(['data.members[1].user_id: duplicates data.members[0]']);
    expect(errorsOf(parseSnapshot({ part: { snapshot_id: 's', index: 3, count: 2 } }))).toEqual([
      'data.part.index: must not be greater than part.count',
    ]);
    expect(errorsOf(parseSnapshot({ part: { snapshot_id: 's', index: 1, count: 1001 } }))).toEqual([
      'data.part.count: must be at most 1000',
    ]);
    expect(errorsOf(parseSnapshot({ part: { snapshot_id: 's', index: 1, count: 1, more: true } }))).toEqual([
      'data.part.more: is not a field of this request',
    ]);
    expect(errorsOf(parseSnapshot({ part: [] }))).toContain(
      'data.part: must be an object {snapshot_id, index, count}',
    );
    expect(errorsOf(parseSnapshot({ users: undefined }))).toEqual(['data.users: must be an array of users']);
    const tooMany = Array.from({ length: 100_001 }, () => USER);
    expect(errorsOf(parseSnapshot({ groups: [{ group_id: GROUP, name: 'P', members: tooMany }] }))).toEqual([
      'data.groups[0].members: must have at most 100000 entries',
    ]);
  });

  describe('the envelope', () => {
    const user = GOOD['identity.user.upserted'];
    it('rejects what is not UTF-8 JSON', () => {
      const notUtf8 = parseIdentityMessage('identity.user.upserted', Uint8Array.from([0x7b, 0xff, 0x7d]));
      expect(notUtf8).toEqual({
        ok: false,
        reason: 'invalid_json',
        errors: ['payload: must be UTF-8 text'],
        json: undefined,
      });
      const notJson = parseIdentityMessage('identity.user.upserted', bytes('{"a":'));
      expect(!notJson.ok && notJson.reason).toBe('invalid_json');
      const array = parseIdentityMessage('identity.user.upserted', bytes('[1]'));
      expect(array).toMatchObject({ ok: false, reason: 'invalid_cloudevent', json: [1] });
    });

    it('names an unknown type, a type that is not the subject, and bad attributes', () => {
      const unknown = parseIdentityMessage(
        'identity.user.renamed',
        bytes(envelope('identity.user.renamed', {})),
      );
      expect(unknown).toMatchObject({ ok: false, reason: 'unknown_type' });
      expect(errorsOf(unknown)).toEqual(['type: unknown identity event type "identity.user.renamed"']);
      const mismatch = parseIdentityMessage(
        'identity.user.deleted',
        bytes(envelope('identity.user.upserted', user)),
      );
      expect(mismatch).toMatchObject({ ok: false, reason: 'invalid_cloudevent' });
      expect(errorsOf(mismatch)).toEqual(['type: must equal the subject "identity.user.deleted"']);
      const bad = parse(IDENTITY_SUBJECTS.userUpserted, user, {
        specversion: '0.3',
        id: '',
        source: 7,
        time: '2026-12-02 09:00:00',
        datacontenttype: 'text/plain',
        'Bad-Ext': 1,
      });
      expect(bad).toMatchObject({ ok: false, reason: 'invalid_cloudevent' });
      expect(errorsOf(bad)).toEqual([
        'specversion: must be "1.0"',
        'id: must not be empty',
        'source: must be a string',
        'time: must be an RFC 3339 timestamp like 2026-12-02T09:00:00Z',
        'datacontenttype: must be "application/json" when present',
        'Bad-Ext: is not a CloudEvents attribute (extensions are 1 to 20 lowercase letters or digits)',
      ]);
      const noTime = parse(IDENTITY_SUBJECTS.userUpserted, user, { time: undefined, id: 'x'.repeat(201) });
      expect(errorsOf(noTime)).toEqual([
        'id: must be at most 200 characters',
        'time: is required (an RFC 3339 timestamp)',
      ]);
      expect(errorsOf(parse(IDENTITY_SUBJECTS.userUpserted, null))).toEqual(['data: must be a JSON object']);
      expect(
        parse(IDENTITY_SUBJECTS.userUpserted, user, { traceparent: '00-abc', datacontenttype: undefined }).ok,
      ).toBe(true);
    });

    it('keeps the parsed message for the dead letter', () => {
      const result = parse(IDENTITY_SUBJECTS.userDeleted, { user_id: 'x' });
      expect(result).toMatchObject({
        ok: false,
        reason: 'invalid_data',
        json: { id: 'evt-1', data: { user_id: 'x' } },
      });
    });
  });

  describe('hostile input', () => {
    it('answers a hundred thousand unknown keys fast, with a bounded error list', () => {
      const data: Record<string, unknown> = { user_id: USER };
      for (let i = 0; i < 100_000; i++) data[`k${i}`] = i;
      const started = process.hrtime.bigint();
      const result = parse(IDENTITY_SUBJECTS.userDeleted, data);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      expect(errorsOf(result)).toHaveLength(20);
      expect(ms).toBeLessThan(2_000);
    });

    it('refuses __proto__, constructor and lone surrogates without touching prototypes', () => {
      const proto = parseIdentityMessage(
        'identity.user.deleted',
        bytes(
          `{"specversion":"1.0","id":"e","source":"s","type":"identity.user.deleted","time":"2026-12-02T09:00:00Z","data":{"user_id":"${USER}","__proto__":{"polluted":true}}}`,
        ),
      );
      expect(errorsOf(proto)).toEqual(['data.__proto__: is not a field of this request']);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const envelopeProto = parseIdentityMessage(
        'identity.user.deleted',
        bytes(
          `{"__proto__":{"type":"identity.user.deleted"},"specversion":"1.0","id":"e","source":"s","time":"2026-12-02T09:00:00Z","data":{"user_id":"${USER}"}}`,
        ),
      );
      expect(envelopeProto).toMatchObject({ ok: false, reason: 'unknown_type' });
      const surrogate = parseIdentityMessage(
        'identity.user.upserted',
        bytes(
          `{"specversion":"1.0","id":"e","source":"s","type":"identity.user.upserted","time":"2026-12-02T09:00:00Z","data":{"user_id":"${USER}","username":"ada","email":"a@b.co","name":"x\\ud800"}}`,
        ),
      );
      expect(errorsOf(surrogate)).toEqual(['data.name: must not contain unpaired UTF-16 surrogates']);
      const surrogateKey = parseIdentityMessage(
        'identity.user.deleted',
        bytes(
          `{"specversion":"1.0","id":"e\\udc00","source":"s","type":"identity.user.deleted","time":"2026-12-02T09:00:00Z","data":{"user_id":"${USER}","\\ud800":1}}`,
        ),
      );
      expect(errorsOf(surrogateKey)).toEqual([
        'id: must not contain control characters or unpaired surrogates',
      ]);
    });

    it('refuses deep nesting without exhausting the stack', () => {
      const deep = '['.repeat(50_000) + ']'.repeat(50_000);
      const result = parseIdentityMessage(
        'identity.user.deleted',
        bytes(
          `{"specversion":"1.0","id":"e","source":"s","type":"identity.user.deleted","time":"2026-12-02T09:00:00Z","data":{"user_id":${deep}}}`,
        ),
      );
      expect(errorsOf(result)).toEqual(['data.user_id: must not be nested more than 32 levels deep']);
    });
  });
});

describe('parseRfc3339', () => {
  it.each([
    ['2026-12-02T09:00:00Z', '2026-12-02T09:00:00.000Z'],
    ['2026-12-02t09:00:00.123456789z', '2026-12-02T09:00:00.123Z'],
    ['2026-12-02T10:30:00.5+01:30', '2026-12-02T09:00:00.500Z'],
    ['2024-02-29T00:00:00-00:00', '2024-02-29T00:00:00.000Z'],
  ])('reads %s', (input, iso) => {
    expect(parseRfc3339(input)?.toISOString()).toBe(iso);
  });

  it.each([
    '2026-12-02',
    '2026-12-02T09:00:00',
    '2025-02-29T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-12-02T24:00:00Z',
    '2026-12-02T09:00:00+25:00',
    'Wed, 02 Dec 2026 09:00:00 GMT',
  ])('refuses %s', (input) => {
    expect(parseRfc3339(input)).toBeNull();
  });
});
