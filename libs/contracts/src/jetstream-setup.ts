import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type ConsumerUpdateConfig,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';

// The JetStream streams and durable pull consumers the apps read (docs/nats.md), created when
// missing, safely from several instances starting at once, within what nats-server 2.9 accepts
// (no filter_subjects, no consumer metadata). Shared by the membership listener and budget-api.

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const nanos = (ms: number): number => ms * 1_000_000;

/** The streams remember message ids this long, so that a retried (dead-letter) publish is stored once. */
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** Another instance created it between our look and our create. */
function isAlreadyThere(err: unknown): boolean {
  return /already in use|already exists/i.test((err as Error)?.message ?? '');
}

/**
 * The stream exists and covers `subject`: created when missing. A stream an operator created with
 * other limits (retention, replicas, max age) is kept as it is; one that does not cover the
 * subject is an error, since the messages would not be stored.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  log: Log,
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

export interface DurableConsumerSpec {
  stream: string;
  consumer: string;
  maxDeliver: number;
  ackWaitMs: number;
  /** Redelivery delays kept by nats-server; absent: the consumer has none and they are not compared. */
  backoffMs?: number[];
}

/**
 * A durable pull consumer: explicit ack, every message from the start, max_deliver, ack_wait and
 * (when given) backoff as configured, updated when they changed. An update that fails (instances
 * with different settings) is logged and the consumer kept: it still works.
 */
export async function ensureDurableConsumer(
  jsm: JetStreamManager,
  spec: DurableConsumerSpec,
  log: Log,
): Promise<ConsumerInfo> {
  const { stream, consumer } = spec;
  const backoff = spec.backoffMs?.map(nanos);
  const wanted: ConsumerUpdateConfig = {
    max_deliver: spec.maxDeliver,
    ack_wait: nanos(spec.ackWaitMs),
    ...(backoff && backoff.length > 0 ? { backoff } : {}),
  };
  const settings = { maxDeliver: spec.maxDeliver, ackWaitMs: spec.ackWaitMs };
  let info: ConsumerInfo | null = null;
  try {
    info = await jsm.consumers.info(stream, consumer);
  } catch (err) {
    if (apiCode(err) !== JetStreamApiCodes.ConsumerNotFound) throw err;
  }
  if (!info) {
    try {
      info = await jsm.consumers.add(stream, {
        durable_name: consumer,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ...wanted,
      });
      log.info({ stream, consumer, ...settings }, `created JetStream consumer ${consumer}`);
      return info;
    } catch (err) {
      if (!isAlreadyThere(err)) throw err;
      info = await jsm.consumers.info(stream, consumer);
    }
  }
  const sameBackoff =
    backoff === undefined || JSON.stringify(info.config.backoff ?? []) === JSON.stringify(backoff);
  if (
    info.config.max_deliver !== wanted.max_deliver ||
    info.config.ack_wait !== wanted.ack_wait ||
    !sameBackoff
  ) {
    try {
      // An empty backoff clears one the consumer had.
      info = await jsm.consumers.update(stream, consumer, backoff ? { ...wanted, backoff } : wanted);
      log.info({ consumer, ...settings }, `updated JetStream consumer ${consumer}`);
    } catch (err) {
      log.warn(
        { err, consumer, ...settings },
        `could not update consumer ${consumer} to the configured max_deliver/ack_wait; it keeps its own`,
      );
    }
  }
  return info;
}
