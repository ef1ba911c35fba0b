import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fastifyStatic from '@fastify/static';
import { connect } from '@nats-io/transport-node';
import Fastify from 'fastify';
import { startNatsServer, type TestNatsServer } from '@aigov/testing';
import { ROOT } from './helpers/processes';

// package.json `overrides` replace four packages that declare Node 22 (their parents pin them
// exactly) with versions that declare Node 20: cookie (Fastify's inject), content-disposition
// (@fastify/static), @nats-io/nuid (NATS inboxes and ids) and file-type (Nest's file validator).
// Each parent still works with the older version.

describe('dependencies overridden for Node 20 still work with their parents', () => {
  let nats: TestNatsServer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigov-overrides-'));

  beforeAll(async () => {
    nats = await startNatsServer();
  });

  afterAll(async () => {
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('cookie: Fastify inject sends request cookies and parses Set-Cookie', async () => {
    const app = Fastify();
    app.get('/', (req, reply) => {
      reply.header('set-cookie', 'session=abc; Path=/; HttpOnly');
      return { cookie: req.headers.cookie ?? null };
    });
    const res = await app.inject({ method: 'GET', url: '/', cookies: { a: '1', b: 'two' } });
    expect(res.json()).toEqual({ cookie: 'a=1; b=two' });
    expect(res.cookies).toEqual([{ name: 'session', value: 'abc', path: '/', httpOnly: true }]);
    await app.close();
  });

  it('content-disposition: @fastify/static serves files and downloads with a Content-Disposition', async () => {
    fs.writeFileSync(path.join(dir, 'prices.json'), '{"ok":true}');
    const app = Fastify();
    await app.register(fastifyStatic, { root: dir, prefix: '/files/' });
    app.get('/download', (_req, reply) => reply.download('prices.json'));
    const served = await app.inject({ method: 'GET', url: '/files/prices.json' });
    expect({ status: served.statusCode, body: served.body }).toEqual({ status: 200, body: '{"ok":true}' });
    const dl = await app.inject({ method: 'GET', url: '/download' });
    expect(dl.headers['content-disposition']).toMatch(/^attachment; filename="?prices\.json"?$/);
    await app.close();
  });

  it('@nats-io/nuid: a NATS request-reply (its inbox subjects come from nuid) round-trips', async () => {
    const nc = await connect({ servers: nats.url });
    try {
      nc.subscribe('aigov.overrides.echo', {
        callback: (_err, msg) => {
          msg.respond(`re: ${msg.string()}`);
        },
      });
      const reply = await nc.request('aigov.overrides.echo', 'ping', { timeout: 15_000 });
      expect(reply.string()).toBe('re: ping');
      expect(nc.info?.server_id).toBeTruthy();
    } finally {
      await nc.close();
    }
  });

  it('file-type: Nest’s FileTypeValidator recognizes a PNG by its magic number, not its claimed type', () => {
    // In plain Node: file-type is ESM only, which Jest's module registry cannot import() here.
    const script = `
      import { FileTypeValidator } from '@nestjs/common';
            const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');
      // Claimed as text: only the magic-number detection (file-type) can tell it is a PNG.
      const file = { mimetype: 'text/plain', buffer: png, size: png.length };
      const asPng = await new FileTypeValidator({ fileType: 'image/png' }).isValid(file);
      const asJpeg = await new FileTypeValidator({ fileType: 'image/jpeg' }).isValid(file);
      console.log(JSON.stringify({ asPng, asJpeg }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect({ status: r.status, out: r.stdout.trim(), err: r.stderr.slice(-500) }).toEqual({
      err: '',
      status: 0,
      out: JSON.stringify({ asPng: true, asJpeg: false }),
    });
  });
});
