import type { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '@aigov/observability';

export class UsageConsumerMetrics {
  readonly ingested: Counter;
  readonly duplicates: Counter;
  readonly deadLettered: Counter;
  readonly databaseFailures: Counter;
  readonly batchDuration: Histogram;
  readonly batchSize: Histogram;
  readonly pending: Gauge;
  readonly ackPending: Gauge;

  constructor(metrics: Metrics) {
    this.ingested = metrics.counter(
      'aigov_usage_records_ingested_total',
      'Usage records from AI_USAGE written to the ledger (first recording of their request id)',
    );
    this.duplicates = metrics.counter(
      'aigov_usage_records_duplicate_total',
      'Usage records from AI_USAGE whose request id was already in the ledger (redeliveries, replays)',
    );
    this.deadLettered = metrics.counter(
      'aigov_usage_records_dead_lettered_total',
      'Usage records sent to aigov.dlq.usage, by cause',
      ['reason'],
    );
    this.databaseFailures = metrics.counter(
      'aigov_usage_batch_failures_total',
      'Usage batches the database could not take (held and tried again)',
    );
    this.batchDuration = metrics.histogram(
      'aigov_usage_batch_duration_seconds',
      'Time to handle one batch of usage records, from fetch to the last acknowledgement',
      [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    );
    this.batchSize = metrics.histogram(
      'aigov_usage_batch_records',
      'Usage records per batch fetched from AI_USAGE',
      [],
      [1, 5, 10, 25, 50, 100, 200, 500, 1000],
    );
    this.pending = metrics.gauge(
      'aigov_usage_consumer_pending',
      'Usage records in AI_USAGE not yet delivered to the budget-api consumer (its lag)',
    );
    this.ackPending = metrics.gauge(
      'aigov_usage_consumer_ack_pending',
      'Usage records delivered and not yet acknowledged',
    );
  }
}
