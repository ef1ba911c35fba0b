import { randomUUID } from 'node:crypto';

/** CloudEvents 1.0, structured JSON mode (docs/nats.md): `type` equals the subject; `id` is unique. */
export interface CloudEvent<T> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  datacontenttype: 'application/json';
  data: T;
}

export function cloudEvent<T>(
  subject: string,
  source: string,
  data: T,
  now: Date = new Date(),
): CloudEvent<T> {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type: subject,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}
