import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Stores } from '@aigov/authz';
import {
  BUDGET_API_ACTOR,
  BUDGET_EVENTS_STREAM,
  BUDGET_SUBJECTS,
  NATS_CONNECTION_TOKEN,
  type BudgetThresholdEvent,
  type NatsConnection,
} from '@aigov/contracts';
import type { ThresholdEvent } from '@aigov/db';
import { APP_LOGGER, Metrics, type Logger } from '@aigov/observability';
import type { Counter } from 'prom-client';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import type { ThresholdWake } from './enforcement.service';
import { ensureBudgetEventsStream } from './usage-consumer.jetstream';

/** Events locked, published and marked per transaction. */
export const THRESHOLD_CHUNK = 100;
/** Pauses after failed rounds; the last one repeats. */
const RETRY_PAUSES_MS = [1_000, 2_000, 5_000, 10_000];

/** The JetStream message id of a threshold event: the stream drops a second publish of it. */
export const thresholdMsgId = (e: ThresholdEvent): string =>
  `threshold/${e.userId}/${e.periodStart}/${e.thresholdPercent}`;

export function thresholdEventBody(e: ThresholdEvent): BudgetThresholdEvent {
  return {
    user_id: e.userId,
    effective_group_id: e.effectiveGroupId,
    threshold_percent: e.thresholdPercent,
    spent_micros: Number(e.spentMicros),
    spend_limit_micros: Number(e.spendLimitMicros),
    period_start: new Date(`${e.periodStart}T00:00:00Z`).toISOString(),
  };
}

/**
 * Publishes the threshold outbox (ai_budget_threshold_events, written in the same statement as
 * the usage that crossed a threshold) as `aigov.budget.threshold` into the JetStream stream
 * AI_BUDGET_EVENTS, once per user, period and threshold. In one transaction: lock unpublished
 * rows (SKIP LOCKED: several instances take different rows), publish each and wait for the
 * stream's acknowledgement, mark them published, commit. A crash between publish and commit
 * leaves the rows unpublished; whoever takes them next publishes again with the same
 * Nats-Msg-Id, which the stream drops as a duplicate (its duplicate window is 24 hours). Runs
 * every THRESHOLD_POLL_MS and at once when recording usage wrote events (wake()).
 */
@Injectable()
export class ThresholdOutboxService
  implements ThresholdWake, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly published: Counter;
  private readonly duplicates: Counter;
  private readonly failures: Counter;
  private js: JetStreamClient | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private woken = false;
  private wakeUp: (() => void) | null = null;

  constructor(
    @Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null,
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    @Inject(Metrics) metrics: Metrics,
  ) {
    this.published = metrics.counter(
      'aigov_budget_threshold_events_published_total',
      'Threshold events published to AI_BUDGET_EVENTS and marked published, by threshold percent',
      ['threshold_percent'],
    );
    this.duplicates = metrics.counter(
      'aigov_budget_threshold_events_duplicate_total',
      'Of those, events the stream had already (published before a crash, dropped by Nats-Msg-Id)',
    );
    this.failures = metrics.counter(
      'aigov_budget_threshold_publish_failures_total',
      'Rounds of the threshold outbox that failed (tried again)',
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.nc) {
      this.logger.warn('NATS_ENABLED=false: budget threshold events stay in the outbox, unpublished');
      return;
    }
    try {
      await ensureBudgetEventsStream(await jetstreamManager(this.nc), this.logger);
    } catch (err) {
      throw new Error(
        `Cannot set up the threshold event stream ${BUDGET_EVENTS_STREAM}: ${(err as Error).message}; ` +
          "nats-server must run with JetStream (-js), and budget-api's NATS user needs the permissions " +
          'listed in docs/nats-security.md.',
        { cause: err },
      );
    }
    this.js = jetstream(this.nc);
    this.loop = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    await this.loop;
    this.loop = null;
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      this.woken = false;
      let wait = this.options.spendUpkeep.thresholdPollMs;
      try {
        while (!this.stopping && (await this.publishChunk()) === THRESHOLD_CHUNK);
        if (failures > 0) this.logger.info('threshold events are published again');
        failures = 0;
      } catch (err) {
        this.failures.inc();
        if (failures === 0) this.logger.warn({ err }, 'publishing threshold events failed; trying again');
        wait = RETRY_PAUSES_MS[Math.min(failures++, RETRY_PAUSES_MS.length - 1)];
      }
      if (!this.woken || failures > 0) await this.sleep(wait);
    }
  }

  /** One transaction: lock, publish, mark. Returns how many rows it took. */
  async publishChunk(): Promise<number> {
    const { events, duplicates } = await this.stores.transaction(null, async (tx) => {
      const locked = await tx.spend.lockUnpublishedThresholds(BUDGET_API_ACTOR, THRESHOLD_CHUNK);
      if (locked.length === 0) return { events: locked, duplicates: 0 };
      const acks = await Promise.all(
        locked.map((e) =>
          this.js!.publish(BUDGET_SUBJECTS.threshold, JSON.stringify(thresholdEventBody(e)), {
            msgID: thresholdMsgId(e),
          }),
        ),
      );
      await tx.spend.markThresholdsPublished(BUDGET_API_ACTOR, locked);
      return { events: locked, duplicates: acks.filter((a) => a.duplicate).length };
    });
    // Counted once committed: a round that failed to commit is published (de-duplicated) again.
    for (const e of events) this.published.inc({ threshold_percent: String(e.thresholdPercent) });
    this.duplicates.inc(duplicates);
    return events.length;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }
}
