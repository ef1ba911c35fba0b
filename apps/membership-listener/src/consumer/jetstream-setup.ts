import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import {
  DLQ_STREAM,
  DLQ_STREAM_SUBJECTS,
  IDENTITY_CONSUMER,
  IDENTITY_STREAM,
  IDENTITY_STREAM_SUBJECTS,
  ensureDurableConsumer,
  ensureStream,
} from '@aigov/contracts';
import type { Logger } from '@aigov/observability';

export interface ConsumerSettings {
  maxDeliver: number;
  ackWaitMs: number;
}

/**
 * Creates what the identity pipeline needs when missing: the IDENTITY stream (identity.>), the DLQ
 * stream (aigov.dlq.>) and the durable consumer. Safe to run from several instances at once. The
 * consumer has no server-side `backoff`: nats-server would make its first step the ack_wait;
 * retry delays go with each nak.
 */
export async function ensureIdentityJetStream(
  jsm: JetStreamManager,
  settings: ConsumerSettings,
  log: Logger,
): Promise<ConsumerInfo> {
  await ensureStream(jsm, IDENTITY_STREAM, IDENTITY_STREAM_SUBJECTS, log);
  await ensureStream(jsm, DLQ_STREAM, DLQ_STREAM_SUBJECTS, log);
  return ensureDurableConsumer(
    jsm,
    {
      stream: IDENTITY_STREAM,
      consumer: IDENTITY_CONSUMER,
      maxDeliver: settings.maxDeliver,
      ackWaitMs: settings.ackWaitMs,
    },
    log,
  );
}
