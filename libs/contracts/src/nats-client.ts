import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { NATS_REQUEST_ID_HEADER } from './subjects';

export type { MsgHdrs, NatsConnection };

/**
 * Connects once with a bounded timeout so a missing server is a clear startup error, not a
 * hang; afterwards the client reconnects forever (readiness reports the outage meanwhile).
 */
export async function connectNats(servers: string, name: string, timeoutMs = 5_000): Promise<NatsConnection> {
  try {
    return await connect({
      servers: servers.split(',').map((s) => s.trim()),
      name,
      timeout: timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw new Error(
      `Cannot connect to NATS at ${servers}: ${(err as Error).message}. Start nats-server ` +
        '(nats-server -js) or set NATS_URL; NATS_ENABLED=false runs without NATS features.',
      { cause: err },
    );
  }
}

export function correlationHeaders(requestId: string | undefined): MsgHdrs | undefined {
  if (!requestId) return undefined;
  const h = natsHeaders();
  h.set(NATS_REQUEST_ID_HEADER, requestId);
  return h;
}

/** Readiness of a NATS connection: null when usable. */
export function natsReadiness(nc: NatsConnection | null): string | null {
  if (!nc) return 'NATS is disabled (NATS_ENABLED=false)';
  if (nc.isClosed()) return 'NATS connection closed';
  if (nc.isDraining()) return 'NATS connection draining';
  return null;
}
