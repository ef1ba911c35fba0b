import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { performance } from 'node:perf_hooks';
import {
  AI_GATEWAY_ACTOR,
  BUDGET_SUBJECTS,
  BudgetCheckRequest,
  BudgetReleaseRequest,
  BudgetReserveRequest,
  MalformedPayload,
  NATS_CONNECTION_TOKEN,
  NATS_REQUEST_ID_HEADER,
  QUEUE_GROUPS,
  decodePlainJson,
  errorReply,
  okReply,
  validateBudgetRequest,
  type NatsConnection,
  type ReplyEnvelope,
} from '@aigov/contracts';
import { fromDatabaseError } from '@aigov/db';
import type { FieldValidation } from '@aigov/errors';
import {
  APP_LOGGER,
  Metrics,
  acceptOrGenerateRequestId,
  withCorrelation,
  type Logger,
} from '@aigov/observability';
import type { Histogram } from 'prom-client';
import { AI_BUDGETS_DISABLED } from '../auth/decorators';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from '../options';
import { EnforcementService } from './enforcement.service';

/** NATS replies carry no validation list: the message itself names every field and its rule. */
export function describeProblems(problems: readonly FieldValidation[]): string {
  return `Invalid request: ${problems.map((p) => `${p.field} ${p.detail.replace(/\.$/, '')}`).join('; ')}.`;
}

/** Service time buckets, in seconds: fine below a millisecond, where the goal is read. */
export const SERVICE_TIME_BUCKETS = [
  0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025,
  0.05, 0.1, 0.25, 0.5, 1,
];

/** What escaped a handler (it should not happen): the same body Nest's codec gave such errors. */
const INTERNAL_ERROR = JSON.stringify(errorReply('internal', 'internal error'));

/** One subject: its DTO, the service call, and the work done once for it (metric child, names). */
interface Route {
  what: 'check' | 'reserve' | 'release';
  subject: string;
  run: (payload: unknown, requestId: string) => Promise<ReplyEnvelope<unknown>>;
  duration: { observe(seconds: number): void };
}

/**
 * `aigov.budget.check`, `aigov.budget.reserve`, `aigov.budget.release` (request-reply, queue
 * group budget-api; CONTRACT 4.3), subscribed directly on the app's NATS connection rather than
 * through Nest's microservice dispatch (docs/decisions/nats-hot-path.md: that dispatch was a
 * large share of the CPU of a check). The gateway is admitted by the NATS server's subject
 * permissions (docs/nats-security.md), so requests run as system:ai-gateway. Payloads are
 * validated against the class-validator DTOs (a fast path for the plainly well-formed ones,
 * the DTO's own messages otherwise). Never throws: every request gets an `{ok, data | error}`
 * envelope. Replies computed in the same turn of the event loop leave in one write.
 *
 * Shutdown: before the app's other shutdown hooks (which close the database and drain the
 * connection), the subscriptions are drained and every request received is answered.
 */
@Injectable()
export class EnforcementHandlers implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly routes: Route[];
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Replies waiting for the end of this turn of the event loop, to be written together. */
  private outbox: { msg: Msg; body: string; route: Route; started: number }[] = [];
  private flushScheduled = false;

  constructor(
    @Inject(EnforcementService) private readonly enforcement: EnforcementService,
    @Inject(BUDGET_API_OPTIONS) private readonly options: BudgetApiOptions,
    @Inject(APP_LOGGER) private readonly logger: Logger,
    @Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null,
    @Inject(Metrics) metrics: Metrics,
  ) {
    const histogram: Histogram = metrics.histogram(
      'aigov_budget_request_duration_seconds',
      'Service time of budget enforcement requests, from receipt to the reply handed to the connection',
      ['transport', 'subject'],
      SERVICE_TIME_BUCKETS,
    );
    const route = <T extends object>(
      what: Route['what'],
      subject: string,
      dto: new () => T,
      call: (req: T) => Promise<unknown>,
    ): Route => ({
      what,
      subject,
      run: (payload, requestId) => this.handle(what, payload, requestId, dto, call),
      duration: histogram.labels({ transport: 'nats', subject }),
    });
    this.routes = [
      route('check', BUDGET_SUBJECTS.check, BudgetCheckRequest, (req) =>
        this.enforcement.check(AI_GATEWAY_ACTOR, req),
      ),
      route('reserve', BUDGET_SUBJECTS.reserve, BudgetReserveRequest, (req) =>
        this.enforcement.reserve(AI_GATEWAY_ACTOR, req),
      ),
      route('release', BUDGET_SUBJECTS.release, BudgetReleaseRequest, (req) =>
        this.enforcement.release(AI_GATEWAY_ACTOR, req.reservation_id),
      ),
    ];
  }

  onApplicationBootstrap(): void {
    const nc = this.nc;
    if (!nc) return;
    for (const route of this.routes) {
      this.subscriptions.push(
        nc.subscribe(route.subject, {
          queue: QUEUE_GROUPS.budgetApi,
          callback: (err, msg) => {
            if (err) this.logger.error({ err }, `budget ${route.what}: subscription failed`);
            else this.receive(route, msg);
          },
        }),
      );
    }
  }

  /**
   * No new requests (the queue group's other members get them), then every request received
   * is answered before the database and the connection close.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.drain().catch(() => undefined)));
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.flush();
    if (this.nc && !this.nc.isClosed()) await this.nc.flush().catch(() => undefined);
  }

  private receive(route: Route, msg: Msg): void {
    const started = performance.now();
    // A message without a reply subject is not a request: nobody would hear the answer.
    if (!msg.reply) return;
    const requestId = acceptOrGenerateRequestId(msg.headers?.get(NATS_REQUEST_ID_HEADER));
    const done = route
      .run(decodePlainJson(msg.data), requestId)
      .then(
        (reply) => JSON.stringify(reply),
        (err: unknown) => {
          this.logger.error({ err, request_id: requestId }, `budget ${route.what} failed unexpectedly`);
          return INTERNAL_ERROR;
        },
      )
      .then((body) => this.send({ msg, body, route, started }));
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  private send(reply: { msg: Msg; body: string; route: Route; started: number }): void {
    this.outbox.push(reply);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** The replies of this turn, handed to the connection together (it writes them in one go). */
  private flush(): void {
    this.flushScheduled = false;
    const replies = this.outbox;
    this.outbox = [];
    for (const { msg, body, route, started } of replies) {
      try {
        msg.respond(body);
      } catch (err) {
        this.logger.warn(
          { err: { message: (err as Error).message } },
          `budget ${route.what}: reply not sent`,
        );
      }
      route.duration.observe((performance.now() - started) / 1000);
    }
  }

  private handle<T extends object, R>(
    what: string,
    payload: unknown,
    requestId: string,
    dto: new () => T,
    run: (req: T) => Promise<R>,
  ): Promise<ReplyEnvelope<R>> {
    return withCorrelation(requestId, async () => {
      if (!this.options.aiBudgetsEnabled) return errorReply('forbidden', AI_BUDGETS_DISABLED);
      if (payload instanceof MalformedPayload) return errorReply('invalid_argument', payload.reason);
      const parsed = validateBudgetRequest(dto, payload);
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
