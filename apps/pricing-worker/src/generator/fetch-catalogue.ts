import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { errorCause, errorMessage, errorName } from './error-info';

export const DEFAULT_FETCH_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_CATALOGUE_BYTES = 32 * 1024 * 1024;

export interface FetchCatalogueOptions {
  timeoutMs?: number;
  maxBytes?: number;
}

export class CatalogueFetchError extends Error {
  constructor(
    readonly url: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot load the models.dev catalogue from ${url}: ${detail}`, options);
    this.name = 'CatalogueFetchError';
  }
}

function reason(err: unknown): string {
  const message = errorMessage(err);
  // undici reports network failures as "fetch failed" and hides the useful part in cause.
  const cause = errorCause(err);
  if (cause === undefined || cause === null) return message;
  const causeMessage = errorMessage(cause);
  return causeMessage !== message ? `${message} (${causeMessage})` : message;
}

function isTimeout(err: unknown): boolean {
  const name = errorName(err);
  return name === 'TimeoutError' || name === 'AbortError';
}

function parseJson(text: string, url: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CatalogueFetchError(url, `the body is not valid JSON: ${reason(err)}`, { cause: err });
  }
}

async function readFileCapped(url: string, maxBytes: number): Promise<unknown> {
  let file: string;
  try {
    file = url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch (err) {
    throw new CatalogueFetchError(url, `not a valid file URL: ${reason(err)}`, { cause: err });
  }
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > maxBytes)
        throw new CatalogueFetchError(url, `the file is ${size} bytes, above the ${maxBytes} limit`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof CatalogueFetchError) throw err;
    throw new CatalogueFetchError(url, reason(err), { cause: err });
  }
  return parseJson(text, url);
}

async function readBodyCapped(response: Response, url: string, maxBytes: number): Promise<string> {
  const body = response.body;
  if (body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    // Node's fetch types leave the chunk as any; undici always yields bytes.
    const { done, value } = (await reader.read()) as { done: boolean; value?: Uint8Array };
    if (done) break;
    if (value === undefined) continue;
    total += value.byteLength;
    if (total > maxBytes) {
      // Stop the download instead of buffering an unbounded body.
      await reader.cancel().catch(() => undefined);
      throw new CatalogueFetchError(url, `the body is larger than the ${maxBytes} byte limit`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

async function fetchHttp(url: string, timeoutMs: number, maxBytes: number): Promise<unknown> {
  // One signal covers connecting, headers and the whole body.
  const signal = AbortSignal.timeout(timeoutMs);
  let text: string;
  try {
    const response = await fetch(url, {
      signal,
      headers: { accept: 'application/json' },
      redirect: 'follow',
    });
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new CatalogueFetchError(url, `HTTP ${response.status} ${response.statusText}`.trim());
    }
    const declared = response.headers.get('content-length');
    if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
      await response.body?.cancel().catch(() => undefined);
      throw new CatalogueFetchError(url, `content-length ${declared} is above the ${maxBytes} byte limit`);
    }
    text = await readBodyCapped(response, url, maxBytes);
  } catch (err) {
    if (err instanceof CatalogueFetchError) throw err;
    if (isTimeout(err) || signal.aborted) {
      throw new CatalogueFetchError(url, `no complete answer within ${timeoutMs} ms`, { cause: err });
    }
    throw new CatalogueFetchError(url, reason(err), { cause: err });
  }
  return parseJson(text, url);
}

/**
 * Loads the models.dev catalogue as parsed JSON. http(s) URLs are fetched with a timeout and
 * a size cap; `file:` URLs and plain paths are read from disk so the committed fixture works
 * offline. Every failure is a CatalogueFetchError naming the URL.
 */
export async function fetchCatalogue(url: string, opts: FetchCatalogueOptions = {}): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_CATALOGUE_BYTES;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new CatalogueFetchError(url, `timeoutMs must be a positive integer, got ${timeoutMs}`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new CatalogueFetchError(url, `maxBytes must be a positive integer, got ${maxBytes}`);
  }
  if (/^https?:\/\//i.test(url)) return fetchHttp(url, timeoutMs, maxBytes);
  // Anything else with a scheme (ftp:, data:, ...) is a mistake, not a relative path.
  if (/^[a-z][a-z0-9+.-]+:/i.test(url) && !url.startsWith('file:')) {
    throw new CatalogueFetchError(url, 'only http:, https:, file: URLs and filesystem paths are supported');
  }
  return readFileCapped(url, maxBytes);
}
