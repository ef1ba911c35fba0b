// The one reader of process.env: validates every variable at start, reports every bad one in a
// single ConfigError, and hands each app a typed, immutable AppConfig.
export * from './config';
export * from './nats';
