import {
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { NatsSettings } from '@aigov/config';
import { connectNats, natsReadiness, trackNatsStatus, type NatsConnection } from './nats-client';

export const NATS_CONNECTION_TOKEN = Symbol('NATS_CONNECTION');

export interface NatsModuleOptions {
  /** Servers, credentials and TLS: AppConfig.nats. */
  connection: NatsSettings;
  name: string;
  /** False: no connection; the token resolves to null and NATS features are off. */
  enabled: boolean;
  /** Where to report the connection's readiness (the app's Readiness). */
  readiness?: { register(name: string, check: () => string | null): void };
}

@Injectable()
class NatsLifecycle implements OnApplicationShutdown {
  constructor(@Inject(NATS_CONNECTION_TOKEN) private readonly nc: NatsConnection | null) {}

  /** Drain: finish what is in flight, flush what was published, then close. */
  async onApplicationShutdown(): Promise<void> {
    if (this.nc && !this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
  }
}

/** The app's own NATS connection for publishing and requests (handlers use Nest's transport). */
@Global()
@Module({})
export class NatsModule {
  static forRoot(opts: NatsModuleOptions): DynamicModule {
    return {
      module: NatsModule,
      providers: [
        {
          provide: NATS_CONNECTION_TOKEN,
          useFactory: async () => {
            const nc = opts.enabled ? await connectNats(opts.connection, opts.name) : null;
            if (nc) trackNatsStatus(nc);
            opts.readiness?.register('nats', () => natsReadiness(nc));
            return nc;
          },
        },
        NatsLifecycle,
      ],
      exports: [NATS_CONNECTION_TOKEN],
    };
  }
}
