import { Module } from '@nestjs/common';
import { EnforcementService, SPEND_CLOCK } from './enforcement.service';
import { systemClock } from './period';

/**
 * Spend accounting and enforcement: budget check/reserve/release and usage over HTTP and NATS,
 * spend reports and explain, the usage stream consumer, the reservation sweeper and the
 * threshold-event outbox.
 */
@Module({
  controllers: [],
  providers: [EnforcementService, { provide: SPEND_CLOCK, useValue: systemClock }],
  exports: [EnforcementService],
})
export class SpendModule {}
