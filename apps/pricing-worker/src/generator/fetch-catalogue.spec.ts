import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { main } from './cli';
import { CatalogueFetchError, fetchCatalogue } from './fetch-catalogue';

const FIXTURE = path.join(__dirname, '__fixtures__', 'api.small.json');
const fixtureText = readFileSync(FIXTURE, 'utf8');
const fixtureJson = JSON.parse(fixtureText) as unknown;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('fetchCatalogue over HTTP', () => {
  let server: Server;
  let base: string;
  const routes = new Map<string, Handler>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const handler = routes.get(req.url ?? '');
      if (handler) return handler(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    routes.set('/api.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(fixtureText);
    });
    routes.set('/chunked.json', (_req, res) => {
      // No content-length: the cap must hold while streaming.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(fixtureText.slice(0, 5000));
      setTimeout(() => res.end(fixtureText.slice(5000)), 20);
    });
    routes.set('/invalid.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"anthropic": ');
    });
    routes.set('/error.json', (_req, res) => {
      res.writeHead(500).end('boom');
    });
    routes.set('/hang.json', () => {
      // Never answers.
    });
    routes.set('/slow-body.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
    });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function fetchError(url: string, opts?: { timeoutMs?: number; maxBytes?: number }): Promise<Error> {
    try {
      await fetchCatalogue(url, opts);
    } catch (err) {
      expect(err).toBeInstanceOf(CatalogueFetchError);
      expect((err as Error).message).toContain(url);
      return err as Error;
    }
    throw new Error('expected a CatalogueFetchError');
  }

  it('fetches and parses the catalogue', async () => {
    await expect(fetchCatalogue(`${base}/api.json`)).resolves.toEqual(fixtureJson);
  });

  it('reads a chunked body', async () => {
    await expect(fetchCatalogue(`${base}/chunked.json`)).resolves.toEqual(fixtureJson);
  });

  it('fails on 404', async () => {
    expect((await fetchError(`${base}/missing.json`)).message).toContain('404');
  });

  it('fails on 500', async () => {
    expect((await fetchError(`${base}/error.json`)).message).toContain('500');
  });

  it('fails when content-length is above maxBytes', async () => {
    expect((await fetchError(`${base}/api.json`, { maxBytes: 1000 })).message).toContain('1000');
  });

  it('fails when a streamed body grows above maxBytes', async () => {
    expect((await fetchError(`${base}/chunked.json`, { maxBytes: 6000 })).message).toContain('6000');
  });

  it('fails on invalid JSON', async () => {
    expect((await fetchError(`${base}/invalid.json`)).message).toContain('not valid JSON');
  });

  it('times out when the server never answers', async () => {
    const started = Date.now();
    expect((await fetchError(`${base}/hang.json`, { timeoutMs: 200 })).message).toContain('200 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('times out when the body never finishes', async () => {
    expect((await fetchError(`${base}/slow-body.json`, { timeoutMs: 200 })).message).toContain('200 ms');
  });

  it('fails when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await fetchError(`http://127.0.0.1:${port}/api.json`);
  });

  it('lets the cli generate a seed from an HTTP URL', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'aigov-http-'));
    try {
      const out = path.join(dir, 'prices.json');
      const lines: string[] = [];
      const io = { stdout: (l: string) => lines.push(l), stderr: (l: string) => lines.push(l) };
      await expect(
        main(['--url', `${base}/api.json`, '--providers', 'anthropic', '--out', out], io),
      ).resolves.toBe(0);
      expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveLength(6);
      await expect(
        main(['--url', `${base}/error.json`, '--providers', 'anthropic', '--out', out], io),
      ).resolves.toBe(1);
      expect(lines.at(-1)).toContain('HTTP 500');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fetchCatalogue from disk', () => {
  it('reads a plain path and a file: URL', async () => {
    await expect(fetchCatalogue(FIXTURE)).resolves.toEqual(fixtureJson);
    await expect(fetchCatalogue(pathToFileURL(FIXTURE).href)).resolves.toEqual(fixtureJson);
  });

  it('fails on a missing file, naming it', async () => {
    await expect(fetchCatalogue('/nonexistent/api.json')).rejects.toThrow(CatalogueFetchError);
    await expect(fetchCatalogue('/nonexistent/api.json')).rejects.toThrow('/nonexistent/api.json');
  });

  it('applies maxBytes to files', async () => {
    await expect(fetchCatalogue(FIXTURE, { maxBytes: 100 })).rejects.toThrow('above the 100');
  });

  it('rejects unsupported URL schemes', async () => {
    await expect(fetchCatalogue('ftp://example.com/api.json')).rejects.toThrow(CatalogueFetchError);
  });
});
