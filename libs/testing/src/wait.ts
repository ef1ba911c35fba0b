/**
 * Polls `probe` until it answers true; throws naming `what` once `timeoutMs` has passed. The
 * bound is a deadline for something that is expected to happen, not a measurement: tests pass it
 * generously (a loaded 2-core machine is slow), and the probe decides what "done" means.
 */
export async function waitFor(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
