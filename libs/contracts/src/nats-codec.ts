import type { Deserializer, IncomingRequest, IncomingEvent, Serializer } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';

/**
 * Plain JSON on the wire (docs/nats.md): Nest's NATS transport normally wraps messages in its own
 * `{pattern, data, id}` envelope; these codecs make it speak bare JSON so any NATS client works.
 */

/** Payload given to a handler when the message body is not JSON; handlers answer an error. */
export class MalformedPayload {
  constructor(readonly reason: string) {}
}

/** A request body as JSON, or a MalformedPayload saying why not (the reply's message). */
export function decodePlainJson(bytes: Uint8Array): unknown {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (text.length === 0) return new MalformedPayload('empty message');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    return new MalformedPayload(`message is not valid JSON: ${(err as Error).message}`);
  }
}

interface NatsLikeMessage {
  data: Uint8Array;
  subject: string;
  reply?: string;
}

export class PlainJsonDeserializer implements Deserializer<NatsLikeMessage, IncomingRequest | IncomingEvent> {
  deserialize(
    msg: NatsLikeMessage,
    options?: { channel?: string; replyTo?: string },
  ): IncomingRequest | IncomingEvent {
    const pattern = options?.channel ?? msg.subject;
    const data = decodePlainJson(msg.data);
    // Nest treats a message with an id as a request (it replies) and one without as an event.
    return options?.replyTo ? { pattern, data, id: randomUUID() } : { pattern, data };
  }
}

interface OutgoingPacket {
  response?: unknown;
  err?: unknown;
  isDisposed?: boolean;
}

export class PlainJsonSerializer implements Serializer<OutgoingPacket, { data: Uint8Array }> {
  serialize(packet: OutgoingPacket): { data: Uint8Array } {
    if (packet.err !== undefined && packet.err !== null) {
      // Handlers answer their own error envelopes; this is only for what escaped them.
      return {
        data: Buffer.from(
          JSON.stringify({ ok: false, error: { code: 'internal', message: 'internal error' } }),
        ),
      };
    }
    return { data: Buffer.from(JSON.stringify(packet.response ?? null)) };
  }
}
