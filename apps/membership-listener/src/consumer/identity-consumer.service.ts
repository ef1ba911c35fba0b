import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import {
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  IDENTITY_CONSUMER,
  IDENTITY_DLQ_SUBJECT,
  IDENTITY_STREAM,
  NATS_CONNECTION_TOKEN,
  publishDeadLetter,
  watchMaxDeliveries,
  type DeadLetterTarget,
  parseIdentityMessage,
  type IdentityEvent,
  type NatsConnection,
} from '@aigov/contracts';
import type { Subscription } from '@nats-io/transport-node';
import { APP_LOGGER, Metrics, Readiness, type Logger } from '@aigov/observability';
import { IDENTITY_EVENT_APPLIER, type ApplyOutcome, type IdentityEventApplier } from '../apply/applier';
import { IDENTITY_CONSUMER_OPTIONS, type IdentityConsumerOptions } from './identity-consumer.options';
import { IdentityMetrics, type DeadLetterCause } from './identity-metrics';
import { ensureIdentityJetStream } from './jetstream-setup';

/** Shortest pull wait the client accepts; used when the consumer says more events are waiting. */
const BUSY_PULL_MS = 1_000;

interface Held {
  msg: JsMsg;
  /** Still ours to settle: kept alive with working() until acked, nakked or given up. */
  open: boolean;
}

/**
 * The JetStream consumer of identity events (docs/nats.md): pulls batches from the durable
 * consumer `membership-listener`, dead-letters what does not parse, hands the rest to the applier
 * in one call, and acknowledges each event only once it is applied (or known to be a duplicate or
 * stale) or safely dead-lettered. A batch the database cannot take is held, kept alive with
 * working(), and tried again until it goes through; nothing more is fetched meanwhile.
 */
@Injectable()
export class IdentityConsumerService
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly metrics: IdentityMetrics;
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private advisories: Subscription | null = null;
  private consumer: Consumer | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private readonly sleepers = new Set<() => void>();
  private currentFetch: ConsumerMessages | null = null;
  /** Events the consumer reported as still waiting after the last one we got. */
  private pendingHint = 0;
  private lagTimer: NodeJS.Timeout | null = null;
  /** Readiness problems, null when fine. */
  private setupProblem: string | null = 'identity consumer not started';
  private fetchProblem: string | null = null;
  private databaseProblem: string | null = null;

  constructor(
    @Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null,
    @Optional() @Inject(IDENTITY_EVENT_APPLIER) private readonly applier: IdentityEventApplier | null,
    @Inject(IDENTITY_CONSUMER_OPTIONS) private readonly options: IdentityConsumerOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    metrics: Metrics,
    readiness: Readiness,
  ) {
    this.metrics = new IdentityMetrics(metrics);
    readiness.register('identity-consumer', () => this.readinessProblem());
  }

  onModuleInit(): void {
    // Without an applier the listener would consume events and apply none of them: refuse to start.
    if (!this.applier) {
      throw new Error(
        'membership-listener has no IdentityEventApplier: provide IDENTITY_EVENT_APPLIER in its module',
      );
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.nc) {
      this.setupProblem = null;
      this.logger.warn('NATS_ENABLED=false: identity events are not consumed');
      return;
    }
    const jsm = await jetstreamManager(this.nc);
    await ensureIdentityJetStream(jsm, this.options, this.logger);
    this.jsm = jsm;
    this.js = jetstream(this.nc);
    this.consumer = await this.js.consumers.get(IDENTITY_STREAM, IDENTITY_CONSUMER);
    this.setupProblem = null;
    this.watchMaxDeliveries(this.nc);
    this.loop = this.run();
    this.lagTimer = setInterval(() => void this.pollLag(), this.options.lagPollMs);
    this.lagTimer.unref();
    void this.pollLag();
  }

  /** Stops fetching, lets the batch in hand finish (applied and acknowledged), then returns. */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.loop) return;
    this.stopping = true;
    this.setupProblem = 'identity consumer stopping';
    if (this.lagTimer) clearInterval(this.lagTimer);
    // An idle pull is given up at once; an event the server sends into it after this is
    // delivered again once ack_wait has passed.
    this.currentFetch?.stop();
    this.advisories?.unsubscribe();
    for (const wake of [...this.sleepers]) wake();
    await this.loop;
    this.loop = null;
    this.logger.info(`identity consumer stopped`);
  }

  private readinessProblem(): string | null {
    return this.setupProblem ?? this.fetchProblem ?? this.databaseProblem;
  }

  /**
   * Fetches and applies batches, up to `concurrency` of them at once (each in its own
   * transaction): while one waits for the database the next is on its way. A batch that touches
   * what a batch in flight touches waits for it (touchedBy), so events about the same things are
   * applied in stream order, as with one batch at a time. Nothing is fetched while a batch is
   * held for the database.
   */
  private async run(): Promise<void> {
    let failures = 0;
    const inFlight = new Map<Promise<void>, Touched>();
    const settled = () => Promise.race(inFlight.keys());
    while (!this.stopping) {
      if (inFlight.size >= this.options.concurrency || (inFlight.size > 0 && this.databaseProblem)) {
        await settled();
        continue;
      }
      let batch: JsMsg[];
      try {
        batch = await this.fetchBatch();
        if (this.fetchProblem) this.logger.info('identity consumer fetching again');
        this.fetchProblem = null;
        failures = 0;
      } catch (err) {
        if (this.stopping) break;
        this.fetchProblem = `cannot fetch identity events: ${(err as Error).message}`;
        if (failures === 0) this.logger.warn({ err }, this.fetchProblem);
        await this.sleep(this.backoffMs(failures++));
        await this.recover();
        continue;
      }
      if (batch.length === 0) continue;
      const touched = touchedBy(batch);
      while (overlaps(touched, inFlight)) await settled();
      const handled: Promise<void> = this.handleBatch(batch).finally(() => inFlight.delete(handled));
      inFlight.set(handled, touched);
    }
    await Promise.all(inFlight.keys());
  }

  /**
   * One pull. When the consumer said more events are waiting, asks for up to a batch of them;
   * otherwise asks for one and waits for it, so a lone event is handled as soon as it arrives
   * rather than when a half-empty pull expires.
   */
  private async fetchBatch(): Promise<JsMsg[]> {
    const consumer = this.consumer!;
    const want = Math.min(this.options.batchSize, Math.max(1, this.pendingHint));
    const messages = await consumer.fetch({
      max_messages: want,
      expires: this.pendingHint > 0 ? BUSY_PULL_MS : this.options.idlePollMs,
    });
    this.currentFetch = messages;
    const out: JsMsg[] = [];
    try {
      for await (const msg of messages) out.push(msg);
    } finally {
      this.currentFetch = null;
    }
    this.pendingHint = out.length > 0 ? out[out.length - 1].info.pending : 0;
    return out;
  }

  /** After a failed pull: the consumer (or stream) may have been deleted; make them again. */
  private async recover(): Promise<void> {
    if (this.stopping || !this.nc) return;
    try {
      const jsm = await jetstreamManager(this.nc);
      await ensureIdentityJetStream(jsm, this.options, this.logger);
      this.consumer = await this.js!.consumers.get(IDENTITY_STREAM, IDENTITY_CONSUMER);
    } catch (err) {
      this.logger.debug({ err }, 'identity consumer setup not possible yet');
    }
  }

  private async handleBatch(msgs: JsMsg[]): Promise<void> {
    const stopTimer = this.metrics.batchDuration.startTimer();
    const held: Held[] = msgs.map((msg) => ({ msg, open: true }));
    // Keeps every event we still hold from being delivered elsewhere (and counted) meanwhile.
    const keepAlive = setInterval(
      () => {
        for (const h of held) if (h.open) h.msg.working();
      },
      Math.max(250, Math.floor(this.options.ackWaitMs / 3)),
    );
    try {
      const valid: { held: Held; event: IdentityEvent }[] = [];
      for (const h of held) {
        const parsed = parseIdentityMessage(h.msg.subject, h.msg.data);
        if (parsed.ok) valid.push({ held: h, event: parsed.event });
        else await this.deadLetter(h, parsed.reason, parsed.reason, parsed.errors, parsed.json);
      }
      if (valid.length === 0) return;
      const outcomes = await this.applyHeld(valid.map((v) => v.event));
      // Stopping while the database is away: the events stay unacknowledged for the next owner.
      if (!outcomes) return;
      for (const [i, { held: h, event }] of valid.entries()) await this.settle(h, event, outcomes[i]);
    } finally {
      clearInterval(keepAlive);
      // The acks on their way before the next pull; bounded, as a flush waits out a disconnection.
      if (this.nc && !this.nc.isClosed()) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.nc.flush().catch(() => undefined),
          new Promise((resolve) => (timer = setTimeout(resolve, 2_000))),
        ]);
        clearTimeout(timer);
      }
      stopTimer();
    }
  }

  /**
   * applyBatch until it resolves. While it rejects (the database is away) the listener reports
   * not ready and tries again with backoff; null when it is stopping and the last try failed.
   */
  private async applyHeld(events: IdentityEvent[]): Promise<ApplyOutcome[] | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        const outcomes = await this.applier!.applyBatch(events);
        if (outcomes.length !== events.length) {
          throw new Error(`the applier returned ${outcomes.length} outcomes for ${events.length} events`);
        }
        if (this.databaseProblem) this.logger.info('identity events are applied again');
        this.databaseProblem = null;
        return outcomes;
      } catch (err) {
        this.metrics.databaseFailures.inc();
        const first = this.databaseProblem === null;
        this.databaseProblem = `database: applying identity events failed: ${(err as Error).message}`;
        if (first)
          this.logger.warn({ err, events: events.length }, 'identity batch held: applying it failed');
        if (this.stopping) {
          this.logger.warn({ events: events.length }, 'identity batch left unacknowledged: stopping');
          return null;
        }
        await this.sleep(this.backoffMs(attempt));
      }
    }
  }

  private async settle(h: Held, event: IdentityEvent, outcome: ApplyOutcome): Promise<void> {
    const type = event.type;
    switch (outcome.kind) {
      case 'applied':
        this.metrics.applied.inc({ type });
        return this.ack(h);
      case 'duplicate':
        this.metrics.duplicates.inc({ type });
        return this.ack(h);
      case 'stale':
        this.metrics.stale.inc({ type });
        return this.ack(h);
      case 'retry': {
        const deliveries = h.msg.info.deliveryCount;
        if (deliveries >= this.options.maxDeliver) {
          await this.deadLetter(h, 'retries_exhausted', outcome.reason, [outcome.reason], this.jsonOf(h.msg));
          return;
        }
        this.metrics.retried.inc({ type });
        h.open = false;
        h.msg.nak(this.retryDelayMs(deliveries));
        return;
      }
      case 'dead':
        await this.deadLetter(h, 'rejected', outcome.reason, outcome.errors, this.jsonOf(h.msg));
        return;
    }
  }

  private ack(h: Held): void {
    h.open = false;
    h.msg.ack();
  }

  /**
   * Publishes the dead letter and waits for JetStream to store it, then acknowledges the
   * original. If the publish fails the original is left alone: it is delivered again later.
   */
  private async deadLetter(
    h: Held,
    cause: DeadLetterCause,
    reason: string,
    errors: string[],
    json: unknown,
  ): Promise<void> {
    const { msg } = h;
    try {
      await publishDeadLetter(this.js!, this.deadLetterTarget(), msg, { cause, reason, errors, json });
    } catch (err) {
      h.open = false;
      this.logger.error(
        { err, subject: msg.subject, stream_seq: msg.info.streamSequence },
        'could not dead-letter an identity event; it will be delivered again',
      );
      // Someone may have deleted the DLQ stream: make it again for the next delivery.
      void this.recover();
      return;
    }
    this.metrics.deadLettered.inc({ reason: cause });
    this.logger.warn(
      { subject: msg.subject, stream_seq: msg.info.streamSequence, reason, errors: errors.slice(0, 5) },
      'identity event dead-lettered',
    );
    this.ack(h);
  }

  private jsonOf(msg: JsMsg): unknown {
    try {
      return JSON.parse(Buffer.from(msg.data).toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }

  /** The delay before delivery number `deliveries + 1` of an event that asked to be retried. */
  private retryDelayMs(deliveries: number): number {
    const steps = this.options.retryBackoffMs;
    return steps[Math.min(Math.max(deliveries, 1), steps.length) - 1];
  }

  private backoffMs(attempt: number): number {
    const steps = this.options.retryBackoffMs;
    return steps[Math.min(attempt, steps.length - 1)];
  }

  /** Waits, or less when stopping. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  /** Messages nats-server stopped delivering unacknowledged go to the dead letters too. */
  private watchMaxDeliveries(nc: NatsConnection): void {
    this.advisories = watchMaxDeliveries(nc, this.js!, this.jsm!, this.deadLetterTarget(), this.logger, () =>
      this.metrics.deadLettered.inc({ reason: 'unacknowledged' }),
    );
  }

  private deadLetterTarget(): DeadLetterTarget {
    return {
      stream: IDENTITY_STREAM,
      consumer: IDENTITY_CONSUMER,
      dlqSubject: IDENTITY_DLQ_SUBJECT,
      maxDeliver: this.options.maxDeliver,
      maxDeliverVariable: 'IDENTITY_MAX_DELIVER',
      what: 'identity event',
    };
  }

  private async pollLag(): Promise<void> {
    if (!this.consumer || this.stopping) return;
    try {
      const info = await this.consumer.info(false);
      this.metrics.pending.set(info.num_pending);
      this.metrics.ackPending.set(info.num_ack_pending);
      if (this.setupProblem) this.logger.info(`consumer ${IDENTITY_CONSUMER} is back`);
      this.setupProblem = null;
    } catch (err) {
      if (this.stopping) return;
      const missing = /not found/i.test((err as Error).message);
      this.setupProblem = missing
        ? `JetStream consumer ${IDENTITY_CONSUMER} does not exist`
        : `cannot read consumer ${IDENTITY_CONSUMER}: ${(err as Error).message}`;
      if (missing) await this.recover();
    }
  }
}

/**
 * What a batch's events touch, for ordering batches in flight: group memberships by pair, users
 * (their organization memberships, which reach their group memberships), and `all` for events
 * that reach many things at once (snapshots, organization and group upserts and deletions).
 */
interface Touched {
  all: boolean;
  users: Set<string>;
  pairs: Set<string>;
  pairUsers: Set<string>;
}

/**
 * Read straight from the JSON, before validation: a message that does not parse touches nothing
 * (it is dead-lettered, changing no row).
 */
function touchedBy(batch: readonly JsMsg[]): Touched {
  const t: Touched = { all: false, users: new Set(), pairs: new Set(), pairUsers: new Set() };
  for (const msg of batch) {
    let data: Record<string, unknown>;
    try {
      const parsed = (JSON.parse(new TextDecoder().decode(msg.data)) as { data?: unknown }).data;
      if (typeof parsed !== 'object' || parsed === null) continue;
      data = parsed as Record<string, unknown>;
    } catch {
      continue;
    }
    const user = typeof data.user_id === 'string' ? data.user_id.toLowerCase() : null;
    const group = typeof data.group_id === 'string' ? data.group_id.toLowerCase() : null;
    if (msg.subject.startsWith('identity.group.member.') && user && group) {
      t.pairs.add(`${group}/${user}`);
      t.pairUsers.add(user);
    } else if (
      (msg.subject.startsWith('identity.user.') || msg.subject.startsWith('identity.organization.member.')) &&
      user
    ) {
      t.users.add(user);
    } else {
      t.all = true;
    }
  }
  return t;
}

const meets = (a: ReadonlySet<string>, b: ReadonlySet<string>) => [...a].some((x) => b.has(x));

function overlaps(t: Touched, inFlight: ReadonlyMap<unknown, Touched>): boolean {
  for (const o of inFlight.values()) {
    if (t.all || o.all || meets(t.users, o.users) || meets(t.pairs, o.pairs)) return true;
    if (meets(t.users, o.pairUsers) || meets(o.users, t.pairUsers)) return true;
  }
  return false;
}
