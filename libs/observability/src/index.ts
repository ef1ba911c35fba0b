// What every app shares for being operated: JSON logs (pino) with the request/correlation id on
// every line, Prometheus metrics, readiness checks, and the /healthz, /readyz, /metrics routes.
export * from './context';
export * from './health.controller';
export * from './http';
export * from './logger';
export * from './metrics';
export * from './observability.module';
export * from './readiness';
export * from './bootstrap';
