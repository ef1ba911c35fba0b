import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from 'pg';
import { testClient } from '@aigov/testing';
import {
  claimEmbeddedCluster,
  embeddedDatabaseUrl,
  embeddedPaths,
  runningEmbeddedCluster,
  startEmbeddedCluster,
  type EmbeddedCluster,
} from '@aigov/db';
import { freshDataDir, isAlive, listeningAddresses } from './helpers/processes';

jest.setTimeout(120_000);

async function connect(url: string): Promise<Client> {
  const client = testClient({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = await connect(url);
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

/** The embedded PostgreSQL cluster of a DATA_DIR, driven through the library (no launcher). */
describe('embedded PostgreSQL cluster (libs/db/src/embedded.ts)', () => {
  const dataDir = freshDataDir('aigov-embedded-');
  const paths = embeddedPaths(dataDir);
  let first: EmbeddedCluster;

  beforeAll(async () => {
    // A directory an initdb killed halfway would leave: removed, never mistaken for the cluster.
    fs.mkdirSync(path.join(dataDir, 'postgres.init-999999999'));
    first = await startEmbeddedCluster(dataDir);
  });

  afterAll(async () => {
    if (fs.existsSync(path.join(paths.clusterDir, 'postmaster.pid'))) await first.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates one cluster in DATA_DIR/postgres, with a generated password readable only by its owner', async () => {
    expect(first.adopted).toBe(false);
    expect(fs.existsSync(path.join(paths.clusterDir, 'PG_VERSION'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'postgres.init-999999999'))).toBe(false);
    expect(fs.statSync(paths.passwordFile).mode & 0o777).toBe(0o600);
    const password = fs.readFileSync(paths.passwordFile, 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(first.url).toContain(encodeURIComponent(password));
    const [row] = await query<{ version: string; db: string }>(
      first.url,
      'SELECT current_setting($$server_version_num$$) AS version, current_database() AS db',
    );
    expect(row.version.slice(0, 2)).toBe('17');
    expect(row.db).toBe('aigov');
  });

  it('listens on 127.0.0.1 only, with no Unix socket, and refuses a wrong password', async () => {
    expect(listeningAddresses(first.pid)).toEqual([`127.0.0.1:${first.port}`]);
    const [settings] = await query<{ listen: string; sockets: string }>(
      first.url,
      `SELECT current_setting('listen_addresses') AS listen,
              current_setting('unix_socket_directories') AS sockets`,
    );
    expect(settings).toEqual({ listen: '127.0.0.1', sockets: '' });
    const wrong = new URL(first.url);
    wrong.password = 'not-the-password';
    await expect(connect(wrong.toString())).rejects.toMatchObject({ code: '28P01' });
  });

  it('PostgreSQL 17 builtin C.UTF-8 locale: lower() folds non-ASCII letters (emails unique regardless of case)', async () => {
    const [row] = await query<{ l: string }>(first.url, `SELECT lower('ÉLODIE@EXAMPLE.COM') AS l`);
    expect(row.l).toBe('élodie@example.com');
  });

  it('a second start on the same DATA_DIR adopts the running server instead of starting another', async () => {
    const second = await startEmbeddedCluster(dataDir);
    expect({ adopted: second.adopted, pid: second.pid, port: second.port }).toEqual({
      adopted: true,
      pid: first.pid,
      port: first.port,
    });
    expect(await embeddedDatabaseUrl(dataDir)).toBe(first.url);
  });

  it('one launcher claims the cluster at a time; the claim ends with its session', async () => {
    const a = await claimEmbeddedCluster(first.url, 'aigov-start pid 111');
    expect(a.owner).toBe(true);
    const b = await claimEmbeddedCluster(first.url, 'aigov-start pid 222');
    expect(b).toEqual({ owner: false, heldBy: 'aigov-start pid 111' });
    if (a.owner) await a.release();
    const c = await claimEmbeddedCluster(first.url, 'aigov-start pid 333');
    expect(c.owner).toBe(true);
    if (c.owner) await c.release();
  });

  it('stop leaves no server behind; data survives a restart, which starts a new server', async () => {
    await query(first.url, 'CREATE TABLE survives (v text); INSERT INTO survives VALUES ($$kept$$)');
    await first.stop();
    expect(isAlive(first.pid)).toBe(false);
    expect(fs.existsSync(path.join(paths.clusterDir, 'postmaster.pid'))).toBe(false);
    expect(await runningEmbeddedCluster(dataDir)).toBeNull();
    await expect(embeddedDatabaseUrl(dataDir)).rejects.toThrow(/no embedded PostgreSQL is running/);

    first = await startEmbeddedCluster(dataDir);
    expect(first.adopted).toBe(false);
    expect(await query<{ v: string }>(first.url, 'SELECT v FROM survives')).toEqual([{ v: 'kept' }]);
  });

  it('a password file made readable to others is put back to 0600', async () => {
    fs.chmodSync(paths.passwordFile, 0o644);
    await startEmbeddedCluster(dataDir);
    expect(fs.statSync(paths.passwordFile).mode & 0o777).toBe(0o600);
  });
});
