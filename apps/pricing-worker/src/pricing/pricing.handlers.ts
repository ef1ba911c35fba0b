import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, NatsContext, Payload } from '@nestjs/microservices';
import {
  MalformedPayload,
  NATS_REQUEST_ID_HEADER,
  SUBJECTS,
  errorReply,
  okReply,
  parsePriceSyncRequest,
  type MsgHdrs,
  type PriceSyncResult,
  type ReplyEnvelope,
} from '@aigov/contracts';
import { isDatabaseUnavailableError } from '@aigov/db';
import { isDomainError } from '@aigov/errors';
import { APP_LOGGER, acceptOrGenerateRequestId, withCorrelation, type Logger } from '@aigov/observability';
import { PRICING_OPTIONS, type PricingOptions } from './pricing.options';
import { PriceSyncService } from './price-sync.service';

/** `pricing.sync` (request-reply, queue group pricing-worker). Never throws: always an envelope. */
@Controller()
export class PricingHandlers {
  constructor(
    @Inject(PriceSyncService) private readonly sync: PriceSyncService,
    @Inject(PRICING_OPTIONS) private readonly options: PricingOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern<string>(SUBJECTS.pricingSync)
  async pricingSync(
    @Payload() payload: unknown,
    @Ctx() ctx: NatsContext,
  ): Promise<ReplyEnvelope<PriceSyncResult>> {
    const headers = ctx.getHeaders() as MsgHdrs | undefined;
    const requestId = acceptOrGenerateRequestId(headers?.get(NATS_REQUEST_ID_HEADER));
    return withCorrelation(requestId, async () => {
      if (payload instanceof MalformedPayload) return errorReply('invalid_argument', payload.reason);
      const parsed = parsePriceSyncRequest(payload);
      if (!parsed.ok) return errorReply('invalid_argument', parsed.message);
      try {
        return okReply(await this.sync.sync(this.options.actor, parsed.value.source));
      } catch (err) {
        if (isDomainError(err)) {
          this.logger.warn({ code: err.code, err }, 'price sync failed');
          return errorReply(err.code, err.message);
        }
        // Down, restarting or unreachable: a caller retries later, so not `internal`.
        if (isDatabaseUnavailableError(err)) {
          this.logger.warn({ err: { message: (err as Error).message } }, 'price sync: database unavailable');
          return errorReply('unavailable', 'The price book database is unavailable; try again later.');
        }
        this.logger.error({ err }, 'price sync failed unexpectedly');
        return errorReply('internal', `price sync failed (request ${requestId})`);
      }
    });
  }
}
