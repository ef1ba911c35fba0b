import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Stores } from '@aigov/authz';
import { BUDGET_API_ACTOR } from '@aigov/contracts';
import { APP_LOGGER, Metrics, type Logger } from '@aigov/observability';
import type { Counter } from 'prom-client';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { SPEND_CLOCK } from './enforcement.service';
import type { Clock } from './period';

/** Holds expired per statement: one short transaction each, so a sweep never locks much at once. */
export const SWEEP_CHUNK = 500;

/**
 * Releases reservations whose ttl passed (CONTRACT 7): every RESERVATION_SWEEP_INTERVAL_MS, and
 * once at start, so that holds left by a crashed instance end. Each statement expires up to
 * SWEEP_CHUNK holds, skipping rows another sweeper or a settling usage record has locked
 * (FOR UPDATE SKIP LOCKED), so several instances share the work and each hold ends exactly once,
 * settled or expired. A failure is logged and the next tick tries again; the sweeper never stops
 * the process.
 */
@Injectable()
export class ReservationSweeperService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly expired: Counter;
  private readonly failures: Counter;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private failing = false;

  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(SPEND_CLOCK) private readonly clock: Clock,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    @Inject(Metrics) metrics: Metrics,
  ) {
    this.expired = metrics.counter(
      'aigov_reservations_expired_total',
      'Reservations released by the sweeper because their ttl passed',
    );
    this.failures = metrics.counter(
      'aigov_reservation_sweep_failures_total',
      'Sweeps that failed (tried again)',
    );
  }

  onApplicationBootstrap(): void {
    this.tick();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.stopping) return;
    this.running = this.sweep()
      .then(() => undefined)
      .finally(() => {
        this.running = null;
        if (this.stopping) return;
        this.timer = setTimeout(() => this.tick(), this.options.spendUpkeep.reservationSweepIntervalMs);
        this.timer.unref();
      });
  }

  /** Expires every hold due by now, a chunk at a time; returns how many. Never throws. */
  async sweep(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const ids = await this.stores.spend.expireReservations(
          BUDGET_API_ACTOR,
          this.clock.now(),
          SWEEP_CHUNK,
        );
        total += ids.length;
        this.expired.inc(ids.length);
        if (ids.length < SWEEP_CHUNK || this.stopping) break;
      }
      if (this.failing) this.logger.info('reservation sweeper works again');
      this.failing = false;
    } catch (err) {
      this.failures.inc();
      // Logged once per outage, not every few seconds.
      if (!this.failing) this.logger.warn({ err }, 'reservation sweep failed; trying again at the next tick');
      this.failing = true;
    }
    if (total > 0) this.logger.info({ expired: total }, 'expired reservations released');
    return total;
  }
}
