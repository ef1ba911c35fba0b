import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspect } from 'node:util';

/**
 * A value that must never reach a log line: JSON.stringify (pino) and util.inspect (console)
 * both print "[redacted]"; only `reveal()` gives the value, at the one place that sends it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}

/** How every NATS connection of every app authenticates and encrypts (CONTRACT 6). */
export interface NatsSettings {
  /** Server URLs from NATS_URL with any credentials removed (the client gets them separately). */
  servers: string[];
  /** From `nats://user:pass@host`. */
  user: string | null;
  password: Secret | null;
  /** From NATS_TOKEN, or `nats://token@host` (a user name without a password). */
  token: Secret | null;
  /** NATS_CREDS: a .creds file (user JWT and nkey seed) for decentralized JWT auth. */
  credsFile: string | null;
  /**
   * null: plain TCP, upgraded only if the server demands TLS (then trusted against the system
   * CAs). Otherwise TLS is required: set by any NATS_TLS_* variable or a `tls://` server URL.
   */
  tls: { caFile: string | null; certFile: string | null; keyFile: string | null } | null;
}

type Fail = (variable: string, detail: string) => void;

/** Readable as a file, or a problem naming the variable (the path is no secret; its content is). */
function readableFile(variable: string, file: string, fail: Fail): string | null {
  const resolved = path.resolve(file);
  try {
    const st = fs.statSync(resolved);
    if (!st.isFile()) {
      fail(variable, `"${file}" is not a file`);
      return null;
    }
    return fs.readFileSync(resolved, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(
      variable,
      code === 'ENOENT'
        ? `file "${file}" does not exist`
        : `file "${file}" cannot be read (${code ?? 'error'})`,
    );
    return null;
  }
}

/**
 * NATS_URL (one or more comma-separated servers, credentials allowed in the URL), NATS_CREDS,
 * NATS_TOKEN and NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY, validated together: every
 * problem is reported through `fail`, each naming its variable.
 */
export function parseNatsSettings(
  natsUrl: string,
  raw: (name: string) => string | undefined,
  fail: Fail,
): NatsSettings {
  const servers: string[] = [];
  let user: string | null = null;
  let password: string | null = null;
  let urlToken: string | null = null;
  let credentialsDiffer = false;
  let tlsScheme = false;
  for (const entry of natsUrl.split(',')) {
    const text = entry.trim();
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      fail('NATS_URL', 'must be a nats:// URL or a comma-separated list of them');
      continue;
    }
    if (!['nats:', 'tls:'].includes(u.protocol)) {
      fail('NATS_URL', `unsupported protocol "${u.protocol}" (use nats:// or tls://)`);
      continue;
    }
    if (u.protocol === 'tls:') tlsScheme = true;
    if (u.username) {
      const name = decodeURIComponent(u.username);
      const pass = u.password ? decodeURIComponent(u.password) : null;
      // A user name alone is the NATS convention for a token (nats://s3cr3t@host).
      const [nextUser, nextPass, nextToken] = pass === null ? [null, null, name] : [name, pass, null];
      if (
        (user !== null || urlToken !== null) &&
        (nextUser !== user || nextPass !== password || nextToken !== urlToken)
      ) {
        credentialsDiffer = true;
      }
      [user, password, urlToken] = [nextUser, nextPass, nextToken];
    }
    servers.push(`${u.protocol}//${u.host}`);
  }
  if (credentialsDiffer) {
    fail('NATS_URL', 'every server must carry the same credentials (the client uses one set)');
  }

  const envToken = raw('NATS_TOKEN') ?? null;
  const credsPath = raw('NATS_CREDS') ?? null;
  const methods = [
    user !== null ? 'a user and password in NATS_URL' : null,
    urlToken !== null ? 'a token in NATS_URL' : null,
    envToken !== null ? 'NATS_TOKEN' : null,
    credsPath !== null ? 'NATS_CREDS' : null,
  ].filter((m): m is string => m !== null);
  if (methods.length > 1) {
    fail(
      envToken !== null ? 'NATS_TOKEN' : credsPath !== null ? 'NATS_CREDS' : 'NATS_URL',
      `choose one way to authenticate to NATS, not ${methods.join(' and ')}`,
    );
  }

  if (credsPath !== null) {
    const text = readableFile('NATS_CREDS', credsPath, fail);
    if (
      text !== null &&
      !(/-----BEGIN NATS USER JWT-----/.test(text) && /-----BEGIN USER NKEY SEED-----/.test(text))
    ) {
      fail('NATS_CREDS', `"${credsPath}" is not a NATS .creds file (a user JWT and an nkey seed)`);
    }
  }

  const pem = (variable: string): string | null => {
    const file = raw(variable) ?? null;
    if (file === null) return null;
    const text = readableFile(variable, file, fail);
    if (text !== null && !text.includes('-----BEGIN ')) fail(variable, `"${file}" is not a PEM file`);
    return file;
  };
  const caFile = pem('NATS_TLS_CA');
  const certFile = pem('NATS_TLS_CERT');
  const keyFile = pem('NATS_TLS_KEY');
  if (certFile !== null && keyFile === null) {
    fail('NATS_TLS_KEY', 'must be set when NATS_TLS_CERT is (the client certificate needs its key)');
  }
  if (keyFile !== null && certFile === null) {
    fail('NATS_TLS_CERT', 'must be set when NATS_TLS_KEY is (the key needs its client certificate)');
  }
  const wantsTls = tlsScheme || caFile !== null || certFile !== null || keyFile !== null;

  const token = envToken ?? urlToken;
  return {
    servers,
    user,
    password: password === null ? null : new Secret(password),
    token: token === null ? null : new Secret(token),
    credsFile: credsPath === null ? null : path.resolve(credsPath),
    tls: wantsTls
      ? {
          caFile: caFile && path.resolve(caFile),
          certFile: certFile && path.resolve(certFile),
          keyFile: keyFile && path.resolve(keyFile),
        }
      : null,
  };
}

/** For logs and error messages: the servers and how this client authenticates, never a secret. */
export function describeNatsSettings(s: NatsSettings): string {
  const auth = s.credsFile
    ? `credentials file ${s.credsFile}`
    : s.user !== null
      ? `user "${s.user}"`
      : s.token
        ? 'a token'
        : 'no authentication';
  const tls = s.tls ? `TLS${s.tls.caFile ? ` (CA ${s.tls.caFile})` : ''}` : 'no TLS';
  return `${s.servers.join(',')} with ${auth}, ${tls}`;
}
