import * as fs from 'node:fs';
import * as path from 'node:path';
import { openEmbeddedDatabase, type EmbeddedDatabase } from '@aigov/db';
import { LOCK_FILE, freshDataDir } from './helpers/processes';

/**
 * The host election of the embedded database: a lock file created with O_EXCL by a starter
 * that is still alive means "someone is starting the host": everyone else must wait, never
 * take over (two PGlite openers of one directory silently lose writes).
 */
describe('embedded database lock: a live starter is never taken over', () => {
  const dirs: string[] = [];

  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  async function openExpectingToWait(dataDir: string): Promise<{ logs: string[]; error: Error | null }> {
    const logs: string[] = [];
    let opened: EmbeddedDatabase | null = null;
    let error: Error | null = null;
    try {
      opened = await openEmbeddedDatabase(dataDir, { timeoutMs: 2_000, log: (m) => logs.push(m) });
    } catch (err) {
      error = err as Error;
    } finally {
      // Only reached when the election is broken: do not leave a pglite-server behind.
      await opened?.stop();
    }
    return { logs, error };
  }

  it('waits while the lock names a live owner that has not published its port yet', async () => {
    const dataDir = freshDataDir('aigov-lock-');
    dirs.push(dataDir);
    const lockFile = path.join(dataDir, LOCK_FILE);
    fs.writeFileSync(lockFile, JSON.stringify({ ownerPid: process.pid, hostPid: null, port: null }));

    const { logs, error } = await openExpectingToWait(dataDir);

    expect(error?.message).toMatch(/Timed out after 2000 ms waiting for the embedded database/);
    expect(logs.filter((l) => l.includes('stale'))).toEqual([]);
    expect(fs.existsSync(lockFile)).toBe(true);
  });

  it('waits as well while the lock file exists but is still empty (created, content not yet written)', async () => {
    // openEmbeddedDatabase itself publishes the lock complete (link of a written file), but a
    // crash mid-write or another version could leave it empty for a moment: a young empty lock
    // means "someone is starting", so the others wait.
    const dataDir = freshDataDir('aigov-lock-');
    dirs.push(dataDir);
    const lockFile = path.join(dataDir, LOCK_FILE);
    fs.closeSync(fs.openSync(lockFile, 'wx'));

    const { logs, error } = await openExpectingToWait(dataDir);

    expect(logs.filter((l) => l.includes('stale'))).toEqual([]);
    expect(fs.existsSync(lockFile)).toBe(true);
    expect(error?.message).toMatch(/Timed out after 2000 ms waiting for the embedded database/);
  });

  it('elects exactly one host when several starters race on a fresh directory', async () => {
    const dataDir = freshDataDir('aigov-lock-');
    dirs.push(dataDir);
    const opened = await Promise.all(
      [1, 2, 3].map(() => openEmbeddedDatabase(dataDir, { timeoutMs: 60_000 })),
    );
    try {
      expect(opened.filter((o) => o.owned)).toHaveLength(1);
      expect(new Set(opened.map((o) => o.url)).size).toBe(1);
    } finally {
      for (const o of opened.filter((x) => !x.owned)) await o.stop();
      await opened.find((o) => o.owned)?.stop();
    }
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
  });

  it('takes over a stale lock whose processes are gone', async () => {
    const dataDir = freshDataDir('aigov-lock-');
    dirs.push(dataDir);
    const lockFile = path.join(dataDir, LOCK_FILE);
    // A pid that cannot be alive: beyond the kernel's pid_max.
    fs.writeFileSync(lockFile, JSON.stringify({ ownerPid: 2 ** 30, hostPid: 2 ** 30, port: 1 }));
    const logs: string[] = [];
    const db = await openEmbeddedDatabase(dataDir, { timeoutMs: 60_000, log: (m) => logs.push(m) });
    try {
      expect(db.owned).toBe(true);
      expect(logs.some((l) => l.includes('removed a stale embedded-database lock'))).toBe(true);
      const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as { ownerPid: number };
      expect(lock.ownerPid).toBe(process.pid);
    } finally {
      await db.stop();
    }
  });
});
