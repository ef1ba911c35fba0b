import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { redactCredentials } from '@aigov/config';
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
      `Cannot connect to NATS at ${redactCredentials(servers)}: ${(err as Error).message}. Start nats-server ` +
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

/** Connections currently cut off from the server (reconnecting), per the client's status events. */
const disconnected = new WeakSet<NatsConnection>();

/**
 * Follows the connection's status stream so readiness reflects an outage while the client is
 * reconnecting (isClosed() only turns true once it gives up, which it never does here).
 */
export function trackNatsStatus(nc: NatsConnection): void {
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnecting') disconnected.add(nc);
      else if (status.type === 'reconnect') disconnected.delete(nc);
    }
  })().catch(() => undefined);
}

export function isNatsConnected(nc: NatsConnection): boolean {
  return !nc.isClosed() && !nc.isDraining() && !disconnected.has(nc);
}

/** Readiness of a NATS connection: null when usable. */
export function natsReadiness(nc: NatsConnection | null): string | null {
  // Switched off on purpose (NATS_ENABLED=false): not a dependency of this deployment.
  if (!nc) return null;
  if (nc.isClosed()) return 'NATS connection closed';
  if (nc.isDraining()) return 'NATS connection draining';
  if (disconnected.has(nc)) return 'NATS server unreachable (reconnecting)';
  return null;
}
