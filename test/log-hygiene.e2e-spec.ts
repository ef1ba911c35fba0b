import { ApiHarness, World, type Person } from './helpers/api';

// What the budget-api logs, read line by line: every 500 with its request id and stack, and no
// line carrying query parameters, token secrets, key hashes or emails.

describe('log lines', () => {
  const lines: string[] = [];
  let api: ApiHarness;
  let owner: Person;

  beforeAll(async () => {
    api = await ApiHarness.start({}, undefined, (line) => lines.push(line));
    const world = new World(api);
    const boot = await world.bootstrap();
    owner = boot.owner;
  });

  afterAll(async () => {
    await api.close();
  });

  it('log the 500 with its request id and stack, and never values, secrets, hashes or emails', async () => {
    const email = 'hidden.person@example.org';
    const created = await api.call<{ id: string }>('POST', '/api/v2/users', owner, {
      username: 'hidden',
      email,
    });
    expect(created.status).toBe(201);
    // A unique violation carries the email in pg's `detail`: mapped to 409, and not logged.
    const duplicate = await api.call('POST', '/api/v2/users', owner, { username: 'hidden2', email });
    expect(duplicate.status).toBe(409);
    const key = await api.call<{ key: string }>('POST', `/api/v2/users/${created.body.id}/keys`, owner, {
      name: 'k',
    });
    expect(key.status).toBe(201);
    expect((await api.call('GET', '/api/v2/users/me', { token: key.body.key })).status).toBe(200);
    expect((await api.call('GET', `/api/v2/users?q=${encodeURIComponent(email)}`, owner)).status).toBe(200);

    // An unexpected database error whose statement's parameters hold an email.
    await api.sql(`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN RAISE EXCEPTION 'unexpected failure' USING ERRCODE = 'XX000'; END $$`);
    await api.sql('CREATE TRIGGER boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION boom()');
    const failedEmail = 'failing.person@example.net';
    let failed;
    try {
      failed = await api.call('POST', '/api/v2/users', owner, { username: 'failing', email: failedEmail });
    } finally {
      await api.sql('DROP TRIGGER boom ON users');
    }
    expect(failed.status).toBe(500);
    const requestId = failed.headers.get('x-request-id');
    expect(failed.body).toEqual({ message: 'Internal error.', validations: [], request_id: requestId });

    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const errorLine = parsed.find((l) => l.level === 'error' && l.request_id === requestId);
    expect(errorLine).toBeDefined();
    expect((errorLine!.err as { stack?: string }).stack).toMatch(/unexpected failure/);

    const [hash] = await api.sql<{ hex: string }>(
      `SELECT encode(secret_hash, 'hex') AS hex FROM api_keys WHERE user_id = $1`,
      [created.body.id],
    );
    const secrets = [
      email,
      'owner@example.com',
      key.body.key,
      key.body.key.slice(key.body.key.indexOf('-') + 1),
      owner.token.slice(owner.token.indexOf('-') + 1),
      hash.hex,
      failedEmail,
    ];
    const everything = lines.join('\n');
    for (const secret of secrets) expect(everything).not.toContain(secret);
    expect(everything).not.toContain('"parameters"');
    expect(lines.length).toBeGreaterThan(5);
  });
});
