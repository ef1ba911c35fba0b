import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { ConfigError, loadConfig, redactCredentials } from './config';

const CREDS = `-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4
------END USER NKEY SEED------
`;
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function problems(env: Record<string, string>): { variable: string; detail: string }[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('NATS settings (NATS_URL credentials, NATS_CREDS, NATS_TOKEN, NATS_TLS_*)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-nats-config-'));
    fs.writeFileSync(path.join(dir, 'app.creds'), CREDS);
    fs.writeFileSync(path.join(dir, 'ca.pem'), PEM);
    fs.writeFileSync(path.join(dir, 'not-pem.txt'), 'hello');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('defaults to one local server, no authentication, no TLS', () => {
    const { nats } = loadConfig({});
    expect(nats).toMatchObject({
      servers: ['nats://127.0.0.1:4222'],
      user: null,
      password: null,
      token: null,
      credsFile: null,
      tls: null,
    });
  });

  it('takes user and password out of every server URL (percent-decoded) and keeps them secret', () => {
    const c = loadConfig({
      NATS_URL: 'nats://api:p%40ss%3Aword@10.0.0.1:4222, nats://api:p%40ss%3Aword@10.0.0.2',
    });
    expect(c.nats.servers).toEqual(['nats://10.0.0.1:4222', 'nats://10.0.0.2']);
    expect(c.nats.user).toBe('api');
    expect(c.nats.password?.reveal()).toBe('p@ss:word');
    // Neither a JSON log line nor console output can carry it.
    expect(JSON.stringify({ ...c, maxSpendLimitMicros: null })).not.toContain('p@ss');
    expect(JSON.stringify({ ...c, maxSpendLimitMicros: null })).not.toContain('p%40ss');
    expect(inspect(c.nats, { depth: 5 })).not.toContain('p@ss');
    expect(redactCredentials(c.natsUrl)).not.toContain('p%40ss');
  });

  it('reads a user name without a password as a token, and NATS_TOKEN likewise', () => {
    expect(loadConfig({ NATS_URL: 'nats://s3cr3t@127.0.0.1:4222' }).nats.token?.reveal()).toBe('s3cr3t');
    expect(redactCredentials('nats://s3cr3t@127.0.0.1:4222')).not.toContain('s3cr3t');
    const c = loadConfig({ NATS_TOKEN: 'tok' });
    expect(c.nats.token?.reveal()).toBe('tok');
    expect(JSON.stringify({ ...c, maxSpendLimitMicros: null })).not.toContain('"tok"');
  });

  it('accepts a .creds file and TLS files, turning TLS on', () => {
    const c = loadConfig({
      NATS_URL: 'tls://nats.example:4222',
      NATS_CREDS: path.join(dir, 'app.creds'),
      NATS_TLS_CA: path.join(dir, 'ca.pem'),
    });
    expect(c.nats.credsFile).toBe(path.join(dir, 'app.creds'));
    expect(c.nats.tls).toEqual({ caFile: path.join(dir, 'ca.pem'), certFile: null, keyFile: null });
    expect(loadConfig({ NATS_URL: 'tls://nats.example:4222' }).nats.tls).toEqual({
      caFile: null,
      certFile: null,
      keyFile: null,
    });
  });

  it('names every bad NATS variable in one error, with the file that is wrong', () => {
    const found = problems({
      NATS_CREDS: path.join(dir, 'missing.creds'),
      NATS_TLS_CA: path.join(dir, 'not-pem.txt'),
      NATS_TLS_CERT: path.join(dir, 'ca.pem'),
      NATS_URL: 'http://x:4222',
    });
    expect(found.map((p) => p.variable).sort()).toEqual([
      'NATS_CREDS',
      'NATS_TLS_CA',
      'NATS_TLS_KEY',
      'NATS_URL',
    ]);
    expect(found.find((p) => p.variable === 'NATS_CREDS')?.detail).toMatch(/missing\.creds" does not exist/);
    expect(found.find((p) => p.variable === 'NATS_TLS_CA')?.detail).toMatch(/not a PEM file/);
  });

  it('refuses a file that is no .creds file, a directory, and two ways to authenticate', () => {
    expect(problems({ NATS_CREDS: path.join(dir, 'not-pem.txt') })).toEqual([
      { variable: 'NATS_CREDS', detail: expect.stringMatching(/not a NATS \.creds file/) as unknown },
    ]);
    expect(problems({ NATS_TLS_CA: dir })[0]).toMatchObject({ variable: 'NATS_TLS_CA' });
    expect(problems({ NATS_URL: 'nats://u:p@h:4222', NATS_TOKEN: 't' })).toEqual([
      { variable: 'NATS_TOKEN', detail: expect.stringMatching(/choose one way/) as unknown },
    ]);
    expect(problems({ NATS_URL: 'nats://u:p@h1:4222,nats://v:q@h2:4222' })[0].detail).toMatch(
      /same credentials/,
    );
  });

  it('never puts a secret into the ConfigError message', () => {
    let message = '';
    try {
      loadConfig({ NATS_URL: 'nats://u:hunter2@h:4222', NATS_TOKEN: 'tok-hunter3', PORT: 'x' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/NATS_TOKEN/);
    expect(message).not.toMatch(/hunter/);
  });
});
