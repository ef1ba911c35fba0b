import * as fs from 'node:fs';
import {
  connect,
  credsAuthenticator,
  headers as natsHeaders,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { describeNatsSettings, type NatsSettings } from '@aigov/config';
import { NATS_REQUEST_ID_HEADER } from './subjects';

export type { MsgHdrs, NatsConnection };

/** The connection options every NATS client of every app uses: one place for auth and TLS. */
export type NatsSecurityOptions = Pick<
  NodeConnectionOptions,
  'servers' | 'user' | 'pass' | 'token' | 'authenticator' | 'tls'
>;

/**
 * NatsSettings (from NATS_URL, NATS_CREDS, NATS_TOKEN, NATS_TLS_*) as client options. The
 * .creds file is read on every (re)connect, so a rotated file is picked up without a restart.
 */
export function natsSecurityOptions(s: NatsSettings): NatsSecurityOptions {
  const out: NatsSecurityOptions = { servers: s.servers };
  if (s.user !== null) {
    out.user = s.user;
    out.pass = s.password?.reveal() ?? '';
  }
  if (s.token) out.token = s.token.reveal();
  const credsFile = s.credsFile;
  if (credsFile !== null) out.authenticator = credsAuthenticator(() => fs.readFileSync(credsFile));
  if (s.tls) {
    out.tls = {
      ...(s.tls.caFile ? { caFile: s.tls.caFile } : {}),
      ...(s.tls.certFile ? { certFile: s.tls.certFile } : {}),
      ...(s.tls.keyFile ? { keyFile: s.tls.keyFile } : {}),
    };
  }
  return out;
}

/**
 * A first connection that failed, explained for the operator: which setting to look at. The
 * server is named without credentials, and no secret is part of the message.
 */
export function natsConnectFailure(err: unknown, s: NatsSettings): Error {
  const e = (err ?? {}) as { name?: string; message?: string; code?: string };
  const reason = e.message ?? String(err);
  const where = describeNatsSettings(s);
  let hint: string;
  if (e.name === 'AuthorizationError' || /authori[sz]ation violation|authentication/i.test(reason)) {
    hint =
      'the server refused the credentials: check the user and password in NATS_URL, NATS_TOKEN or ' +
      'NATS_CREDS against the server configuration';
  } else if (
    /certificate|self[- ]signed|CERT_|UNABLE_TO_VERIFY|DEPTH_ZERO|ERR_TLS|ssl|tls/i.test(
      `${reason} ${e.code ?? ''}`,
    )
  ) {
    hint =
      'the TLS handshake failed: NATS_TLS_CA must name the CA that signed the server certificate ' +
      '(and NATS_TLS_CERT/NATS_TLS_KEY a client certificate the server trusts, if it asks for one)';
  } else {
    hint =
      'start nats-server (nats-server -js) or set NATS_URL; NATS_ENABLED=false runs without NATS features';
  }
  return new Error(`Cannot connect to NATS at ${where}: ${reason}; ${hint}.`, { cause: err });
}

/**
 * Connects once with a bounded timeout so a missing server is a clear startup error, not a
 * hang; afterwards the client reconnects forever (readiness reports the outage meanwhile).
 */
export async function connectNats(
  settings: NatsSettings,
  name: string,
  timeoutMs = 5_000,
): Promise<NatsConnection> {
  try {
    return await connect({
      ...natsSecurityOptions(settings),
      name,
      timeout: timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw natsConnectFailure(err, settings);
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
