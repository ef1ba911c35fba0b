import { parseUsageMessage } from './usage-consumer.parse';

const USER = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const RECORD = {
  request_id: 'req-1',
  user_id: USER,
  provider: 'anthropic',
  model: 'claude-x',
  input_tokens: 10,
  output_tokens: 5,
};
const bytes = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('parseUsageMessage', () => {
  it('accepts the plain record and a CloudEvent whose data is the record', () => {
    expect(parseUsageMessage(bytes(RECORD))).toMatchObject({ ok: true, record: RECORD });
    const event = {
      specversion: '1.0',
      id: 'e1',
      source: 'gw',
      type: 'aigov.usage.recorded',
      time: '2026-12-02T10:00:00Z',
      data: { ...RECORD, occurred_at: '2026-12-02T10:00:00Z' },
    };
    expect(parseUsageMessage(bytes(event))).toMatchObject({ ok: true, record: { request_id: 'req-1' } });
  });

  it('refuses what is not JSON, naming why', () => {
    expect(parseUsageMessage(bytes('not json'))).toMatchObject({
      ok: false,
      cause: 'invalid_json',
      errors: [expect.stringMatching(/^payload: must be JSON/)],
      json: undefined,
    });
    expect(parseUsageMessage(Buffer.from([0xff, 0xfe]))).toMatchObject({ ok: false, cause: 'invalid_json' });
  });

  it('refuses invalid records field by field, also inside a CloudEvent', () => {
    const bad = parseUsageMessage(bytes({ ...RECORD, input_tokens: -1, user_id: 'x', extra: true }));
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.cause).toBe('invalid_data');
    expect(bad.errors.join('\n')).toMatch(/extra/);
    const wrapped = parseUsageMessage(
      bytes({ specversion: '1.0', type: 'aigov.usage.recorded', data: { ...RECORD, output_tokens: 1.5 } }),
    );
    expect(wrapped).toMatchObject({
      ok: false,
      cause: 'invalid_data',
      errors: [expect.stringMatching(/^data\.output_tokens: /)],
    });
    expect(
      parseUsageMessage(bytes({ specversion: '1.0', type: 'identity.user.deleted', data: RECORD })),
    ).toMatchObject({
      ok: false,
      errors: ['type: must be "aigov.usage.recorded" when present'],
    });
    expect(parseUsageMessage(bytes([RECORD]))).toMatchObject({ ok: false, cause: 'invalid_data' });
  });
});
