import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import {
  headers as natsHeaders,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { DEAD_LETTER_HEADERS, deadLetterOf } from './dead-letters';
import { NATS_REQUEST_ID_HEADER } from './subjects';

/**
 * Dead letters of the messages of one JetStream stream read by one durable consumer, shared by
 * the consumers of both apps (identity events, usage records): the letter body and headers,
 * stored at most once per stream sequence (`Nats-Msg-Id`), and the messages nats-server stops
 * delivering unacknowledged once they reached max_deliver.
 */
export interface DeadLetterTarget {
  stream: string;
  consumer: string;
  dlqSubject: string;
  /** max_deliver of the consumer, and the variable that sets it (named in the letter). */
  maxDeliver: number;
  maxDeliverVariable: string;
  /** What one message is, for logs: `identity event`, `usage record`. */
  what: string;
}

interface Log {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Publishes the dead letter of a delivered message and waits until JetStream stored it; throws
 * when it could not (the caller then leaves the original unacknowledged).
 */
export async function publishDeadLetter(
  js: JetStreamClient,
  target: DeadLetterTarget,
  msg: JsMsg,
  letter: { cause: string; reason: string; errors: string[]; json: unknown },
): Promise<void> {
  const body = deadLetterOf({
    reason: letter.reason,
    errors: letter.errors,
    subject: msg.subject,
    streamSeq: msg.info.streamSequence,
    deliveries: msg.info.deliveryCount,
    json: letter.json,
    payload: msg.data,
  });
  const hdrs = natsHeaders();
  hdrs.set(DEAD_LETTER_HEADERS.cause, letter.cause);
  hdrs.set(DEAD_LETTER_HEADERS.subject, msg.subject);
  hdrs.set(DEAD_LETTER_HEADERS.streamSeq, String(msg.info.streamSequence));
  const requestId = msg.headers?.get(NATS_REQUEST_ID_HEADER);
  if (requestId) hdrs.set(NATS_REQUEST_ID_HEADER, requestId);
  await js.publish(target.dlqSubject, JSON.stringify(body), {
    headers: hdrs,
    // A dead letter published again after a crash before the ack is stored once.
    msgID: `${target.stream}:${msg.info.streamSequence}`,
  });
}

/**
 * A message whose last delivery was never acknowledged (an instance died holding it, or its dead
 * letter could not be stored) is not delivered again once it reached max_deliver: nats-server
 * only says so in an advisory. One instance (the consumer's name as queue group) dead-letters it
 * from the stream then, so it is not lost silently. `onDeadLettered` runs once per letter stored.
 */
export function watchMaxDeliveries(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  target: DeadLetterTarget,
  log: Log,
  onDeadLettered: () => void,
): Subscription {
  const subject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${target.stream}.${target.consumer}`;
  return nc.subscribe(subject, {
    queue: target.consumer,
    callback: (err, msg) => {
      if (err) {
        log.warn(
          { err, subject },
          `cannot watch for ${target.what}s that reached max_deliver unacknowledged`,
        );
        return;
      }
      void deadLetterUnacknowledged(js, jsm, target, msg, log, onDeadLettered);
    },
  });
}

async function deadLetterUnacknowledged(
  js: JetStreamClient,
  jsm: JetStreamManager,
  target: DeadLetterTarget,
  advisory: Msg,
  log: Log,
  onDeadLettered: () => void,
): Promise<void> {
  let seq: number;
  let deliveries: number;
  try {
    const body = advisory.json<{ stream_seq?: unknown; deliveries?: unknown }>();
    if (typeof body.stream_seq !== 'number') return;
    seq = body.stream_seq;
    deliveries = typeof body.deliveries === 'number' ? body.deliveries : target.maxDeliver;
  } catch {
    return;
  }
  try {
    const stored = await jsm.streams.getMessage(target.stream, { seq });
    if (!stored) return;
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(stored.data).toString('utf8')) as unknown;
    } catch {
      json = undefined;
    }
    const reason = 'not acknowledged after max_deliver deliveries';
    const letter = deadLetterOf({
      reason,
      errors: [`delivered ${deliveries} times without being acknowledged (${target.maxDeliverVariable})`],
      subject: stored.subject,
      streamSeq: seq,
      deliveries,
      json,
      payload: stored.data,
    });
    const hdrs = natsHeaders();
    hdrs.set(DEAD_LETTER_HEADERS.cause, 'unacknowledged');
    hdrs.set(DEAD_LETTER_HEADERS.subject, stored.subject);
    hdrs.set(DEAD_LETTER_HEADERS.streamSeq, String(seq));
    const ack = await js.publish(target.dlqSubject, JSON.stringify(letter), {
      headers: hdrs,
      msgID: `${target.stream}:${seq}`,
    });
    // Dead-lettered already (an instance stopped between the dead letter and the ack).
    if (ack.duplicate) return;
    onDeadLettered();
    log.warn(
      { subject: stored.subject, stream_seq: seq, deliveries },
      `${target.what} dead-lettered: ${reason}`,
    );
  } catch (err) {
    log.error(
      { err, stream_seq: seq },
      `one ${target.what} reached max_deliver unacknowledged and could not be dead-lettered; it stays in the ${target.stream} stream`,
    );
  }
}
