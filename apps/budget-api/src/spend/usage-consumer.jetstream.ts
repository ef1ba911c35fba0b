import type { ConsumerInfo, JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import {
  BUDGET_EVENTS_STREAM,
  BUDGET_SUBJECTS,
  DLQ_STREAM,
  DLQ_STREAM_SUBJECTS,
  USAGE_CONSUMER,
  USAGE_STREAM,
  ensureDurableConsumer,
  ensureStream,
} from '@aigov/contracts';
import type { Logger } from '@aigov/observability';

// What budget-api needs on JetStream (docs/nats.md): the AI_USAGE stream and its durable pull
// consumer budget-api, the DLQ stream for usage dead letters, and the AI_BUDGET_EVENTS stream of
// threshold events. Created when missing, safely from several instances starting at once, within
// what nats-server 2.9 accepts (no filter_subjects, no consumer metadata).

export interface UsageConsumerSettings {
  maxDeliver: number;
  ackWaitMs: number;
}

/** How long a threshold event's Nats-Msg-Id is remembered: far longer than any crash and restart. */
export const THRESHOLD_DUPLICATE_WINDOW_MS = 24 * 3_600_000;

/**
 * Redelivery delays of a usage record left unacknowledged (its holder died or hangs): the first
 * step is ack_wait itself (nats-server takes the first backoff step as the acknowledgement
 * deadline, so a shorter one would cut a batch in hand short), then twice, four and eight times
 * that. nats-server wants max_deliver greater than the number of steps.
 */
export function usageBackoffMs(settings: UsageConsumerSettings): number[] {
  const steps = Math.min(4, settings.maxDeliver - 1);
  return Array.from({ length: Math.max(0, steps) }, (_, i) => settings.ackWaitMs * 2 ** i);
}

/** AI_USAGE (aigov.usage.recorded), DLQ (aigov.dlq.>) and the consumer budget-api. */
export async function ensureUsageJetStream(
  jsm: JetStreamManager,
  settings: UsageConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  await ensureStream(jsm, USAGE_STREAM, BUDGET_SUBJECTS.usageRecorded, log);
  await ensureStream(jsm, DLQ_STREAM, DLQ_STREAM_SUBJECTS, log);
  // The durable pull consumer budget-api: max_deliver, ack_wait and backoff from configuration.
  return ensureDurableConsumer(
    jsm,
    {
      stream: USAGE_STREAM,
      consumer: USAGE_CONSUMER,
      maxDeliver: settings.maxDeliver,
      ackWaitMs: settings.ackWaitMs,
      backoffMs: usageBackoffMs(settings),
    },
    log,
  );
}

/**
 * AI_BUDGET_EVENTS over exactly aigov.budget.threshold: a stream over aigov.budget.> would store
 * (and answer, with a publish acknowledgement) the check/reserve/release requests.
 */
export async function ensureBudgetEventsStream(jsm: JetStreamManager, log: Logger): Promise<StreamInfo> {
  return ensureStream(
    jsm,
    BUDGET_EVENTS_STREAM,
    BUDGET_SUBJECTS.threshold,
    log,
    THRESHOLD_DUPLICATE_WINDOW_MS,
  );
}
