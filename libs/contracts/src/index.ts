// The wire contract shared by the apps: NATS subjects and queue groups, the reply envelope,
// request/event payloads with their strict parsers, the plain-JSON NATS codecs, system actors.
export * from './actors';
export * from './envelope';
export * from './nats-codec';
export * from './pricing';
export * from './public.decorator';
export * from './subjects';
export * from './nats-client';
export * from './nats.module';
export * from './money';
export * from './cloudevents';
export * from './identity-events';
export * from './identity-events.validation';
export * from './identity-rules';
export * from './dto-validation';
export * from './dead-letters';
export * from './text';
export * from './text.validators';
export * from './budget-enforcement';
export * from './budget-enforcement.validation';
export * from './dead-letter-publisher';
export * from './jetstream-setup';
