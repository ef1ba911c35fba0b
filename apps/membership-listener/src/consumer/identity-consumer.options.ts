import type { IdentityConsumerSettings } from '@aigov/config';

export const IDENTITY_CONSUMER_OPTIONS = Symbol('IDENTITY_CONSUMER_OPTIONS');

export interface IdentityConsumerOptions extends IdentityConsumerSettings {
  /** How often the consumer's backlog is read for the lag gauge (and its existence checked). */
  lagPollMs: number;
  /** How long an idle pull waits for the next event before asking again. */
  idlePollMs: number;
}

export function identityConsumerOptions(settings: IdentityConsumerSettings): IdentityConsumerOptions {
  return { ...settings, lagPollMs: 5_000, idlePollMs: 5_000 };
}
