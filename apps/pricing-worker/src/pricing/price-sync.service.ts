import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  NATS_CONNECTION_TOKEN,
  SUBJECTS,
  cloudEvent,
  correlationHeaders,
  type NatsConnection,
  type PriceSyncResult,
  type PriceSyncSource,
  type PricingUpdatedEvent,
  type SystemActor,
} from '@aigov/contracts';
import { PriceBookRepository } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, Metrics, Readiness, currentRequestId, type Logger } from '@aigov/observability';
import { DataSource } from 'typeorm';
import { fetchCatalogue } from '../generator/fetch-catalogue';
import { buildSeed, formatSeed } from '../generator/seed';
import { PRICING_OPTIONS, type PricingOptions } from './pricing.options';
import { readEmbeddedSeed } from './embedded-seed';

/**
 * Applies price seeds to the price book: the embedded one at start and on request, or one built
 * from the upstream catalogue (MODELS_DEV_URL from configuration, never from a message).
 */
@Injectable()
export class PriceSyncService implements OnApplicationBootstrap {
  private seeded = false;
  private readonly prices: PriceBookRepository;
  private readonly syncs;
  private readonly rowsChanged;

  constructor(
    @Inject(DataSource) ds: DataSource,
    @Inject(PRICING_OPTIONS) private readonly options: PricingOptions,
    @Inject(NATS_CONNECTION_TOKEN) private readonly nats: NatsConnection | null,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    @Inject(Readiness) readiness: Readiness,
    @Inject(Metrics) metrics: Metrics,
  ) {
    this.prices = new PriceBookRepository(ds);
    this.syncs = metrics.counter('aigov_price_sync_total', 'Price syncs by source and outcome', [
      'source',
      'outcome',
    ]);
    this.rowsChanged = metrics.counter('aigov_price_rows_changed_total', 'Price rows inserted or updated', [
      'source',
      'change',
    ]);
    readiness.register('price_seed', () => (this.seeded ? null : 'embedded price seed not applied yet'));
  }

  /** Readiness stays false until the embedded seed is in the database; a failure stops the app. */
  async onApplicationBootstrap(): Promise<void> {
    const result = await this.sync(this.options.actor, 'embedded');
    this.seeded = true;
    this.logger.info({ ...result }, 'embedded price seed applied');
  }

  async sync(actor: SystemActor, source: PriceSyncSource): Promise<PriceSyncResult> {
    const started = process.hrtime.bigint();
    try {
      const seedJson =
        source === 'embedded' ? await readEmbeddedSeed(this.options.seedFile) : await this.upstreamSeed();
      // The summary audit entry is written by the same statement, only when rows changed.
      const { auditId, ...counts } = await this.prices.upsertDefaultPrices(seedJson, {
        actor: actor.name,
        source,
        requestId: currentRequestId() ?? null,
      });
      const result: PriceSyncResult = {
        source,
        ...counts,
        duration_ms: Number((process.hrtime.bigint() - started) / 1_000_000n),
      };
      this.syncs.inc({ source, outcome: 'ok' });
      this.rowsChanged.inc({ source, change: 'inserted' }, counts.inserted);
      this.rowsChanged.inc({ source, change: 'updated' }, counts.updated);
      this.logger.info({ actor: actor.name, ...result, audit_id: auditId }, 'price sync done');
      if (counts.inserted + counts.updated > 0)
        this.publishUpdated({ source, inserted: counts.inserted, updated: counts.updated });
      return result;
    } catch (err) {
      this.syncs.inc({ source, outcome: 'error' });
      throw err;
    }
  }

  private async upstreamSeed(): Promise<string> {
    let catalogue: unknown;
    try {
      catalogue = await fetchCatalogue(this.options.modelsDevUrl, {
        timeoutMs: this.options.upstreamTimeoutMs,
        maxBytes: this.options.upstreamMaxBytes,
      });
    } catch (err) {
      throw new DomainError(
        'upstream_error',
        `fetching the upstream catalogue failed: ${(err as Error).message}`,
      );
    }
    try {
      const rows = buildSeed(catalogue, this.options.providers, (msg) => this.logger.warn(msg));
      return formatSeed(rows);
    } catch (err) {
      throw new DomainError(
        'upstream_error',
        `the upstream catalogue was rejected: ${(err as Error).message}`,
      );
    }
  }

  private publishUpdated(event: PricingUpdatedEvent): void {
    if (!this.nats || this.nats.isClosed()) return;
    try {
      const envelope = cloudEvent(SUBJECTS.pricingUpdated, 'aigov/pricing-worker', event);
      this.nats.publish(SUBJECTS.pricingUpdated, JSON.stringify(envelope), {
        headers: correlationHeaders(currentRequestId()),
      });
    } catch (err) {
      this.logger.warn({ err }, 'could not publish pricing.updated');
    }
  }
}
