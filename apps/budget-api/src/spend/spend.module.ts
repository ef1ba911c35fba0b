import { Module } from '@nestjs/common';
import { EnforcementService, SPEND_CLOCK, THRESHOLD_WAKE } from './enforcement.service';
import { systemClock } from './period';
import { ReservationSweeperService } from './sweeper.service';
import { ThresholdOutboxService } from './threshold-outbox.service';
import { UsageConsumerService } from './usage-consumer.service';

/**
 * Spend accounting and enforcement: budget check/reserve/release and usage over HTTP and NATS,
 * spend reports and explain, the usage stream consumer, the reservation sweeper and the
 * threshold-event outbox.
 */
@Module({
  controllers: [],
  providers: [
    EnforcementService,
    { provide: SPEND_CLOCK, useValue: systemClock },
    UsageConsumerService,
    ReservationSweeperService,
    ThresholdOutboxService,
    { provide: THRESHOLD_WAKE, useExisting: ThresholdOutboxService },
  ],
  exports: [EnforcementService],
})
export class SpendModule {}
