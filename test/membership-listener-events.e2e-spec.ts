import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'pg';
import { IDENTITY_STREAM } from '@aigov/contracts';
import {
  createTestDatabase,
  insertOverride,
  startNatsServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
  testClient,
} from '@aigov/testing';
import {
  consumerSettled,
  counterTotal,
  deadLetters,
  event,
  killListener,
  publishAll,
  startListener,
  type Listener,
  type Published,
} from './helpers/listener';

// The compiled membership-listener fed through a real nats-server: events whose references come
// later, events it must refuse, repeats and events out of time order. What the applier does with
// each is tested on its own (apps/membership-listener/src/apply); here it is the whole path, from
// a JetStream publish to the database and the dead-letter stream.

const SETTLE_MS = 60_000;
jest.setTimeout(120_000);
/** Small, so that an event whose reference never comes is dead-lettered within seconds. */
const MAX_DELIVER = 4;
const DUPLICATES = 'aigov_identity_events_duplicate_total';
const STALE = 'aigov_identity_events_stale_total';

describe('membership-listener process: retries, dead letters, repeats and order', () => {
  let nats: TestNatsServer;
  let nc: NatsConnection;
  let testDb: TestDatabase;
  let db: Client;
  let listener: Listener | null = null;
  let clock = Date.parse('2026-11-20T00:00:00.000Z');
  const at = (): number => clock++;

  beforeAll(async () => {
    [nats, testDb] = await Promise.all([startNatsServer(), createTestDatabase()]);
    nc = await connect({ servers: nats.url });
    db = testClient({ connectionString: testDb.url });
    await db.connect();
    listener = await startListener('listener-events', {
      DATABASE_URL: testDb.url,
      NATS_URL: nats.url,
      IDENTITY_MAX_DELIVER: String(MAX_DELIVER),
      IDENTITY_RETRY_BACKOFF_MS: '200,400',
    });
  });

  afterAll(async () => {
    if (listener) await killListener(listener);
    await db?.end();
    await nc?.close();
    await Promise.all([nats?.stop(), testDb?.drop()]);
  });

  const settled = (): Promise<void> =>
    waitFor('every event handled', () => consumerSettled(nc), SETTLE_MS, 100);
  const rows = async <T>(sql: string, params: unknown[] = []): Promise<T[]> =>
    (await db.query(sql, params)).rows as T[];
  const groupMembers = async (group: string): Promise<string[]> =>
    (await rows<{ user_id: string }>('SELECT user_id FROM group_members WHERE group_id = $1', [group])).map(
      (r) => r.user_id,
    );
  const user = (id: string, name: string): Published =>
    event('identity.user.upserted', { user_id: id, username: name, email: `${name}@example.test` }, at());
  const letterOf = async (id: string) =>
    (await deadLetters(nc)).find((l) => (l.event as { id?: string } | undefined)?.id === id);

  it('applies a group member published before its user and organization membership; dead-letters one whose user never comes', async () => {
    const org = randomUUID();
    const group = randomUUID();
    const ada = randomUUID();
    const ghost = randomUUID();
    const orgEvent = event('identity.organization.upserted', { organization_id: org, name: 'early' }, at());
    const groupEvent = event(
      'identity.group.upserted',
      { group_id: group, organization_id: org, name: 'Early' },
      at(),
    );
    const adaUser = user(ada, 'ada-early');
    const adaMember = event(
      'identity.organization.member.added',
      { organization_id: org, user_id: ada },
      at(),
    );
    const adaJoins = event('identity.group.member.added', { group_id: group, user_id: ada }, at());
    const ghostJoins = event('identity.group.member.added', { group_id: group, user_id: ghost }, at());
    // Publish order differs from time order: the memberships come before what they refer to.
    await publishAll(nc, [orgEvent, groupEvent, adaJoins, ghostJoins, adaUser, adaMember]);
    await settled();

    expect(await groupMembers(group)).toEqual([ada]);
    // Ada's membership waited for her user: it was applied in a later transaction.
    const applied = await rows<{ event_id: string; applied_at: Date }>(
      'SELECT event_id, applied_at FROM identity_applied_events WHERE event_id = ANY($1)',
      [[adaUser.id, adaJoins.id, ghostJoins.id]],
    );
    const when = new Map(applied.map((r) => [r.event_id, r.applied_at.getTime()]));
    expect(when.has(ghostJoins.id)).toBe(false);
    expect(when.get(adaJoins.id)).toBeGreaterThan(when.get(adaUser.id)!);

    const letter = await letterOf(ghostJoins.id);
    expect(letter).toMatchObject({
      subject: 'identity.group.member.added',
      deliveries: MAX_DELIVER,
      reason: expect.stringContaining(`unknown user ${ghost}`) as unknown,
      errors: [expect.stringContaining(`unknown user ${ghost}`)],
    });
    expect(await letterOf(adaJoins.id)).toBeUndefined();
  });

  it('dead-letters malformed, ill-formed and Everyone-aimed events with the reason, and keeps going', async () => {
    const org = randomUUID();
    const bob = randomUUID();
    const after = randomUUID();
    await publishAll(nc, [
      event('identity.organization.upserted', { organization_id: org, name: 'poisoned' }, at()),
      user(bob, 'bob-poison'),
      event('identity.organization.member.added', { organization_id: org, user_id: bob }, at()),
    ]);
    const wrongEnvelope = { ...JSON.parse(user(randomUUID(), 'x').body), specversion: '0.3' } as {
      id: string;
    };
    const missingField = event(
      'identity.user.upserted',
      { user_id: randomUUID(), username: 'no-email' },
      at(),
    );
    const everyoneJoin = event('identity.group.member.added', { group_id: org, user_id: bob }, at());
    const everyoneRename = event(
      'identity.group.upserted',
      { group_id: org, organization_id: org, name: 'Not everyone' },
      at(),
    );
    const valid = user(after, 'after-poison');
    const js = jetstream(nc);
    const malformed = await js.publish('identity.user.upserted', '{"specversion": "1.0", "id": ');
    await js.publish('identity.user.upserted', JSON.stringify(wrongEnvelope));
    await publishAll(nc, [missingField, everyoneJoin, everyoneRename, valid]);
    await settled();

    const letters = await deadLetters(nc);
    const raw = letters.find((l) => l.stream_seq === malformed.seq);
    expect(raw).toMatchObject({ reason: 'invalid_json', subject: 'identity.user.upserted', deliveries: 1 });
    expect(Buffer.from(raw!.raw!, 'base64').toString()).toBe('{"specversion": "1.0", "id": ');
    expect(await letterOf(wrongEnvelope.id)).toMatchObject({
      reason: 'invalid_cloudevent',
      errors: [expect.stringContaining('specversion')],
    });
    expect(await letterOf(missingField.id)).toMatchObject({
      reason: 'invalid_data',
      errors: [expect.stringContaining('data.email')],
    });
    // Only the database knows that a group id is an organization's: refused by the applier.
    expect(await letterOf(everyoneJoin.id)).toMatchObject({
      reason: 'targets_everyone_group',
      errors: [expect.stringContaining('Everyone')],
      deliveries: 1,
    });
    // group_id equal to organization_id is refused by validation already.
    expect(await letterOf(everyoneRename.id)).toMatchObject({
      reason: 'invalid_data',
      errors: [expect.stringMatching(/^data\.group_id: .*Everyone/)],
      deliveries: 1,
    });
    // The Everyone group is untouched, and the event after the poison is applied.
    expect(await rows('SELECT name FROM groups WHERE id = $1', [org])).toEqual([{ name: 'Everyone' }]);
    expect(await rows('SELECT username FROM users WHERE id = $1', [after])).toEqual([
      { username: 'after-poison' },
    ]);
    const info = await (await jetstreamManager(nc)).consumers.info(IDENTITY_STREAM, 'membership-listener');
    expect(info.num_redelivered).toBe(0);
  });

  it('repeats have one effect, a late addition does not undo a later removal, leaving the organization ends overrides', async () => {
    const org = randomUUID();
    const group = randomUUID();
    const [carol, dave, erin, finn] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const setup = [
      event('identity.organization.upserted', { organization_id: org, name: 'ordered' }, at()),
      event('identity.group.upserted', { group_id: group, organization_id: org, name: 'Ordered' }, at()),
      ...[carol, dave, erin, finn].flatMap((u, i) => [
        user(u, `ordered-${i}`),
        event('identity.organization.member.added', { organization_id: org, user_id: u }, at()),
      ]),
      event('identity.group.member.added', { group_id: group, user_id: finn }, at()),
    ];
    await publishAll(nc, setup);
    await settled();
    // Overrides on Everyone and on a group of the organization, given through the API's tables.
    await insertOverride(db, erin, org, 1_000_000);
    await insertOverride(db, finn, group, 2_000_000);

    const carolJoins = event('identity.group.member.added', { group_id: group, user_id: carol }, at());
    const daveJoinsEarly = event('identity.group.member.added', { group_id: group, user_id: dave }, at());
    const daveLeavesLater = event('identity.group.member.removed', { group_id: group, user_id: dave }, at());
    const erinLeaves = event(
      'identity.organization.member.removed',
      { organization_id: org, user_id: erin },
      at(),
    );
    const finnLeaves = event(
      'identity.organization.member.removed',
      { organization_id: org, user_id: finn },
      at(),
    );
    const duplicatesBefore = await counterTotal(listener!.port, DUPLICATES);
    const staleBefore = await counterTotal(listener!.port, STALE);
    await publishAll(nc, [
      carolJoins,
      carolJoins,
      carolJoins,
      daveLeavesLater,
      daveJoinsEarly,
      erinLeaves,
      finnLeaves,
    ]);
    await settled();

    expect(await groupMembers(group)).toEqual([carol]);
    expect(
      await rows('SELECT count(*)::int AS n FROM identity_applied_events WHERE event_id = $1', [
        carolJoins.id,
      ]),
    ).toEqual([{ n: 1 }]);
    const audit = await rows<{ actor: string; action: string; resource_type: string; resource_id: string }>(
      `SELECT actor, action, resource_type, resource_id FROM audit_logs WHERE request_id = ANY($1)
        ORDER BY resource_type, resource_id`,
      [[carolJoins.id, daveJoinsEarly.id, daveLeavesLater.id]],
    );
    // Carol joined once; Dave's removal of a membership he never had changed nothing; his late
    // addition was ignored.
    expect(audit).toEqual([
      {
        actor: 'system:membership-listener',
        action: 'create',
        resource_type: 'group_member',
        resource_id: `${group}/${carol}`,
      },
    ]);
    expect((await counterTotal(listener!.port, DUPLICATES)) - duplicatesBefore).toBe(2);
    expect((await counterTotal(listener!.port, STALE)) - staleBefore).toBe(1);

    expect(
      await rows('SELECT user_id FROM user_ai_budget_overrides WHERE user_id = ANY($1)', [[erin, finn]]),
    ).toEqual([]);
    const ended = await rows<{ resource_id: string; request_id: string; actor: string; reason: string }>(
      `SELECT resource_id, request_id, actor, reason FROM audit_logs
        WHERE resource_type = 'user_ai_budget_override' AND action = 'delete' AND resource_id = ANY($1)
        ORDER BY request_id`,
      [[erin, finn]],
    );
    expect(ended).toEqual(
      [
        {
          resource_id: erin,
          request_id: erinLeaves.id,
          actor: 'system:database',
          reason: 'membership_removed',
        },
        {
          resource_id: finn,
          request_id: finnLeaves.id,
          actor: 'system:database',
          reason: 'membership_removed',
        },
      ].sort((x, y) => x.request_id.localeCompare(y.request_id)),
    );
  });

  // Out of time order (two instances, a redelivery): an organization removal applied after a
  // newer group addition must not take that group membership with it, since the addition proves
  // the user rejoined in between; the group memberships older than the removal still go.
  it('a group membership survives an older organization removal applied after it', async () => {
    const org = randomUUID();
    const [before, after, late] = [randomUUID(), randomUUID(), randomUUID()];
    const gail = randomUUID();
    await publishAll(nc, [
      event('identity.organization.upserted', { organization_id: org, name: 'rejoined' }, at()),
      event('identity.group.upserted', { group_id: before, organization_id: org, name: 'Before' }, at()),
      event('identity.group.upserted', { group_id: after, organization_id: org, name: 'After' }, at()),
      event('identity.group.upserted', { group_id: late, organization_id: org, name: 'Late' }, at()),
      user(gail, 'gail-rejoins'),
    ]);
    const [joins, joinsLate, joinsBefore, leaves, rejoins, joinsAfter] = [at(), at(), at(), at(), at(), at()];
    const leave = event(
      'identity.organization.member.removed',
      { organization_id: org, user_id: gail },
      leaves,
    );
    // In time order she joins, joins Late and Before, leaves (and so both), rejoins, joins After.
    await publishAll(nc, [
      event('identity.organization.member.added', { organization_id: org, user_id: gail }, joins),
      event('identity.group.member.added', { group_id: before, user_id: gail }, joinsBefore),
      event('identity.group.member.added', { group_id: after, user_id: gail }, joinsAfter),
      leave,
      event('identity.organization.member.added', { organization_id: org, user_id: gail }, rejoins),
      // From before she left, arriving last: it lost to the removal.
      event('identity.group.member.added', { group_id: late, user_id: gail }, joinsLate),
    ]);
    await settled();
    expect(await rows('SELECT user_id FROM organization_members WHERE organization_id = $1', [org])).toEqual([
      { user_id: gail },
    ]);
    expect(await groupMembers(before)).toEqual([]);
    expect(await groupMembers(after)).toEqual([gail]);
    expect(await groupMembers(late)).toEqual([]);
    expect(
      await rows('SELECT actor, action, resource_id FROM audit_logs WHERE request_id = $1', [leave.id]),
    ).toEqual([{ actor: 'system:membership-listener', action: 'delete', resource_id: `${before}/${gail}` }]);
  });
});
