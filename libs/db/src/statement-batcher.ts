/**
 * Opportunistic batching of one kind of statement. A key is sent at once while fewer than
 * `maxInFlight` statements of this kind are running, so a lone request waits for nothing. Under
 * load, keys that arrive while all slots are busy queue up, and the next free slot sends them
 * together (up to `maxBatch`) in one statement. The database then does the per-statement work
 * (protocol, executor start-up, a commit, a round trip, the driver's parsing) once for many
 * requests.
 *
 * `conflicts` names what two keys of one statement must not share (for a write, the row it
 * decides on): a key whose name is already in the batch being formed waits for a later one, and
 * keeps its place in the queue.
 *
 * Each key gets the result at its own position; when the statement fails, every key of that
 * batch gets the error, as it would have on its own.
 */
export class StatementBatcher<K, R> {
  private queue: Waiting<K, R>[] = [];
  private inFlight = 0;

  constructor(
    /** Runs the keys in one statement; returns one result per key, in the keys' order. */
    private readonly run: (keys: K[]) => Promise<R[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
    private readonly conflicts?: (key: K) => readonly string[],
  ) {
    if (!(maxInFlight >= 1 && maxBatch >= 1)) throw new Error('StatementBatcher: limits must be at least 1');
  }

  load(key: K): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      this.dispatch();
    });
  }

  /** Statements running now and keys waiting (for tests and metrics). */
  get pending(): { inFlight: number; queued: number } {
    return { inFlight: this.inFlight, queued: this.queue.length };
  }

  private dispatch(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      this.inFlight++;
      void this.send(batch);
    }
  }

  /** The next batch: queued keys in order, up to maxBatch, none sharing a conflict name. */
  private take(): Waiting<K, R>[] {
    if (!this.conflicts) return this.queue.splice(0, this.maxBatch);
    const batch: Waiting<K, R>[] = [];
    const rest: Waiting<K, R>[] = [];
    const taken = new Set<string>();
    for (const w of this.queue) {
      const names = batch.length < this.maxBatch ? this.conflicts(w.key) : null;
      if (names && !names.some((n) => taken.has(n))) {
        for (const n of names) taken.add(n);
        batch.push(w);
      } else {
        rest.push(w);
      }
    }
    this.queue = rest;
    return batch;
  }

  private async send(batch: Waiting<K, R>[]): Promise<void> {
    try {
      const results = await this.run(batch.map((b) => b.key));
      if (results.length !== batch.length)
        throw new Error(`StatementBatcher: ${results.length} results for ${batch.length} keys`);
      batch.forEach((b, i) => b.resolve(results[i]));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.inFlight--;
      this.dispatch();
    }
  }
}

interface Waiting<K, R> {
  key: K;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}
