import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import {
  BUDGET_EVENTS_STREAM,
  BUDGET_SUBJECTS,
  DLQ_STREAM,
  DLQ_STREAM_SUBJECTS,
  USAGE_CONSUMER,
  USAGE_STREAM,
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

const nanos = (ms: number): number => ms * 1_000_000;

/** How long a threshold event's Nats-Msg-Id is remembered: far longer than any crash and restart. */
export const THRESHOLD_DUPLICATE_WINDOW_MS = 24 * 3_600_000;
/** The usage and dead-letter streams remember ids for a retried dead-letter publish. */
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** Another instance created it between our look and our create. */
function isAlreadyThere(err: unknown): boolean {
  return /already in use|already exists/i.test((err as Error)?.message ?? '');
}

/**
 * The stream exists and covers `subject`: created when missing. One an operator created with
 * other limits is kept as it is; one that does not cover the subject is an error, since the
 * messages would not be stored.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  log: Logger,
  duplicateWindowMs = DEFAULT_DUPLICATE_WINDOW_MS,
): Promise<StreamInfo> {
  const check = (info: StreamInfo): StreamInfo => {
    if (!info.config.subjects?.includes(subject)) {
      throw new Error(
        `JetStream stream ${name} exists with subjects ${JSON.stringify(info.config.subjects ?? [])}, ` +
          `not ${subject}: fix or delete it (nats stream info ${name})`,
      );
    }
    return info;
  };
  try {
    return check(await jsm.streams.info(name));
  } catch (err) {
    if (apiCode(err) !== JetStreamApiCodes.StreamNotFound) throw err;
  }
  try {
    const info = await jsm.streams.add({
      name,
      subjects: [subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: nanos(duplicateWindowMs),
    });
    log.info({ stream: name, subjects: subject }, `created JetStream stream ${name}`);
    return info;
  } catch (err) {
    if (!isAlreadyThere(err)) throw err;
    return check(await jsm.streams.info(name));
  }
}

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

/**
 * The durable pull consumer `budget-api` of AI_USAGE: explicit ack, every record from the start,
 * max_deliver, ack_wait and backoff from configuration (updated when they changed).
 */
async function ensureUsageConsumer(
  jsm: JetStreamManager,
  settings: UsageConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  const backoff = usageBackoffMs(settings).map(nanos);
  const wanted = {
    max_deliver: settings.maxDeliver,
    ack_wait: nanos(settings.ackWaitMs),
    ...(backoff.length > 0 ? { backoff } : {}),
  };
  let info: ConsumerInfo | null = null;
  try {
    info = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
  } catch (err) {
    if (apiCode(err) !== JetStreamApiCodes.ConsumerNotFound) throw err;
  }
  if (!info) {
    try {
      info = await jsm.consumers.add(USAGE_STREAM, {
        durable_name: USAGE_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ...wanted,
      });
      log.info(
        { stream: USAGE_STREAM, consumer: USAGE_CONSUMER, ...settings },
        `created JetStream consumer ${USAGE_CONSUMER}`,
      );
      return info;
    } catch (err) {
      if (!isAlreadyThere(err)) throw err;
      info = await jsm.consumers.info(USAGE_STREAM, USAGE_CONSUMER);
    }
  }
  const sameBackoff = JSON.stringify(info.config.backoff ?? []) === JSON.stringify(backoff);
  if (
    info.config.max_deliver !== wanted.max_deliver ||
    info.config.ack_wait !== wanted.ack_wait ||
    !sameBackoff
  ) {
    try {
      info = await jsm.consumers.update(USAGE_STREAM, USAGE_CONSUMER, { ...wanted, backoff });
      log.info({ consumer: USAGE_CONSUMER, ...settings }, `updated JetStream consumer ${USAGE_CONSUMER}`);
    } catch (err) {
      // Instances with different settings would otherwise fight over it; the consumer still works.
      log.warn(
        { err, consumer: USAGE_CONSUMER, ...settings },
        `could not update consumer ${USAGE_CONSUMER} to the configured max_deliver/ack_wait; it keeps its own`,
      );
    }
  }
  return info;
}

/** AI_USAGE (aigov.usage.recorded), DLQ (aigov.dlq.>) and the consumer budget-api. */
export async function ensureUsageJetStream(
  jsm: JetStreamManager,
  settings: UsageConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  await ensureStream(jsm, USAGE_STREAM, BUDGET_SUBJECTS.usageRecorded, log);
  await ensureStream(jsm, DLQ_STREAM, DLQ_STREAM_SUBJECTS, log);
  return ensureUsageConsumer(jsm, settings, log);
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

export { apiCode };
