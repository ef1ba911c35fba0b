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
  DLQ_STREAM,
  DLQ_STREAM_SUBJECTS,
  IDENTITY_CONSUMER,
  IDENTITY_STREAM,
  IDENTITY_STREAM_SUBJECTS,
} from '@aigov/contracts';
import type { Logger } from '@aigov/observability';

export interface ConsumerSettings {
  maxDeliver: number;
  ackWaitMs: number;
}

const nanos = (ms: number): number => ms * 1_000_000;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** Another instance created it between our look and our create (several listeners start at once). */
function isAlreadyThere(err: unknown): boolean {
  const message = (err as Error)?.message ?? '';
  return /already in use|already exists/i.test(message);
}

/**
 * The stream exists and covers `subjects`: created when missing. A stream an operator created with
 * other limits (retention, replicas, max age) is kept as it is; one that does not cover the
 * subject is an error, since events would not be stored.
 */
async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subjects: string,
  log: Logger,
): Promise<StreamInfo> {
  const check = (info: StreamInfo): StreamInfo => {
    if (!info.config.subjects?.includes(subjects)) {
      throw new Error(
        `JetStream stream ${name} exists with subjects ${JSON.stringify(info.config.subjects ?? [])}, ` +
          `not ${subjects}: fix or delete it (nats stream info ${name})`,
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
      subjects: [subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      // Lets the dead-letter publish carry a message id, so a retried publish is stored once.
      duplicate_window: nanos(120_000),
    });
    log.info({ stream: name, subjects }, `created JetStream stream ${name}`);
    return info;
  } catch (err) {
    if (!isAlreadyThere(err)) throw err;
    return check(await jsm.streams.info(name));
  }
}

/**
 * The durable pull consumer of the identity stream: explicit ack, every event from the start,
 * max_deliver and ack_wait from configuration (updated when they changed). No server-side
 * `backoff`: nats-server would make its first step the ack_wait; retry delays go with each nak.
 */
async function ensureConsumer(
  jsm: JetStreamManager,
  settings: ConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  const wanted = { max_deliver: settings.maxDeliver, ack_wait: nanos(settings.ackWaitMs) };
  let info: ConsumerInfo | null = null;
  try {
    info = await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER);
  } catch (err) {
    if (apiCode(err) !== JetStreamApiCodes.ConsumerNotFound) throw err;
  }
  if (!info) {
    try {
      info = await jsm.consumers.add(IDENTITY_STREAM, {
        durable_name: IDENTITY_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ...wanted,
      });
      log.info(
        { stream: IDENTITY_STREAM, consumer: IDENTITY_CONSUMER, ...settings },
        `created JetStream consumer ${IDENTITY_CONSUMER}`,
      );
      return info;
    } catch (err) {
      if (!isAlreadyThere(err)) throw err;
      info = await jsm.consumers.info(IDENTITY_STREAM, IDENTITY_CONSUMER);
    }
  }
  if (info.config.max_deliver !== wanted.max_deliver || info.config.ack_wait !== wanted.ack_wait) {
    try {
      info = await jsm.consumers.update(IDENTITY_STREAM, IDENTITY_CONSUMER, wanted);
      log.info(
        { consumer: IDENTITY_CONSUMER, ...settings },
        `updated JetStream consumer ${IDENTITY_CONSUMER}`,
      );
    } catch (err) {
      // Instances with different settings would otherwise fight over it; the consumer still works.
      log.warn(
        { err, consumer: IDENTITY_CONSUMER, ...settings },
        `could not update consumer ${IDENTITY_CONSUMER} to the configured max_deliver/ack_wait; it keeps its own`,
      );
    }
  }
  return info;
}

/**
 * Creates what the identity pipeline needs when missing: the IDENTITY stream (identity.>), the DLQ
 * stream (aigov.dlq.>) and the durable consumer. Safe to run from several instances at once.
 */
export async function ensureIdentityJetStream(
  jsm: JetStreamManager,
  settings: ConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  await ensureStream(jsm, IDENTITY_STREAM, IDENTITY_STREAM_SUBJECTS, log);
  await ensureStream(jsm, DLQ_STREAM, DLQ_STREAM_SUBJECTS, log);
  return ensureConsumer(jsm, settings, log);
}

export { apiCode };
