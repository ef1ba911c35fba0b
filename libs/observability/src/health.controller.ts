import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import { Public } from '@aigov/contracts';
import type { FastifyReply } from 'fastify';
import { Metrics } from './metrics';
import { Readiness } from './readiness';

@Public()
@Controller()
export class HealthController {
  constructor(
    @Inject(Readiness) private readonly readiness: Readiness,
    @Inject(Metrics) private readonly metrics: Metrics,
  ) {}

  /** Liveness: the process answers. Dependencies are readiness's business. */
  @Get('healthz')
  @HttpCode(200)
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('readyz')
  async readyz(@Res({ passthrough: true }) reply: FastifyReply): Promise<unknown> {
    const report = await this.readiness.report();
    void reply.status(report.ready ? 200 : 503);
    return { status: report.ready ? 'ready' : 'not_ready', checks: report.checks };
  }

  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  async prometheus(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    const { contentType, body } = await this.metrics.render();
    void reply.header('Content-Type', contentType);
    return body;
  }
}
