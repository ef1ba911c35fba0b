import { Module } from '@nestjs/common';
import { EnforcementController } from './enforcement.controller';
import { EnforcementHandlers } from './enforcement.handlers';
import { EnforcementService, SPEND_CLOCK } from './enforcement.service';
import { systemClock } from './period';
import { SpendReportsService } from './spend-reports.service';
import { SpendController } from './spend.controller';

/**
 * Spend accounting and enforcement: budget check/reserve/release and usage over HTTP and NATS,
 * spend reports and explain, the usage stream consumer, the reservation sweeper and the
 * threshold-event outbox.
 */
@Module({
  controllers: [EnforcementController, EnforcementHandlers, SpendController],
  providers: [EnforcementService, { provide: SPEND_CLOCK, useValue: systemClock }, SpendReportsService],
  exports: [EnforcementService],
})
export class SpendModule {}
