import 'reflect-metadata';
import { Writable } from 'node:stream';
import { Test, type TestingModule } from '@nestjs/testing';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig } from '@aigov/config';
import {
  DEAD_LETTER_HEADERS,
  DLQ_STREAM,
  IDENTITY_CONSUMER,
  IDENTITY_STREAM,
  NatsModule,
  cloudEvent,
  type DeadLetter,
  type IdentityEvent,
} from '@aigov/contracts';
import { Metrics, ObservabilityModule, Readiness, createLogger } from '@aigov/observability';
import { startNatsServer, waitFor, type TestNatsServer } from '@aigov/testing';
import { IDENTITY_EVENT_APPLIER, type ApplyOutcome, type IdentityEventApplier } from '../apply/applier';
import { IDENTITY_CONSUMER_OPTIONS, type IdentityConsumerOptions } from './identity-consumer.options';
import { IdentityConsumerService } from './identity-consumer.service';

/**
 * A stand-in for the database applier, for these tests only: it records what it is given and
 * answers scripted outcomes, so that what is checked here is what JetStream does with them.
 */
class TestRecordingApplier implements IdentityEventApplier {
  readonly batches: IdentityEvent[][] = [];
  calls = 0;
  /** While set, every call rejects (the database is away). */
  failWith: Error | null = null;
  /** While set, calls wait for it (a slow transaction). */
  gate: Promise<void> | null = null;
  outcome: (event: IdentityEvent) => ApplyOutcome = () => ({ kind: 'applied' });
  /** When each event id was received, every time. */
  readonly receivedAt = new Map<string, number[]>();

  async applyBatch(events: readonly IdentityEvent[]): Promise<ApplyOutcome[]> {
    this.calls++;
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    this.batches.push([...events]);
    for (const e of events) this.receivedAt.set(e.id, [...(this.receivedAt.get(e.id) ?? []), Date.now()]);
    return events.map((e) => this.outcome(e));
  }

  ids(): string[] {
    return this.batches.flat().map((e) => e.id);
  }
}

interface Instance {
  module: TestingModule;
  readiness: Readiness;
  metrics: Metrics;
  logs: string[];
  close(): Promise<void>;
}

const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('identity consumer on a real nats-server', () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const running: Instance[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });

  afterEach(async () => {
    for (const instance of running.splice(0)) await instance.close();
    // The names are fixed by the contract: each test starts from a server without them.
    for (const stream of [IDENTITY_STREAM, DLQ_STREAM])
      await jsm.streams.delete(stream).catch(() => undefined);
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  function options(overrides: Partial<IdentityConsumerOptions> = {}): IdentityConsumerOptions {
    return {
      maxDeliver: 5,
      ackWaitMs: 5_000,
      retryBackoffMs: [200],
      batchSize: 20,
      // One batch at a time: these tests follow single batches (concurrency is the e2e tests' and
      // the bench's).
      concurrency: 1,
      lagPollMs: 200,
      idlePollMs: 1_000,
      ...overrides,
    };
  }

  async function start(
    applier: IdentityEventApplier | null,
    overrides: Partial<IdentityConsumerOptions> = {},
  ): Promise<Instance> {
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger('membership-listener', 'info', sink);
    const metrics = new Metrics('membership-listener');
    const readiness = new Readiness();
    const config = loadConfig({ NATS_URL: server.url });
    const module = await Test.createTestingModule({
      imports: [
        ObservabilityModule.forApp(logger, metrics, readiness),
        NatsModule.forRoot({ connection: config.nats, name: 'test-listener', enabled: true, readiness }),
      ],
      providers: [
        { provide: IDENTITY_CONSUMER_OPTIONS, useValue: options(overrides) },
        IdentityConsumerService,
        ...(applier ? [{ provide: IDENTITY_EVENT_APPLIER, useValue: applier }] : []),
      ],
    }).compile();
    let closed = false;
    const instance: Instance = {
      module,
      readiness,
      metrics,
      logs,
      close: async () => {
        if (closed) return;
        closed = true;
        await module.close();
      },
    };
    running.push(instance);
    await module.init();
    return instance;
  }

  async function publish(type: string, data: unknown, id?: string): Promise<number> {
    const event = { ...cloudEvent(type, 'test/idp', data), ...(id ? { id } : {}) };
    return (await jetstream(nc).publish(type, JSON.stringify(event))).seq;
  }

  async function publishRaw(subject: string, body: string): Promise<number> {
    return (await jetstream(nc).publish(subject, body)).seq;
  }

  async function deadLetters(): Promise<{ letter: DeadLetter; headers: MsgHdrs | undefined }[]> {
    const state = (await jsm.streams.info(DLQ_STREAM)).state;
    const out = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(DLQ_STREAM, { seq });
      if (m) out.push({ letter: m.json<DeadLetter>(), headers: m.header });
    }
    return out;
  }

  async function consumerInfo() {
    return jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER);
  }

  async function settled(): Promise<boolean> {
    const info = await consumerInfo();
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }

  it('applies valid events, dead-letters invalid ones at once and keeps going', async () => {
    const applier = new TestRecordingApplier();
    const listener = await start(applier);
    const good1 = await publish('identity.user.deleted', { user_id: USER }, 'good-1');
    const notJson = await publishRaw('identity.user.upserted', 'not json');
    const unknown = await publish('identity.user.renamed', { user_id: USER }, 'unknown-1');
    const invalid = await publish('identity.user.deleted', { user_id: 'nope', extra: 1 }, 'invalid-1');
    await publish('identity.user.deleted', { user_id: USER }, 'good-2');

    await waitFor('both valid events applied', () => applier.ids().length === 2, 20_000, 50);
    await waitFor('everything acknowledged', settled, 20_000, 100);
    expect(applier.ids()).toEqual(['good-1', 'good-2']);
    expect(good1).toBe(1);

    const letters = await deadLetters();
    expect(letters.map((l) => l.letter)).toMatchObject([
      {
        reason: 'invalid_json',
        errors: [expect.stringMatching(/^payload: must be JSON/)],
        subject: 'identity.user.upserted',
        stream_seq: notJson,
        deliveries: 1,
        raw: Buffer.from('not json').toString('base64'),
      },
      {
        reason: 'unknown_type',
        errors: ['type: unknown identity event type "identity.user.renamed"'],
        subject: 'identity.user.renamed',
        stream_seq: unknown,
        deliveries: 1,
        event: { id: 'unknown-1', type: 'identity.user.renamed' },
      },
      {
        reason: 'invalid_data',
        errors: ['data.extra: is not a field of this request'],
        subject: 'identity.user.deleted',
        stream_seq: invalid,
        deliveries: 1,
        event: { id: 'invalid-1', data: { user_id: 'nope', extra: 1 } },
      },
    ]);
    expect(Object.keys(letters[0].letter).sort()).toEqual(
      ['deliveries', 'errors', 'raw', 'reason', 'stream_seq', 'subject'].sort(),
    );
    expect(Object.keys(letters[2].letter).sort()).toEqual(
      ['deliveries', 'errors', 'event', 'reason', 'stream_seq', 'subject'].sort(),
    );
    expect(letters[0].headers?.get(DEAD_LETTER_HEADERS.cause)).toBe('invalid_json');
    expect(letters[2].headers?.get(DEAD_LETTER_HEADERS.streamSeq)).toBe(String(invalid));

    const text = (await listener.metrics.render()).body;
    expect(text).toMatch(/aigov_identity_events_applied_total\{type="identity.user.deleted"[^}]*\} 2/);
    expect(text).toMatch(/aigov_identity_events_dead_lettered_total\{reason="invalid_json"[^}]*\} 1/);
    expect(text).toMatch(/aigov_identity_events_dead_lettered_total\{reason="invalid_data"[^}]*\} 1/);
    expect(text).toMatch(/aigov_identity_batch_duration_seconds_count\{[^}]*\} [1-9]/);
    expect((await listener.readiness.report()).ready).toBe(true);
  });

  it('retries with the configured delays, dead-letters after max_deliver, and dead-letters `dead` at once', async () => {
    const applier = new TestRecordingApplier();
    applier.outcome = (e) =>
      e.id === 'retry-1'
        ? { kind: 'retry', reason: 'user 3f25... is not known yet' }
        : e.id === 'dead-1'
          ? {
              kind: 'dead',
              reason: 'targets an Everyone group',
              errors: ['data.group_id: is an Everyone group'],
            }
          : { kind: 'applied' };
    const listener = await start(applier, { maxDeliver: 3, retryBackoffMs: [400, 800] });
    const retrySeq = await publish(
      'identity.group.member.added',
      { group_id: USER, user_id: USER },
      'retry-1',
    );
    await publish('identity.group.member.added', { group_id: USER, user_id: USER }, 'dead-1');
    await publish('identity.user.deleted', { user_id: USER }, 'after-1');

    await waitFor(
      'the retried event dead-lettered',
      async () => (await deadLetters()).length === 2,
      30_000,
      100,
    );
    await waitFor('everything acknowledged', settled, 20_000, 100);
    const times = applier.receivedAt.get('retry-1')!;
    expect(times).toHaveLength(3);
    // Lower bounds only: a loaded machine may be late, never early.
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(350);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(750);
    expect(applier.receivedAt.get('dead-1')).toHaveLength(1);
    expect(applier.receivedAt.get('after-1')).toHaveLength(1);

    const letters = await deadLetters();
    const byCause = new Map(letters.map((l) => [l.headers?.get(DEAD_LETTER_HEADERS.cause), l.letter]));
    expect(byCause.get('rejected')).toMatchObject({
      reason: 'targets an Everyone group',
      errors: ['data.group_id: is an Everyone group'],
      deliveries: 1,
      event: { id: 'dead-1' },
    });
    expect(byCause.get('retries_exhausted')).toMatchObject({
      reason: 'user 3f25... is not known yet',
      errors: ['user 3f25... is not known yet'],
      subject: 'identity.group.member.added',
      stream_seq: retrySeq,
      deliveries: 3,
      event: { id: 'retry-1' },
    });
    const text = (await listener.metrics.render()).body;
    expect(text).toMatch(/aigov_identity_events_retried_total\{type="identity.group.member.added"[^}]*\} 2/);
    expect(text).toMatch(/aigov_identity_events_dead_lettered_total\{reason="retries_exhausted"[^}]*\} 1/);
  });

  it('holds a batch the database cannot take: nothing acknowledged, no delivery counted, not ready until it goes through', async () => {
    const applier = new TestRecordingApplier();
    applier.failWith = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    // ack_wait 1 s: without working() the event would be delivered again within the hold.
    const listener = await start(applier, { ackWaitMs: 1_000, retryBackoffMs: [150, 300] });
    await publish('identity.user.deleted', { user_id: USER }, 'held-1');
    await publish('identity.user.deleted', { user_id: USER }, 'held-2');

    await waitFor('a few failed attempts', () => applier.calls >= 3, 20_000, 50);
    const report = await listener.readiness.report();
    expect(report.ready).toBe(false);
    expect(report.checks['identity-consumer'].detail).toMatch(/^database: .*ECONNREFUSED/);
    // Hold it for three ack_waits.
    await new Promise((r) => setTimeout(r, 3_000));
    const during = await consumerInfo();
    // The first event is in hand (one was waiting when the listener asked); the second is not
    // fetched while the first cannot be applied.
    expect(during.num_ack_pending).toBe(1);
    expect(during.num_pending).toBe(1);
    expect(during.num_redelivered).toBe(0);
    expect(applier.batches).toHaveLength(0);
    const callsBefore = applier.calls;

    applier.failWith = null;
    await waitFor('the held batch applied', () => applier.ids().length === 2, 20_000, 50);
    await waitFor('ready again', async () => (await listener.readiness.report()).ready, 20_000, 100);
    await waitFor('everything acknowledged', settled, 20_000, 100);
    expect(applier.calls).toBeGreaterThan(callsBefore);
    expect(applier.ids()).toEqual(['held-1', 'held-2']);
    const after = await consumerInfo();
    expect(after.num_redelivered).toBe(0);
    expect(after.delivered.consumer_seq).toBe(2);
  });

  it('leaves an event unacknowledged when its dead letter cannot be stored, and dead-letters it on a later delivery', async () => {
    const applier = new TestRecordingApplier();
    await start(applier, { ackWaitMs: 1_000 });
    await jsm.streams.delete(DLQ_STREAM);
    await publishRaw('identity.user.deleted', '{"broken"');
    await waitFor(
      'the dead letter stored',
      async () => (await deadLetters().catch(() => [])).length === 1,
      30_000,
      100,
    );
    const [{ letter }] = await deadLetters();
    // The first delivery could not be dead-lettered (no DLQ stream) and was not acknowledged.
    expect(letter.deliveries).toBeGreaterThanOrEqual(2);
    await waitFor('everything acknowledged', settled, 20_000, 100);
    expect(applier.calls).toBe(0);
  });

  it('dead-letters an event whose last delivery was never acknowledged (an instance died holding it)', async () => {
    const settings = { maxDeliver: 2, ackWaitMs: 1_000 };
    const first = await start(new TestRecordingApplier(), settings);
    await first.close();
    const seq = await publish('identity.user.deleted', { user_id: USER }, 'orphan-1');
    // Two instances that fetched it and died before acknowledging: plain pulls, never acked.
    const consumer = await jetstream(nc).consumers.get(IDENTITY_STREAM, IDENTITY_CONSUMER);
    for (let delivery = 1; delivery <= 2; delivery++) {
      const msg = await consumer.next({ expires: 10_000 });
      expect(msg?.info.deliveryCount).toBe(delivery);
    }
    const applier = new TestRecordingApplier();
    const listener = await start(applier, settings);
    await waitFor(
      'the dead letter',
      async () => (await deadLetters().catch(() => [])).length === 1,
      30_000,
      100,
    );
    const [{ letter, headers }] = await deadLetters();
    expect(letter).toMatchObject({
      reason: 'not acknowledged after max_deliver deliveries',
      subject: 'identity.user.deleted',
      stream_seq: seq,
      deliveries: 2,
      event: { id: 'orphan-1' },
    });
    expect(headers?.get(DEAD_LETTER_HEADERS.cause)).toBe('unacknowledged');
    expect(applier.calls).toBe(0);
    const counted = /aigov_identity_events_dead_lettered_total\{reason="unacknowledged"[^}]*\} 1/;
    await waitFor(
      'the dead letter counted',
      async () => counted.test((await listener.metrics.render()).body),
      10_000,
      50,
    );
  });

  it('shares the work between two instances on the same durable consumer, each event applied once', async () => {
    const slow = (): TestRecordingApplier => {
      const a = new TestRecordingApplier();
      const apply = a.applyBatch.bind(a);
      a.applyBatch = async (events) => {
        // A little work per batch, so that one instance cannot take everything.
        await new Promise((r) => setTimeout(r, 30));
        return apply(events);
      };
      return a;
    };
    const a = slow();
    const b = slow();
    await Promise.all([start(a, { batchSize: 5 }), start(b, { batchSize: 5 })]);
    const total = 200;
    const js = jetstream(nc);
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        js.publish(
          'identity.user.deleted',
          JSON.stringify({
            ...cloudEvent('identity.user.deleted', 'test/idp', { user_id: USER }),
            id: `e-${i}`,
          }),
        ),
      ),
    );
    await waitFor('every event applied', () => a.ids().length + b.ids().length >= total, 60_000, 100);
    await waitFor('everything acknowledged', settled, 20_000, 100);
    const all = [...a.ids(), ...b.ids()];
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    expect(a.ids().length).toBeGreaterThan(0);
    expect(b.ids().length).toBeGreaterThan(0);
    expect((await consumerInfo()).num_redelivered).toBe(0);
  });

  it('finishes the batch in hand on shutdown, then fetches nothing more', async () => {
    const applier = new TestRecordingApplier();
    let release!: () => void;
    applier.gate = new Promise<void>((r) => (release = r));
    const listener = await start(applier);
    await publish('identity.user.deleted', { user_id: USER }, 'inflight-1');
    await waitFor('the batch in hand', () => applier.calls === 1, 20_000, 50);

    let closed = false;
    const closing = listener.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(closed).toBe(false);
    await publish('identity.user.deleted', { user_id: USER }, 'later-1');
    release();
    await closing;

    expect(applier.ids()).toEqual(['inflight-1']);
    const info = await consumerInfo();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(1);
    expect(listener.logs.filter((l) => l.includes('identity consumer stopped'))).toHaveLength(1);
  });

  it('sets up streams and the consumer once when several instances start together', async () => {
    await expect(jsm.streams.info(IDENTITY_STREAM)).rejects.toThrow(/not found/i);
    const instances = await Promise.all(
      Array.from({ length: 4 }, () => start(new TestRecordingApplier(), { maxDeliver: 7, ackWaitMs: 9_000 })),
    );
    expect(instances).toHaveLength(4);
    const streams: string[] = [];
    for await (const name of jsm.streams.names()) streams.push(name);
    expect(streams.sort()).toEqual([DLQ_STREAM, IDENTITY_STREAM]);
    expect((await jsm.streams.info(IDENTITY_STREAM)).config.subjects).toEqual(['identity.>']);
    expect((await jsm.streams.info(DLQ_STREAM)).config.subjects).toEqual(['aigov.dlq.>']);
    const consumers: string[] = [];
    for await (const c of jsm.consumers.list(IDENTITY_STREAM)) consumers.push(c.name);
    expect(consumers).toEqual([IDENTITY_CONSUMER]);
    const info = await consumerInfo();
    expect(info.config).toMatchObject({ ack_policy: 'explicit', max_deliver: 7, ack_wait: 9_000_000_000 });
    for (const instance of instances) {
      await waitFor('ready', async () => (await instance.readiness.report()).ready, 20_000, 100);
    }
  });

  it('refuses to start without an applier', async () => {
    await expect(start(null)).rejects.toThrow(/no IdentityEventApplier: provide IDENTITY_EVENT_APPLIER/);
  });
});
