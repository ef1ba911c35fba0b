/**
 * Opportunistic batching of one kind of read. A key is sent at once while fewer than
 * `maxInFlight` statements of this kind are running, so a lone request waits for nothing. Under
 * load, keys that arrive while all slots are busy queue up, and the next free slot sends them
 * all (up to `maxBatch`) in one statement. The database then does the per-statement work
 * (protocol, executor start-up, a round trip, the driver's parsing) once for many requests.
 *
 * Each key gets the result at its own position; when the statement fails, every key of that
 * batch gets the error, as it would have on its own.
 */
export class ReadBatcher<K, R> {
  private queue: { key: K; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    /** Reads the keys in one statement; returns one result per key, in the keys' order. */
    private readonly read: (keys: K[]) => Promise<R[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
  ) {
    if (!(maxInFlight >= 1 && maxBatch >= 1)) throw new Error('ReadBatcher: limits must be at least 1');
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
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.run(batch);
    }
  }

  private async run(batch: { key: K; resolve: (r: R) => void; reject: (err: unknown) => void }[]) {
    try {
      const results = await this.read(batch.map((b) => b.key));
      if (results.length !== batch.length)
        throw new Error(`ReadBatcher: ${results.length} results for ${batch.length} keys`);
      batch.forEach((b, i) => b.resolve(results[i]));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.inFlight--;
      this.dispatch();
    }
  }
}
