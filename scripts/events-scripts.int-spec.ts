import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  DLQ_STREAM,
  IDENTITY_DLQ_SUBJECT,
  IDENTITY_STREAM,
  cloudEvent,
  deadLetterOf,
  parseIdentityMessage,
} from '@aigov/contracts';
import { startNatsServer, type TestNatsServer } from '@aigov/testing';
import { main as dlq } from './events-dlq';
import { main as publish, SOURCE } from './events-publish';

const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('npm run events:publish and events:dlq (real nats-server)', () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let env: Record<string, string>;

  async function run(
    fn: typeof publish,
    args: string[],
  ): Promise<{ code: number; out: string[]; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await fn(args, env, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err: err.join('\n') };
  }

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    env = { NATS_URL: server.url };
  });

  afterEach(async () => {
    for (const stream of [IDENTITY_STREAM, DLQ_STREAM])
      await jsm.streams.delete(stream).catch(() => undefined);
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  async function createStreams(): Promise<void> {
    await jsm.streams.add({ name: IDENTITY_STREAM, subjects: ['identity.>'] });
    await jsm.streams.add({ name: DLQ_STREAM, subjects: ['aigov.dlq.>'] });
  }

  it('publishes a CloudEvent the listener accepts and prints where it was stored', async () => {
    await createStreams();
    const r = await run(publish, [
      'identity.user.upserted',
      `{"user_id":"${USER}","username":"ada","email":"ada@example.com"}`,
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      expect.stringMatching(/^published identity\.user\.upserted id [0-9a-f-]{36} to stream IDENTITY seq 1$/),
    ]);
    const stored = (await jsm.streams.getMessage(IDENTITY_STREAM, { seq: 1 }))!;
    expect(stored.subject).toBe('identity.user.upserted');
    const parsed = parseIdentityMessage(stored.subject, stored.data);
    expect(parsed.ok).toBe(true);
    expect(stored.json()).toMatchObject({
      specversion: '1.0',
      source: SOURCE,
      type: 'identity.user.upserted',
    });
  });

  it('explains a bad subject, bad JSON and a missing stream', async () => {
    const badSubject = await run(publish, ['identity.user.renamed', '{}']);
    expect(badSubject.code).toBe(2);
    expect(badSubject.err).toMatch(/^Unknown subject "identity.user.renamed"/);
    expect(badSubject.err).toContain('identity.user.upserted');
    const badJson = await run(publish, ['identity.user.deleted', '{user_id:1}']);
    expect(badJson.code).toBe(2);
    expect(badJson.err).toMatch(/^The data is not JSON: /);
    const notObject = await run(publish, ['identity.user.deleted', '[1]']);
    expect(notObject.code).toBe(2);
    expect((await run(publish, ['identity.user.deleted'])).code).toBe(2);
    const noStream = await run(publish, ['identity.user.deleted', `{"user_id":"${USER}"}`]);
    expect(noStream.code).toBe(1);
    expect(noStream.err).toMatch(
      /No JetStream stream stores identity\.user\.deleted .*start the membership listener/,
    );
  });

  it('lists dead letters and replays one or all of them to their subjects, deleting what it replayed', async () => {
    await createStreams();
    const js = jetstream(nc);
    const event = cloudEvent('identity.user.deleted', 'test', { user_id: USER });
    const letters = [
      deadLetterOf({
        reason: 'invalid_data',
        errors: ['data.user_id: must be a UUID'],
        subject: 'identity.user.deleted',
        streamSeq: 7,
        deliveries: 1,
        json: event,
        payload: Buffer.from(JSON.stringify(event)),
      }),
      deadLetterOf({
        reason: 'invalid_json',
        errors: ['payload: must be JSON'],
        subject: 'identity.group.deleted',
        streamSeq: 8,
        deliveries: 1,
        json: undefined,
        payload: Buffer.from('not json'),
      }),
    ];
    for (const letter of letters) await js.publish(IDENTITY_DLQ_SUBJECT, JSON.stringify(letter));

    const listed = await run(dlq, ['list']);
    expect(listed.code).toBe(0);
    expect(listed.out[0]).toBe('seq\ttime\treason\tsubject\tevent_id');
    expect(listed.out.slice(1).map((l) => l.split('\t'))).toEqual([
      ['1', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'invalid_data', 'identity.user.deleted', event.id],
      ['2', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'invalid_json', 'identity.group.deleted', '-'],
    ]);
    expect((await run(dlq, ['list', '--limit', '1'])).out).toHaveLength(2);
    expect((await run(dlq, ['list', '--limit', 'x'])).code).toBe(2);

    const one = await run(dlq, ['replay', '--seq', '2']);
    expect(one.code).toBe(0);
    expect(one.out).toEqual(['replayed DLQ seq 2 to identity.group.deleted (stream IDENTITY seq 1)']);
    const raw = (await jsm.streams.getMessage(IDENTITY_STREAM, { seq: 1 }))!;
    expect(raw.subject).toBe('identity.group.deleted');
    expect(Buffer.from(raw.data).toString()).toBe('not json');
    expect(await jsm.streams.getMessage(DLQ_STREAM, { seq: 2 })).toBeNull();
    const missing = await run(dlq, ['replay', '--seq', '2']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no identity dead letter with DLQ seq 2/);

    const all = await run(dlq, ['replay']);
    expect(all.code).toBe(0);
    expect(all.out).toEqual(['replayed DLQ seq 1 to identity.user.deleted (stream IDENTITY seq 2)']);
    const replayed = (await jsm.streams.getMessage(IDENTITY_STREAM, { seq: 2 }))!;
    expect(replayed.json()).toEqual(event);
    expect((await jsm.streams.info(DLQ_STREAM)).state.messages).toBe(0);
    expect((await run(dlq, ['list'])).out).toHaveLength(1);
  });
});
