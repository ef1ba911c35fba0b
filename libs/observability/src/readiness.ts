/**
 * Readiness is the conjunction of named checks registered by the parts of an app (database,
 * NATS, seed...). Each app's readiness covers its own dependencies only.
 */
export type ReadinessCheck = () => Promise<string | null> | string | null;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  /** A check returns null when fine, or a short reason when not ready. */
  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async report(timeoutMs = 2_000): Promise<ReadinessReport> {
    const checks: ReadinessReport['checks'] = {};
    await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const detail = await Promise.race([
            Promise.resolve(check()),
            new Promise<string>((resolve) => {
              timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
            }),
          ]);
          checks[name] = detail === null ? { ok: true } : { ok: false, detail };
        } catch (err) {
          checks[name] = { ok: false, detail: (err as Error).message };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }
}
