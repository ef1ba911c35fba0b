import { Inject, Injectable } from '@nestjs/common';
import {
  NATS_CONNECTION_TOKEN,
  SUBJECTS,
  correlationHeaders,
  isNatsConnected,
  type NatsConnection,
  type PriceSyncRequest,
} from '@aigov/contracts';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';

interface RequestErrorLike {
  name?: string;
  message?: string;
  isNoResponders?: () => boolean;
}

/**
 * The API's side of `pricing.sync` (docs/nats.md): a plain-JSON NATS request to the pricing
 * worker's queue group, carrying the request id in the X-Request-Id header. The worker's
 * `{ok, data}` becomes the result; `{ok: false, error}` a 502; no connection, no responder or no
 * answer in time a 503.
 */
@Injectable()
export class PriceSyncClient {
  constructor(
    @Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {}

  async sync(requestId: string, request: PriceSyncRequest): Promise<unknown> {
    const nc = this.nc;
    if (!this.options.natsEnabled || !nc) {
      throw new DomainError('unavailable', 'Price sync is unavailable: NATS is disabled on this deployment.');
    }
    if (!isNatsConnected(nc)) {
      throw new DomainError('unavailable', 'Price sync is unavailable: NATS is not connected.');
    }
    const timeout = this.options.priceSyncTimeoutMs;
    let text: string;
    try {
      const reply = await nc.request(SUBJECTS.pricingSync, JSON.stringify(request), {
        timeout,
        headers: correlationHeaders(requestId),
      });
      text = reply.string();
    } catch (err) {
      const e = (err ?? {}) as RequestErrorLike;
      this.logger.warn({ err, request_id: requestId }, 'pricing.sync request failed');
      if (e.name === 'TimeoutError') {
        throw new DomainError('unavailable', `The pricing worker did not answer within ${timeout} ms.`);
      }
      if (typeof e.isNoResponders === 'function' && e.isNoResponders()) {
        throw new DomainError('unavailable', 'No pricing worker is running.');
      }
      throw new DomainError('unavailable', 'The pricing worker could not be reached.');
    }
    return this.unwrap(text, requestId);
  }

  private unwrap(text: string, requestId: string): unknown {
    let reply: unknown;
    try {
      reply = JSON.parse(text) as unknown;
    } catch {
      reply = undefined;
    }
    const envelope = (reply ?? {}) as {
      ok?: unknown;
      data?: unknown;
      error?: { code?: unknown; message?: unknown };
    };
    if (envelope.ok === true && typeof envelope.data === 'object' && envelope.data !== null) {
      return envelope.data;
    }
    if (envelope.ok === false && typeof envelope.error?.message === 'string') {
      const code = typeof envelope.error.code === 'string' ? envelope.error.code : 'unknown';
      throw new DomainError(
        'upstream_error',
        `Price sync failed: ${envelope.error.message}`,
        [],
        `pricing worker error code: ${code}`,
      );
    }
    this.logger.error(
      { reply: text.slice(0, 1000), request_id: requestId },
      'pricing.sync reply is no envelope',
    );
    throw new DomainError(
      'upstream_error',
      'Price sync failed: the pricing worker sent an unreadable reply.',
    );
  }
}
