/**
 * A log served by `evident serve`, used as a Log is: append, read, receipts,
 * checkpoints, and verify — which trusts nothing the server says but what
 * the log's key signs (verify-tiles.ts).
 *
 * Every append carries an Idempotency-Key (the caller's, or a random one),
 * so it is retried safely: a request that timed out, or whose answer was
 * lost, is sent again with the same key and the server answers with the
 * entries the first one appended instead of appending them twice. Retried:
 * network failures, 429, 502, 503 and 504, with exponential backoff (or the
 * server's Retry-After). Entries are validated here first by the same rules
 * the log applies, so a bad one fails before any request, with the same error.
 */
import { randomUUID } from 'node:crypto';
import { type Entry, type EntryInput, type Head, inputText, prepareBatch } from '../entry.js';
import { EvidentError, InvalidOptionError, isErrorCode } from '../errors.js';
import type { Appended } from '../lifecycle/sequencer.js';
import type { AuditLog } from '../log.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import type { TrustedCheckpoint, TrustPolicy } from '../note/trust.js';
import { parseReceipt } from '../receipt.js';
import type { ReadQuery, VerifyProgress } from '../store/store.js';
import { type TilesVerifyResult, verifyTiles } from './verify-tiles.js';

export interface RemoteLogOptions {
  /** Where `evident serve` listens, e.g. `https://audit.example.com` (a path prefix is kept). */
  url: string;
  /** A bearer token from `evident token add`; reads need none when the server makes them public. */
  token?: string | undefined;
  /** Attempts after the first for a request that failed in a way worth retrying (default 5). */
  retries?: number | undefined;
  /** How long one attempt may take, milliseconds (default 30,000; a receipt's wait is added). */
  timeoutMs?: number | undefined;
}

export interface RemoteAppendOptions {
  /** The key that makes the append happen once, however often it is sent (default: a random one per call). */
  idempotencyKey?: string | undefined;
}

export interface RemoteVerifyOptions {
  /** The log's verifier key, and the witnesses and quorum its checkpoint needs. */
  policy: TrustPolicy;
  /** A checkpoint verified before: the log must extend it. */
  checkpoint?: TrustedCheckpoint | undefined;
  /** With `checkpoint`: read only the entries added since it, trusting the tree up to it once it hashes to its root. */
  sinceCheckpoint?: boolean | undefined;
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
}

/** Statuses that say "try again": too many requests, and a proxy or the server not ready. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const PAGE = 1000;

export class RemoteLog implements AuditLog {
  /** The server's base URL, as given. */
  readonly location: string;
  readonly #base: URL;
  readonly #token: string | undefined;
  readonly #retries: number;
  readonly #timeoutMs: number;
  /** The largest seq this client appended: checkpoint() waits for one covering it. */
  #lastAppended = -1;

  constructor(options: RemoteLogOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new InvalidOptionError(`not a URL: ${JSON.stringify(options.url)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new InvalidOptionError(`${options.url}: an evident service is reached over http: or https:`);
    }
    if (base.search !== '' || base.hash !== '' || base.username !== '' || base.password !== '') {
      throw new InvalidOptionError(`${options.url}: give the service's base URL, without query, fragment or user`);
    }
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.location = options.url;
    this.#token = options.token;
    this.#retries = options.retries ?? 5;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isSafeInteger(this.#retries) || this.#retries < 0) {
      throw new InvalidOptionError(`retries: a whole number, not ${options.retries}`);
    }
  }

  /** Appends one entry; resolves with it as stored, once the server has it durable. */
  async append(input: EntryInput, options: RemoteAppendOptions = {}): Promise<Entry> {
    const [prepared] = prepareBatch([input]);
    const response = await this.#request('v1/entries', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': options.idempotencyKey ?? randomUUID() },
      body: inputText(prepared as NonNullable<typeof prepared>),
    });
    return this.#appended(await jsonOf<Entry>(response));
  }

  /** Notes `entry` as appended by this client; returns it. */
  #appended<T extends { seq: number } | Entry>(entry: T): T {
    this.#lastAppended = Math.max(this.#lastAppended, entry.seq);
    return entry;
  }

  /** Appends entries atomically, all or none; resolves with them as stored. */
  async appendBatch(inputs: readonly EntryInput[], options: RemoteAppendOptions = {}): Promise<Entry[]> {
    const response = await this.#postBatch(inputs, true, options);
    const entries = response === null ? [] : await ndjsonOf(response);
    if (entries.length > 0) this.#appended(entries.at(-1) as Entry);
    return entries;
  }

  /** appendBatch(), resolving with how many were appended and their first and last seq: the server sends no entries back. */
  async appendBulk(inputs: readonly EntryInput[], options: RemoteAppendOptions = {}): Promise<Appended> {
    const response = await this.#postBatch(inputs, false, options);
    if (response === null) return { appended: 0, first: null, last: null };
    const appended = await jsonOf<Appended>(response);
    if (appended.last !== null) this.#appended({ seq: appended.last });
    return appended;
  }

  /** POSTs a batch as NDJSON, checked by the log's own rules first; null when there is nothing to send. */
  async #postBatch(inputs: readonly EntryInput[], entries: boolean, options: RemoteAppendOptions) {
    const prepared = prepareBatch(inputs);
    if (prepared.length === 0) return null;
    return this.#request('v1/entries', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-ndjson',
        ...(entries ? { accept: 'application/x-ndjson' } : {}),
        'idempotency-key': options.idempotencyKey ?? randomUUID(),
      },
      body: prepared.map((p) => `${inputText(p)}\n`).join(''),
    });
  }

  /** Entries matching `query`, in order, a page at a time. */
  async *read(query: ReadQuery = {}): AsyncGenerator<Entry> {
    let after = query.fromSeq === undefined || query.fromSeq === 0 ? undefined : query.fromSeq - 1;
    let left = query.limit ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      const wanted = Math.min(PAGE, left, query.toSeq === undefined ? PAGE : query.toSeq - (after ?? -1));
      if (wanted <= 0) return;
      const params = new URLSearchParams({ limit: String(wanted) });
      if (after !== undefined) params.set('after', String(after));
      for (const name of ['actor', 'action', 'target', 'since', 'until'] as const) {
        const value = query[name];
        if (value !== undefined) params.set(name, value);
      }
      const response = await this.#request(`v1/entries?${params}`, {
        headers: { accept: 'application/x-ndjson' },
      });
      const entries = await ndjsonOf(response);
      for (const entry of entries) {
        if (query.toSeq !== undefined && entry.seq > query.toSeq) return;
        yield entry;
        left--;
        after = entry.seq;
      }
      if (entries.length < wanted) return;
    }
  }

  /** The log's head: its size, and its last entry's hash and time. */
  async head(): Promise<Head> {
    const health = await jsonOf<Head & { ok: boolean }>(await this.#request('v1/health'));
    return { log: health.log, size: health.size, hash: health.hash, ts: health.ts };
  }

  /**
   * The latest checkpoint the server serves (with witnesses' cosignatures),
   * unverified; null if the log does not sign. Once this client has appended,
   * one that covers what it appended: if the latest does not yet, the one the
   * receipt of its last entry is proven against (waited for, up to 60 s).
   */
  async checkpoint(): Promise<string | null> {
    const served = await this.#get('checkpoint');
    if (served === null) return null;
    const note = served.toString('utf8');
    if (this.#lastAppended < 0 || sizeOf(note) > this.#lastAppended) return note;
    return parseReceipt(await this.receipt(this.#lastAppended, { waitMs: 60_000 })).checkpoint;
  }

  /** A c2sp.org/tlog-proof receipt for entry `seq`; waits up to `waitMs` (at most 60 s) for a checkpoint covering it. */
  async receipt(seq: number, options: { waitMs?: number } = {}): Promise<string> {
    const wait = Math.ceil((options.waitMs ?? 0) / 1000);
    const response = await this.#request(`v1/entries/${seq}/receipt${wait > 0 ? `?wait=${wait}` : ''}`, {}, wait);
    return response.text();
  }

  /**
   * Verifies the whole log through the tlog-tiles API against the log's key
   * (see verify-tiles.ts); the result's `checkpoint` is the one to pass as
   * `checkpoint` next time.
   */
  verify(options: RemoteVerifyOptions): Promise<TilesVerifyResult> {
    if (options?.policy?.log === undefined) {
      return Promise.reject(
        new InvalidOptionError("verify({ policy: { log } }): a remote log is verified against the log's key"),
      );
    }
    return verifyTiles((path) => this.#get(path), {
      policy: options.policy,
      previous: options.checkpoint,
      sincePrevious: options.sinceCheckpoint,
      onProgress: options.onProgress,
    });
  }

  /** Nothing to release: connections are the fetch pool's. Here so that code can close a Log or a RemoteLog. */
  async close(): Promise<void> {}

  /** A GET of an API path: its body, or null for 404. */
  async #get(path: string): Promise<Buffer | null> {
    try {
      return Buffer.from(await (await this.#request(path)).arrayBuffer());
    } catch (error) {
      if (error instanceof EvidentError && error.code === 'EVIDENT_NOT_FOUND') return null;
      throw error;
    }
  }

  /**
   * Sends a request, retrying what may be retried; resolves with a 2xx
   * response, or throws the server's error with its own code.
   */
  async #request(path: string, init: RequestInit = {}, extraSeconds = 0): Promise<Response> {
    const url = new URL(path, this.#base);
    const headers = new Headers(init.headers);
    if (this.#token !== undefined) headers.set('authorization', `Bearer ${this.#token}`);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await fetch(url, {
          ...init,
          headers,
          signal: AbortSignal.timeout(this.#timeoutMs + extraSeconds * 1000),
        });
      } catch (error) {
        if (attempt < this.#retries) {
          await pause(attempt, null);
          continue;
        }
        throw new EvidentError('EVIDENT_UNAVAILABLE', `${url.origin} did not answer: ${causeOf(error)}`, {
          cause: error,
        });
      }
      if (response.ok) return response;
      if (RETRY_STATUSES.has(response.status) && attempt < this.#retries) {
        await response.body?.cancel();
        await pause(attempt, response.headers.get('retry-after'));
        continue;
      }
      const error = await errorOf(response, url);
      if (error.code === 'EVIDENT_UNAUTHORIZED' && this.#token === undefined) {
        throw new EvidentError(
          error.code,
          `${error.message} (no token was given: the token option, or with the CLI --token or $EVIDENT_TOKEN)`,
        );
      }
      throw error;
    }
  }
}

/** Waits before attempt `attempt + 1`: the server's Retry-After (seconds, up to 30), else 100 ms doubled, up to 5 s. */
function pause(attempt: number, retryAfter: string | null): Promise<void> {
  const asked = retryAfter !== null && /^\d{1,2}$/.test(retryAfter) ? Number(retryAfter) * 1000 : null;
  const ms = asked ?? Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 30_000)));
}

/** The error a failed response carries (`{"error":{"code","message"}}`), with the server's code when it is one of ours. */
async function errorOf(response: Response, url: URL): Promise<EvidentError> {
  const text = await response.text().catch(() => '');
  try {
    const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; line?: unknown } }).error;
    if (isErrorCode(error?.code) && typeof error.message === 'string') {
      // About one line of the batch sent: its index, and the message without the server's "line N: ".
      if (typeof error.line === 'number' && Number.isSafeInteger(error.line) && error.line >= 1) {
        const message = error.message.replace(`line ${error.line}: `, '');
        return new EvidentError(error.code, message, { index: error.line - 1 });
      }
      return new EvidentError(error.code, error.message);
    }
  } catch {
    // not one of evident's answers
  }
  // A proxy's page, or not an evident service at all: the status is all there is.
  return new EvidentError(
    'EVIDENT_UNAVAILABLE',
    `${url.origin} answered ${response.status} ${response.statusText} to ${url.pathname}, not as an evident service`,
  );
}

/** A successful answer's JSON body; a body that is not JSON is no evident service's (EVIDENT_UNAVAILABLE). */
async function jsonOf<T>(response: Response): Promise<T> {
  const text = await response.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw notJson(response);
  }
}

/** A successful answer's NDJSON body, one entry a line; refused as jsonOf() refuses. */
async function ndjsonOf(response: Response): Promise<Entry[]> {
  const lines = (await response.text()).split('\n').filter((line) => line !== '');
  try {
    return lines.map((line) => JSON.parse(line) as Entry);
  } catch {
    throw notJson(response);
  }
}

function notJson(response: Response): EvidentError {
  const url = new URL(response.url);
  return new EvidentError('EVIDENT_UNAVAILABLE', `${url.origin} answered ${url.pathname} with a body that is not JSON`);
}

/** Why a fetch() failed: its cause's code (ECONNREFUSED, …) or message, which fetch hides behind "fetch failed". */
export function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
}

/** The size a checkpoint note states, or -1 when its text is not a checkpoint's. */
function sizeOf(note: string): number {
  try {
    return checkpointOfNote(note).size;
  } catch {
    return -1;
  }
}
