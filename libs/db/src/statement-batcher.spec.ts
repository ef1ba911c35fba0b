import { StatementBatcher } from './statement-batcher';

/** A read whose statements the test finishes by hand, recording the keys of each. */
function manualRead() {
  const calls: { keys: number[]; finish: (fail?: Error) => void }[] = [];
  const read = (keys: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ keys, finish: (fail) => (fail ? reject(fail) : resolve(keys.map((k) => `r${k}`))) });
    });
  return { calls, read };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('StatementBatcher', () => {
  it('sends a lone key at once, on its own', async () => {
    const { calls, read } = manualRead();
    const b = new StatementBatcher(read, 2, 10);
    const p = b.load(1);
    expect(calls.map((c) => c.keys)).toEqual([[1]]);
    calls[0].finish();
    await expect(p).resolves.toBe('r1');
    expect(b.pending).toEqual({ inFlight: 0, queued: 0 });
  });

  it('queues keys while every slot is busy and sends them together when one frees, in order', async () => {
    const { calls, read } = manualRead();
    const b = new StatementBatcher(read, 2, 10);
    const results = [1, 2, 3, 4, 5].map((k) => b.load(k));
    expect(calls.map((c) => c.keys)).toEqual([[1], [2]]);
    expect(b.pending).toEqual({ inFlight: 2, queued: 3 });
    calls[1].finish();
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([[1], [2], [3, 4, 5]]);
    calls[0].finish();
    calls[2].finish();
    await expect(Promise.all(results)).resolves.toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('carries at most maxBatch keys per statement', async () => {
    const { calls, read } = manualRead();
    const b = new StatementBatcher(read, 1, 3);
    const results = Array.from({ length: 8 }, (_, k) => b.load(k));
    calls[0].finish();
    await tick();
    calls[1].finish();
    await tick();
    calls[2].finish();
    await tick();
    calls[3].finish();
    expect(calls.map((c) => c.keys)).toEqual([[0], [1, 2, 3], [4, 5, 6], [7]]);
    await expect(Promise.all(results)).resolves.toHaveLength(8);
  });

  it('rejects every key of a failed statement, and only those', async () => {
    const { calls, read } = manualRead();
    const b = new StatementBatcher(read, 1, 10);
    const first = b.load(1);
    const second = [b.load(2), b.load(3)];
    calls[0].finish(new Error('connection lost'));
    await expect(first).rejects.toThrow('connection lost');
    await tick();
    expect(calls[1].keys).toEqual([2, 3]);
    calls[1].finish();
    await expect(Promise.all(second)).resolves.toEqual(['r2', 'r3']);
  });

  it('rejects a batch whose read returns the wrong number of results', async () => {
    const b = new StatementBatcher(async (keys: number[]) => keys.slice(1), 1, 10);
    await expect(b.load(1)).rejects.toThrow('0 results for 1 keys');
  });

  it('keeps keys that share a conflict name out of one statement, each keeping its place', async () => {
    const { calls, read } = manualRead();
    // Keys conflict when they are equal modulo 3: at most one of each residue per statement.
    const b = new StatementBatcher(read, 1, 10, (k: number) => [`row-${k % 3}`]);
    const results = [0, 1, 3, 2, 4, 6, 5].map((k) => b.load(k));
    calls[0].finish();
    await tick();
    expect(calls[1].keys).toEqual([1, 3, 2]);
    calls[1].finish();
    await tick();
    expect(calls[2].keys).toEqual([4, 6, 5]);
    calls[2].finish();
    await expect(Promise.all(results)).resolves.toEqual(['r0', 'r1', 'r3', 'r2', 'r4', 'r6', 'r5']);
  });

  it('refuses limits below 1', () => {
    expect(() => new StatementBatcher(async (k: number[]) => k, 0, 10)).toThrow('at least 1');
    expect(() => new StatementBatcher(async (k: number[]) => k, 1, 0)).toThrow('at least 1');
  });
});
