import type { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '@aigov/observability';

/** Why an event was dead-lettered, as a closed set (a metric label and the dead letter's cause header). */
export type DeadLetterCause =
  'invalid_json' | 'invalid_cloudevent' | 'unknown_type' | 'invalid_data' | 'retries_exhausted' | 'rejected';

export class IdentityMetrics {
  readonly applied: Counter;
  readonly stale: Counter;
  readonly duplicates: Counter;
  readonly deadLettered: Counter;
  readonly retried: Counter;
  readonly databaseFailures: Counter;
  readonly batchDuration: Histogram;
  readonly pending: Gauge;
  readonly ackPending: Gauge;

  constructor(metrics: Metrics) {
    this.applied = metrics.counter(
      'aigov_identity_events_applied_total',
      'Identity events applied, by type',
      ['type'],
    );
    this.stale = metrics.counter(
      'aigov_identity_events_stale_total',
      'Identity events ignored as older than what was applied, by type',
      ['type'],
    );
    this.duplicates = metrics.counter(
      'aigov_identity_events_duplicate_total',
      'Identity events already applied (same id), by type',
      ['type'],
    );
    this.deadLettered = metrics.counter(
      'aigov_identity_events_dead_lettered_total',
      'Identity events sent to aigov.dlq.identity, by reason',
      ['reason'],
    );
    this.retried = metrics.counter(
      'aigov_identity_events_retried_total',
      'Identity events handed back for a later delivery, by type',
      ['type'],
    );
    this.databaseFailures = metrics.counter(
      'aigov_identity_batch_failures_total',
      'Identity batches the database could not take (held and tried again)',
    );
    this.batchDuration = metrics.histogram(
      'aigov_identity_batch_duration_seconds',
      'Time to handle one batch of identity events, from fetch to the last acknowledgement',
      [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    );
    this.pending = metrics.gauge(
      'aigov_identity_consumer_pending',
      'Identity events in the stream not yet delivered to the membership-listener consumer (its lag)',
    );
    this.ackPending = metrics.gauge(
      'aigov_identity_consumer_ack_pending',
      'Identity events delivered and not yet acknowledged',
    );
  }
}
