import { Module } from '@nestjs/common';
import { EnforcementController } from './enforcement.controller';
import { EnforcementHandlers } from './enforcement.handlers';
import { EnforcementService, SPEND_CLOCK, THRESHOLD_WAKE } from './enforcement.service';
import { systemClock } from './period';
import { SpendReportsService } from './spend-reports.service';
import { SpendController } from './spend.controller';
import { ReservationSweeperService } from './sweeper.service';
import { ThresholdOutboxService } from './threshold-outbox.service';
import { UsageConsumerService } from './usage-consumer.service';

/**
 * Spend accounting and enforcement: budget check/reserve/release and usage over HTTP and NATS,
 * spend reports and explain, the usage stream consumer, the reservation sweeper and the
 * threshold-event outbox.
 */
@Module({
  controllers: [EnforcementController, SpendController],
  providers: [
    EnforcementService,
    EnforcementHandlers,
    { provide: SPEND_CLOCK, useValue: systemClock },
    SpendReportsService,
    UsageConsumerService,
    ReservationSweeperService,
    ThresholdOutboxService,
    { provide: THRESHOLD_WAKE, useExisting: ThresholdOutboxService },
  ],
  exports: [EnforcementService],
})
export class SpendModule {}
