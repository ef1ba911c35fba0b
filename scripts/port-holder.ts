import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/**
 * Who holds a TCP port, so that a second `npm start` can say which process to stop. The pid comes
 * from /proc (Linux): the listening socket's inode, then the process with that socket open. Where
 * /proc is missing or the holder belongs to another user, the pid is unknown but the port is still
 * reported as taken.
 */
export interface PortHolder {
  pid: number | null;
  command: string;
  /** The `npm start` that runs the holder, when it is one of its apps. */
  launcherPid: number | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Binds the port the way the apps do (0.0.0.0): EADDRINUSE means someone holds it. */
function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(false)));
  });
}

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; column 9 is the inode.
      if (cols.length > 9 && cols[1].endsWith(`:${hexPort}`) && cols[3] === '0A') inodes.add(cols[9]);
    }
  }
  return inodes;
}

function pidOfSocket(inodes: Set<string>): number | null {
  if (inodes.size === 0) return null;
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (wanted.has(fs.readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return 'unknown command';
  }
}

function parentOf(pid: number): number | null {
  try {
    // The command name in parentheses may contain spaces: the fields after it are fixed.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

const APP_PATH = `${path.sep}dist${path.sep}apps${path.sep}`;
const LAUNCHER_PATH = `${path.sep}scripts${path.sep}start.js`;

/** The holder of `port`, or null when it is free. */
export async function portHolder(port: number): Promise<PortHolder | null> {
  if (!(await portTaken(port))) return null;
  let pid: number | null = null;
  try {
    pid = pidOfSocket(listeningInodes(port));
  } catch {
    // no /proc here
  }
  if (pid === null) return { pid: null, command: 'unknown process', launcherPid: null };
  const parent = parentOf(pid);
  const launcherPid = parent !== null && commandOf(parent).includes(LAUNCHER_PATH) ? parent : null;
  return { pid, command: commandOf(pid), launcherPid };
}

/**
 * An app of a launcher killed a moment ago still holds its port while it shuts down (it noticed
 * its launcher's pipe close): wait for it, up to `timeoutMs`, rather than refuse to start.
 */
export async function waitForOrphanedApps(
  port: number,
  log: (msg: string) => void,
  timeoutMs = 20_000,
): Promise<void> {
  const holder = await portHolder(port);
  if (!holder?.pid || holder.launcherPid !== null || !holder.command.includes(APP_PATH)) return;
  log(`waiting for pid ${holder.pid}, an app of an earlier \`npm start\` that has gone, to exit`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (await portHolder(port))?.pid === holder.pid) await sleep(200);
}
