import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
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
import type { Subscription } from '@nats-io/transport-node';
import {
  AI_GATEWAY_ACTOR,
  NATS_CONNECTION_TOKEN,
  USAGE_CONSUMER,
  USAGE_DLQ_SUBJECT,
  USAGE_STREAM,
  publishDeadLetter,
  watchMaxDeliveries,
  type DeadLetterTarget,
  type NatsConnection,
  type UsageRecord,
} from '@aigov/contracts';
import { isDatabaseUnavailableError } from '@aigov/db';
import { isDomainError } from '@aigov/errors';
import { APP_LOGGER, Metrics, Readiness, type Logger } from '@aigov/observability';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { EnforcementService, type UsageOutcome } from './enforcement.service';
import { ensureUsageJetStream, type UsageConsumerSettings } from './usage-consumer.jetstream';
import { UsageConsumerMetrics } from './usage-consumer.metrics';
import { parseUsageMessage, type UsageDeadLetterCause } from './usage-consumer.parse';

/** Shortest pull wait the client accepts; used when the consumer says more records are waiting. */
const BUSY_PULL_MS = 1_000;
/** How long an idle pull waits for the next record before asking again. */
const IDLE_PULL_MS = 5_000;
/** How often the backlog is read for the lag gauges (and the consumer's existence checked). */
const LAG_POLL_MS = 5_000;
/** Pauses between tries of a batch the database cannot take; the last one repeats. */
const RETRY_PAUSES_MS = [500, 1_000, 2_000, 5_000, 10_000];
/** Failed tries of a whole batch, not for want of a database, before its records are tried alone. */
const TRIES_BEFORE_ISOLATING = 3;

interface Held {
  msg: JsMsg;
  /** Still ours to settle: kept alive with working() until acked or given up. */
  open: boolean;
}

/** A batch parsed and rid of its invalid records, waiting for (or in) the database. */
interface PreparedBatch {
  /** The messages of the records to record, in the order of `records`. */
  valid: Held[];
  records: UsageRecord[];
  keepAlive: NodeJS.Timeout;
  stopTimer: () => void;
}

/**
 * Usage ingestion (docs/nats.md): pulls batches of `aigov.usage.recorded` from the durable
 * consumer `budget-api` of AI_USAGE, dead-letters what does not validate, records the rest with
 * one EnforcementService.recordUsage call (one ledger statement), and acknowledges each message
 * only after that committed, or after its dead letter is stored. The ledger is idempotent on
 * request_id, so a redelivery (after a crash between commit and ack) is a duplicate, acked and
 * counted as such. The next batch is fetched and parsed while one is in the database (one batch
 * there and one prepared, at most). A batch the database cannot take is held (kept alive with
 * working()) and tried again until it goes through, while readiness says why; the one prepared
 * behind it waits, and nothing more is fetched meanwhile.
 */
@Injectable()
export class UsageConsumerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly metrics: UsageConsumerMetrics;
  private readonly settings: UsageConsumerSettings & { batchSize: number };
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private consumer: Consumer | null = null;
  private advisories: Subscription | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private readonly sleepers = new Set<() => void>();
  private currentFetch: ConsumerMessages | null = null;
  private pendingHint = 0;
  private lagTimer: NodeJS.Timeout | null = null;
  private setupProblem: string | null = 'usage consumer not started';
  private fetchProblem: string | null = null;
  private databaseProblem: string | null = null;

  constructor(
    @Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null,
    @Inject(EnforcementService) private readonly enforcement: EnforcementService,
    @Inject(BUDGET_API_OPTIONS) options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    @Inject(Metrics) metrics: Metrics,
    @Inject(Readiness) readiness: Readiness,
  ) {
    this.metrics = new UsageConsumerMetrics(metrics);
    const s = options.spendUpkeep;
    this.settings = {
      maxDeliver: s.usageMaxDeliver,
      ackWaitMs: s.usageAckWaitMs,
      batchSize: s.usageBatchSize,
    };
    readiness.register(
      'usage-consumer',
      () => this.setupProblem ?? this.fetchProblem ?? this.databaseProblem,
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.nc) {
      this.setupProblem = null;
      this.logger.warn('NATS_ENABLED=false: usage records are not consumed from AI_USAGE');
      return;
    }
    try {
      this.jsm = await jetstreamManager(this.nc);
      await ensureUsageJetStream(this.jsm, this.settings, this.logger);
      this.js = jetstream(this.nc);
      this.consumer = await this.js.consumers.get(USAGE_STREAM, USAGE_CONSUMER);
    } catch (err) {
      throw new Error(
        `Cannot set up the usage stream ${USAGE_STREAM} and its consumer ${USAGE_CONSUMER}: ` +
          `${(err as Error).message}; nats-server must run with JetStream (-js), and budget-api's NATS ` +
          'user needs the permissions listed in docs/nats-security.md.',
        { cause: err },
      );
    }
    this.setupProblem = null;
    this.watchMaxDeliveries(this.nc);
    this.loop = this.run();
    this.lagTimer = setInterval(() => void this.pollLag(), LAG_POLL_MS);
    this.lagTimer.unref();
  }

  /** Stops fetching, lets the batch in hand finish (recorded and acknowledged), then returns. */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.loop) return;
    this.stopping = true;
    this.setupProblem = 'usage consumer stopping';
    if (this.lagTimer) clearInterval(this.lagTimer);
    // An idle pull is given up at once; a record the server sends into it after this is
    // delivered again once ack_wait has passed.
    this.currentFetch?.stop();
    this.advisories?.unsubscribe();
    for (const wake of [...this.sleepers]) wake();
    await this.loop;
    this.loop = null;
    this.logger.info('usage consumer stopped');
  }

  /**
   * Fetches and prepares (parses, dead-letters) the next batch while the previous one's statement
   * runs: at most one batch in the database and one prepared behind it. A batch's records are
   * acknowledged only after its own statement committed (docs/decisions/usage-ingestion-pipeline.md).
   */
  private async run(): Promise<void> {
    let failures = 0;
    let recording: Promise<void> | null = null;
    try {
      while (!this.stopping) {
        let batch: JsMsg[];
        try {
          batch = await this.fetchBatch();
          if (this.fetchProblem) this.logger.info('usage consumer fetching again');
          this.fetchProblem = null;
          failures = 0;
        } catch (err) {
          if (this.stopping) break;
          this.fetchProblem = `cannot fetch usage records: ${(err as Error).message}`;
          if (failures === 0) this.logger.warn({ err }, this.fetchProblem);
          await this.sleep(pause(failures++));
          await this.recover();
          continue;
        }
        if (batch.length === 0) continue;
        const prepared = await this.prepareBatch(batch);
        // The batch before this one leaves the database (committed and acknowledged, or given
        // up on when stopping) before this one's statement starts, and before the next pull.
        if (recording) await recording;
        if (this.stopping && this.databaseProblem) {
          // The batch before it was left unacknowledged for want of a database: so is this one.
          this.abandon(prepared);
          recording = null;
          break;
        }
        recording = this.recordBatch(prepared);
      }
    } finally {
      if (recording) await recording;
    }
  }

  /**
   * One pull: up to a batch when the consumer said more records are waiting, else one record
   * waited for, so that a lone record is recorded as soon as it arrives.
   */
  private async fetchBatch(): Promise<JsMsg[]> {
    const want = Math.min(this.settings.batchSize, Math.max(1, this.pendingHint));
    const messages = await this.consumer!.fetch({
      max_messages: want,
      expires: this.pendingHint > 0 ? BUSY_PULL_MS : IDLE_PULL_MS,
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
      await ensureUsageJetStream(await jetstreamManager(this.nc), this.settings, this.logger);
      this.consumer = await this.js!.consumers.get(USAGE_STREAM, USAGE_CONSUMER);
    } catch (err) {
      this.logger.debug({ err }, 'usage consumer setup not possible yet');
    }
  }

  /**
   * Starts keeping the batch's messages alive, parses them and dead-letters the ones that do not
   * validate (acknowledged once their dead letter is stored, whatever the database does).
   */
  private async prepareBatch(msgs: JsMsg[]): Promise<PreparedBatch> {
    const stopTimer = this.metrics.batchDuration.startTimer();
    this.metrics.batchSize.observe(msgs.length);
    const held: Held[] = msgs.map((msg) => ({ msg, open: true }));
    // Keeps every record we still hold from being delivered elsewhere (and counted) meanwhile.
    const keepAlive = setInterval(
      () => {
        for (const h of held) if (h.open) h.msg.working();
      },
      Math.max(250, Math.floor(this.settings.ackWaitMs / 3)),
    );
    const valid: Held[] = [];
    const records: UsageRecord[] = [];
    try {
      for (const h of held) {
        const parsed = parseUsageMessage(h.msg.data);
        if (parsed.ok) {
          valid.push(h);
          records.push(withStreamTime(parsed.record, h.msg));
        } else await this.deadLetter(h, parsed.cause, parsed.cause, parsed.errors, parsed.json);
      }
    } catch (err) {
      // Not expected (parsing and dead-lettering handle their failures); what is left open is
      // delivered again after ack_wait.
      this.logger.error({ err }, 'usage batch could not be prepared; it will be delivered again');
      valid.length = 0;
      records.length = 0;
    }
    return { valid, records, keepAlive, stopTimer };
  }

  /** Records the batch's valid records in one statement, then acknowledges each. Never throws. */
  private async recordBatch(batch: PreparedBatch): Promise<void> {
    const { valid, records, keepAlive, stopTimer } = batch;
    try {
      if (valid.length === 0) return;
      const outcomes = await this.recordHeld(records);
      // Stopping while the database is away: the records stay unacknowledged for the next owner.
      if (!outcomes) return;
      // The acknowledgements of what was recorded, all in one write to nats-server; then the dead
      // letters of the records the ledger refused.
      const refused: { held: Held; outcome: UsageOutcome | Error }[] = [];
      for (let i = 0; i < valid.length; i++) {
        const outcome = outcomes[i];
        if (outcome instanceof Error || !outcome.ok) refused.push({ held: valid[i], outcome });
        else this.acknowledge(valid[i], outcome.reply.duplicate);
      }
      for (const r of refused) await this.refuse(r.held, r.outcome);
    } catch (err) {
      this.logger.error({ err }, 'usage batch not settled; what is left will be delivered again');
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

  /** Stopping with the database away: the records stay unacknowledged for the next owner. */
  private abandon(batch: PreparedBatch): void {
    clearInterval(batch.keepAlive);
    batch.stopTimer();
    if (batch.valid.length > 0) {
      this.logger.warn({ records: batch.valid.length }, 'usage batch left unacknowledged: stopping');
    }
  }

  /**
   * recordUsage until it resolves; null when stopping and the last try failed. While the
   * database is away, readiness says so and the batch is tried again with growing pauses. A batch
   * that keeps failing for another reason (one record the ledger refuses) is tried record by
   * record, so that only such a record is given up (dead-lettered) and the others are recorded.
   */
  private async recordHeld(records: UsageRecord[]): Promise<(UsageOutcome | Error)[] | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        const outcomes =
          attempt >= TRIES_BEFORE_ISOLATING && records.length > 1
            ? await this.recordIsolated(records)
            : await this.enforcement.recordUsage(AI_GATEWAY_ACTOR, records);
        if (this.databaseProblem) this.logger.info('usage records are recorded again');
        this.databaseProblem = null;
        return outcomes;
      } catch (err) {
        this.metrics.databaseFailures.inc();
        const first = this.databaseProblem === null;
        this.databaseProblem = `database: recording usage failed: ${(err as Error).message}`;
        if (first)
          this.logger.warn({ err, records: records.length }, 'usage batch held: recording it failed');
        if (this.stopping) {
          this.logger.warn({ records: records.length }, 'usage batch left unacknowledged: stopping');
          return null;
        }
        // A single record the ledger refuses for a reason of its own is given up, not held forever.
        if (
          records.length === 1 &&
          attempt + 1 >= TRIES_BEFORE_ISOLATING &&
          !isDatabaseUnavailableError(err)
        ) {
          return [err as Error];
        }
        await this.sleep(pause(attempt));
      }
    }
  }

  /** One statement per record; a record failing for want of a database fails the whole try. */
  private async recordIsolated(records: UsageRecord[]): Promise<(UsageOutcome | Error)[]> {
    const out: (UsageOutcome | Error)[] = [];
    for (const record of records) {
      try {
        out.push((await this.enforcement.recordUsage(AI_GATEWAY_ACTOR, [record]))[0]);
      } catch (err) {
        if (isDatabaseUnavailableError(err)) throw err;
        out.push(err as Error);
      }
    }
    return out;
  }

  /** A recorded record (or a duplicate of one): acknowledged, synchronously. */
  private acknowledge(h: Held, duplicate: boolean): void {
    if (duplicate) this.metrics.duplicates.inc();
    else this.metrics.ingested.inc();
    h.open = false;
    h.msg.ack();
  }

  /** A record the ledger refused: dead-lettered with the reason. */
  private async refuse(h: Held, outcome: UsageOutcome | Error): Promise<void> {
    if (outcome instanceof Error) {
      const reason = isDomainError(outcome) ? outcome.message : 'the ledger refused the record';
      this.logger.error(
        { err: outcome, stream_seq: h.msg.info.streamSequence },
        'usage record refused by the ledger',
      );
      return this.deadLetter(h, 'rejected', reason, [outcome.message], this.jsonOf(h.msg));
    }
    if (outcome.ok) return this.acknowledge(h, outcome.reply.duplicate);
    const errors = outcome.error.validations.map((v) => `${v.field}: ${v.detail}`);
    return this.deadLetter(h, 'rejected', outcome.error.message, errors, this.jsonOf(h.msg));
  }

  /**
   * Publishes the dead letter and waits for JetStream to store it, then acknowledges the
   * original. If the publish fails the original is left alone: it is delivered again later.
   */
  private async deadLetter(
    h: Held,
    cause: UsageDeadLetterCause,
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
        { err, stream_seq: msg.info.streamSequence },
        'could not dead-letter a usage record; it will be delivered again',
      );
      void this.recover();
      return;
    }
    this.metrics.deadLettered.inc({ reason: cause });
    this.logger.warn(
      { stream_seq: msg.info.streamSequence, reason, errors: errors.slice(0, 5) },
      'usage record dead-lettered',
    );
    h.open = false;
    msg.ack();
  }

  private jsonOf(msg: JsMsg): unknown {
    try {
      return JSON.parse(Buffer.from(msg.data).toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
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
      stream: USAGE_STREAM,
      consumer: USAGE_CONSUMER,
      dlqSubject: USAGE_DLQ_SUBJECT,
      maxDeliver: this.settings.maxDeliver,
      maxDeliverVariable: 'USAGE_MAX_DELIVER',
      what: 'usage record',
    };
  }

  private async pollLag(): Promise<void> {
    if (!this.consumer || this.stopping) return;
    try {
      const info = await this.consumer.info(false);
      this.metrics.pending.set(info.num_pending);
      this.metrics.ackPending.set(info.num_ack_pending);
      if (this.setupProblem) this.logger.info(`consumer ${USAGE_CONSUMER} is back`);
      this.setupProblem = null;
    } catch (err) {
      if (this.stopping) return;
      const missing = /not found/i.test((err as Error).message);
      this.setupProblem = missing
        ? `JetStream consumer ${USAGE_CONSUMER} does not exist`
        : `cannot read consumer ${USAGE_CONSUMER}: ${(err as Error).message}`;
      if (missing) await this.recover();
    }
  }
}

/**
 * A record without occurred_at happened when JetStream stored it, not when we got to it: after a
 * backlog or an outage it still counts in the period the gateway reported it in (docs/nats.md).
 * The record is ours (made by the parser), so it is completed in place.
 */
function withStreamTime(record: UsageRecord, msg: JsMsg): UsageRecord {
  if (record.occurred_at === undefined) {
    record.occurred_at = new Date(Number(msg.timestampNanos / 1_000_000n)).toISOString();
  }
  return record;
}

const pause = (attempt: number): number => RETRY_PAUSES_MS[Math.min(attempt, RETRY_PAUSES_MS.length - 1)];
