import * as fs from 'node:fs';

/**
 * Summarises a V8 .cpuprofile (from `npm run bench:api -- --profile <dir>`): self time by
 * function and by package, as shares of the time the process was not idle.
 *
 *   node dist/bench/api/profile-summary.js <file.cpuprofile> [top] [skip seconds]
 *
 * Skip the start-up (module loading, migrations): 10 s is plenty for the bench's API process.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (or area) a script belongs to, for the per-package totals. */
function area(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)' || name === '(program)') return name;
  if (!url) return 'native / V8';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node core';
  const own = /\/(apps|libs)\/([^/]+)\//.exec(url);
  return own ? `${own[1]}/${own[2]}` : url;
}

function main(): void {
  const [file, topArg] = process.argv.slice(2);
  if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [top]');
  const top = Number(topArg ?? '30');
  const skipUs = Number(process.argv[4] ?? '10') * 1e6;
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at >= skipUs) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });

  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const a = area(url, functionName);
    if (a === '(idle)') continue;
    busy += us;
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(apps|libs)\//, '$1/');
    const key = `${functionName || '(anonymous)'}  ${short}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`busy (not idle): ${(busy / 1e6).toFixed(2)} s of samples`);
  console.log('\nself time by package or area:');
  for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1]).slice(0, 25)) console.log(`${pct(us)}  ${a}`);
  console.log(`\ntop ${top} functions by self time:`);
  for (const [f, us] of [...byFunction].sort((x, y) => y[1] - x[1]).slice(0, top))
    console.log(`${pct(us)}  ${f}`);
}

main();
