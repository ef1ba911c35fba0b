import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, NatsContext, Payload } from '@nestjs/microservices';
import {
  AI_GATEWAY_ACTOR,
  BUDGET_SUBJECTS,
  BudgetCheckRequest,
  BudgetReleaseRequest,
  BudgetReserveRequest,
  MalformedPayload,
  NATS_REQUEST_ID_HEADER,
  errorReply,
  okReply,
  validateStrict,
  type BudgetCheckReply,
  type BudgetReleaseReply,
  type BudgetReserveReply,
  type MsgHdrs,
  type ReplyEnvelope,
} from '@aigov/contracts';
import { fromDatabaseError } from '@aigov/db';
import type { FieldValidation } from '@aigov/errors';
import { APP_LOGGER, acceptOrGenerateRequestId, withCorrelation, type Logger } from '@aigov/observability';
import { AI_BUDGETS_DISABLED } from '../auth/decorators';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { EnforcementService } from './enforcement.service';

/** NATS replies carry no validation list: the message itself names every field and its rule. */
export function describeProblems(problems: readonly FieldValidation[]): string {
  return `Invalid request: ${problems.map((p) => `${p.field} ${p.detail.replace(/\.$/, '')}`).join('; ')}.`;
}

/**
 * `aigov.budget.check`, `aigov.budget.reserve`, `aigov.budget.release` (request-reply, queue
 * group budget-api; CONTRACT 4.3). The gateway is admitted by the NATS server's subject
 * permissions (docs/nats-security.md), so requests run as system:ai-gateway. Payloads are
 * validated like HTTP bodies (Nest's global pipe does not see them). Never throws: every
 * request gets an `{ok, data | error}` envelope.
 */
@Controller()
export class EnforcementHandlers {
  constructor(
    @Inject(EnforcementService) private readonly enforcement: EnforcementService,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern<string>(BUDGET_SUBJECTS.check)
  check(@Payload() payload: unknown, @Ctx() ctx: NatsContext): Promise<ReplyEnvelope<BudgetCheckReply>> {
    return this.handle('check', ctx, payload, BudgetCheckRequest, (req) =>
      this.enforcement.check(AI_GATEWAY_ACTOR, req),
    );
  }

  @MessagePattern<string>(BUDGET_SUBJECTS.reserve)
  reserve(@Payload() payload: unknown, @Ctx() ctx: NatsContext): Promise<ReplyEnvelope<BudgetReserveReply>> {
    return this.handle('reserve', ctx, payload, BudgetReserveRequest, (req) =>
      this.enforcement.reserve(AI_GATEWAY_ACTOR, req),
    );
  }

  @MessagePattern<string>(BUDGET_SUBJECTS.release)
  release(@Payload() payload: unknown, @Ctx() ctx: NatsContext): Promise<ReplyEnvelope<BudgetReleaseReply>> {
    return this.handle('release', ctx, payload, BudgetReleaseRequest, (req) =>
      this.enforcement.release(AI_GATEWAY_ACTOR, req.reservation_id),
    );
  }

  private handle<T extends object, R>(
    what: string,
    ctx: NatsContext,
    payload: unknown,
    dto: new () => T,
    run: (req: T) => Promise<R>,
  ): Promise<ReplyEnvelope<R>> {
    const headers = ctx.getHeaders() as MsgHdrs | undefined;
    const requestId = acceptOrGenerateRequestId(headers?.get(NATS_REQUEST_ID_HEADER));
    return withCorrelation(requestId, async () => {
      if (!this.options.aiBudgetsEnabled) return errorReply('forbidden', AI_BUDGETS_DISABLED);
      if (payload instanceof MalformedPayload) return errorReply('invalid_argument', payload.reason);
      const parsed = validateStrict(dto, payload, '');
      if (!parsed.ok) return errorReply('invalid_argument', describeProblems(parsed.problems));
      try {
        return okReply(await run(parsed.value));
      } catch (err) {
        const known = fromDatabaseError(err);
        if (known?.code === 'invalid_argument' && known.validations.length > 0) {
          return errorReply(known.code, describeProblems(known.validations));
        }
        if (known) {
          if (known.code === 'unavailable')
            this.logger.warn(
              { err: { message: (err as Error).message } },
              `budget ${what}: database unavailable`,
            );
          return errorReply(known.code, known.message);
        }
        this.logger.error({ err }, `budget ${what} failed unexpectedly`);
        return errorReply('internal', `budget ${what} failed (request ${requestId})`);
      }
    });
  }
}
