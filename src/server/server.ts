/**
 * `evident serve`: a thin HTTP layer over a Log, on fastify.
 *
 *   POST /v1/entries                 append one entry (application/json) or an
 *                                    atomic batch (application/x-ndjson)
 *   GET  /v1/entries                 entries by actor, action, target, time,
 *                                    after a seq (cursor), limit; JSON or NDJSON
 *   GET  /v1/entries/<seq>           one entry
 *   GET  /v1/entries/<seq>/receipt   its c2sp.org/tlog-proof receipt (?wait=S)
 *   GET  /v1/tail                    server-sent events of new entries, resumable
 *   GET  /v1/health                  {"ok":true,"size":N}
 *   GET  /metrics                    Prometheus metrics (metrics.ts)
 *   GET  /checkpoint, /tile/…        the C2SP tlog-tiles read API (api/layout.ts)
 *
 * An append with an Idempotency-Key is done once (replays.ts); every entry
 * appended records the token's name, and the key, in its `via` member.
 * Bodies are parsed by evident's own strict I-JSON parser, never by
 * JSON.parse: an entry is recorded exactly as sent or refused. Errors are
 * {"error":{"code","message"}} with the code from errors.ts.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { entryBundle, parseTilePath } from '../api/layout.js';
import { parseIJson } from '../encoding/ijson.js';
import { logTime } from '../encoding/time.js';
import { type Entry, type EntryInput, entryIndexOf } from '../entry.js';
import { type ErrorCode, EvidentError, InvalidEntryError } from '../errors.js';
import type { Log } from '../log.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import type { ReadQuery } from '../store/store.js';
import { Metrics } from './metrics.js';
import { Replays } from './replays.js';
import { findToken, mayActAs, readTokens, type Scope, type Token } from './tokens.js';
import type { WitnessPusher } from './witnesses.js';

export interface ServerOptions {
  /** The log it serves, opened for writing. */
  log: Log;
  /** The token file (`evident token add`); null: no token is accepted (reads may still be public). */
  tokens: string | null;
  /** Reads need no token. */
  publicReads?: boolean;
  /** Largest request body, bytes (default 8 MiB). */
  bodyLimit?: number;
  /** Entries accepted but not yet appended, at most; past it appends get 503 (default 65,536). */
  maxPending?: number;
  /** fastify's logger option (pino); default off. */
  logger?: boolean | object;
  /** The idempotency keys already used (Replays.load() rebuilds them from the log); default: none known. */
  replays?: Replays;
  /** How long a request may take to arrive, headers and body (default 30 s). */
  requestTimeoutMs?: number;
  /** Serve HTTPS with this key and certificate (PEM). */
  https?: { key: Buffer; cert: Buffer } | undefined;
  /** Pushes the log's checkpoints to its witnesses; their state goes into /metrics. */
  witnesses?: WitnessPusher | undefined;
}

/** The HTTP status for each code that a request can cause; 500 for the rest (the server's own failures). */
const STATUS: Partial<Record<ErrorCode, number>> = {
  EVIDENT_INVALID_ENTRY: 400,
  EVIDENT_INVALID_OPTION: 400,
  EVIDENT_BAD_REQUEST: 400,
  EVIDENT_UNAUTHORIZED: 401,
  EVIDENT_FORBIDDEN: 403,
  EVIDENT_NOT_FOUND: 404,
  EVIDENT_OUT_OF_RANGE: 404,
  EVIDENT_NO_KEY: 404,
  EVIDENT_TOO_LARGE: 413,
  EVIDENT_QUEUE_FULL: 503,
  EVIDENT_NOT_YET: 503,
  EVIDENT_CLOSED: 503,
  EVIDENT_HISTORY_MISMATCH: 503,
};

const TILE_CORS = { 'access-control-allow-origin': '*' };
const MAX_LIMIT = 1000;

export function buildServer(options: ServerOptions): FastifyInstance {
  const { log } = options;
  const maxPending = options.maxPending ?? 65_536;
  const app = Fastify({
    ...(options.https === undefined ? {} : { https: options.https }),
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 8 << 20, // the parsers below count it themselves
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    connectionTimeout: 60_000,
    return503OnClosing: false, // answered below, in evident's own shape and with Retry-After
  });
  const tokens = tokenSource(options.tokens);
  // Once the server is closing, requests still arriving on open connections are told to come back.
  let closing = false;
  app.addHook('onRequest', async (request) => {
    if (closing) throw new EvidentError('EVIDENT_CLOSED', 'the server is shutting down: retry shortly');
    // No route: answered now, before any body it carries is read.
    if (request.is404)
      throw new EvidentError('EVIDENT_NOT_FOUND', `no such resource: ${request.method} ${request.url}`);
  });
  const replays = options.replays ?? new Replays();
  const metrics = new Metrics();
  let pending = 0;
  let seenCheckpoint: { note: string; at: number } | null = null;

  // Bodies stay text: evident parses them (strict I-JSON), so nothing is altered on the way.
  // Read here rather than by fastify: strict UTF-8 (a replacement character would alter the entry), the size
  // limit counted as the bytes arrive, and a body that stops arriving answered 408 instead of held open.
  const bodyLimit = options.bodyLimit ?? 8 << 20;
  const bodyTimeoutMs = options.requestTimeoutMs ?? 30_000;
  app.removeAllContentTypeParsers();
  for (const type of ['application/json', 'application/x-ndjson']) {
    app.addContentTypeParser(type, (request, payload, done) => {
      // Bytes taken as UTF-8 JSON must be that: a compressed body, or one in another charset, is refused whole.
      const coding = request.headers['content-encoding']?.trim().toLowerCase();
      if (coding !== undefined && coding !== '' && coding !== 'identity') {
        return done(unsupported(`Content-Encoding ${coding}: send the body uncompressed`));
      }
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
      if (charset !== undefined && !['utf-8', 'utf8', 'us-ascii'].includes(charset.toLowerCase())) {
        return done(unsupported(`charset ${charset}: the body must be UTF-8`));
      }
      const declared = Number(request.headers['content-length']);
      if (declared > bodyLimit)
        return done(new EvidentError('EVIDENT_TOO_LARGE', `the body is over ${bodyLimit} bytes`));
      const chunks: Buffer[] = [];
      let size = 0;
      let finished = false;
      const finish = (error: Error | null, body?: string) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        payload.removeAllListeners('data');
        payload.resume(); // drain what is still coming; the answer goes out now
        if (error !== null) done(error);
        else done(null, body);
      };
      const timer = setTimeout(
        () =>
          finish(Object.assign(new Error(`the body did not arrive within ${bodyTimeoutMs} ms`), { statusCode: 408 })),
        bodyTimeoutMs,
      );
      payload.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > bodyLimit)
          return finish(new EvidentError('EVIDENT_TOO_LARGE', `the body is over ${bodyLimit} bytes`));
        chunks.push(chunk);
      });
      payload.on('error', (error) => finish(error));
      payload.on('end', () => {
        try {
          finish(null, new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks)));
        } catch {
          finish(new InvalidEntryError('$', 'the body is not valid UTF-8'));
        }
      });
    });
  }

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request, reply) => {
    let code: ErrorCode;
    let status: number;
    let message = error.message;
    if (error instanceof EvidentError) {
      code = error.code;
      status = STATUS[code] ?? 500;
      if (status >= 500) request.log.error(error); // the server's own failure (a bad token file, a store error)
    } else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      code = 'EVIDENT_TOO_LARGE';
      status = 413;
    } else if (typeof error.statusCode === 'number' && error.statusCode < 500) {
      code = 'EVIDENT_BAD_REQUEST';
      status = error.statusCode;
      if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        message = `${message}: send application/json (one entry) or application/x-ndjson (a batch)`;
      }
    } else {
      code = 'EVIDENT_WRITE_FAILED';
      status = 500;
      request.log.error(error);
      message = 'the server failed; see its log';
    }
    if (status === 503) reply.header('retry-after', '1');
    if (status === 401) reply.header('www-authenticate', 'Bearer');
    // An error about one line of a batch says which, for clients to name it in their own terms.
    const line = error instanceof EvidentError && error.index !== undefined ? { line: error.index + 1 } : {};
    return reply.code(status).send({ error: { code, message, ...line } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'EVIDENT_NOT_FOUND', message: `no such resource: ${request.url}` } }),
  );

  /** The token a request carries, allowed `scope`; throws 401/403. Reads pass without one when public. */
  const authorize = async (request: FastifyRequest, scope: Scope): Promise<Token | null> => {
    if (scope === 'read' && options.publicReads === true) return null;
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    const secret = /^bearer +(.*)$/i.exec(request.headers.authorization ?? '')?.[1]?.trim();
    if (secret === undefined || secret === '') {
      throw new EvidentError('EVIDENT_UNAUTHORIZED', 'this needs a token: Authorization: Bearer <secret>');
    }
    const token = findToken(await tokens(), secret);
    if (token === null) throw new EvidentError('EVIDENT_UNAUTHORIZED', 'the token is not known (revoked?)');
    if (!token.scopes.includes(scope) && !token.scopes.includes('admin')) {
      throw new EvidentError('EVIDENT_FORBIDDEN', `token ${token.name} lacks the ${scope} scope`);
    }
    return token;
  };

  const inputOf = (value: unknown, where: string): EntryInput => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new InvalidEntryError('$', `${where} is not a JSON object; an entry is one`);
    }
    return value as EntryInput;
  };

  const allowed = (token: Token | null, inputs: EntryInput[], batch: boolean) => {
    for (const [i, input] of inputs.entries()) {
      if (token !== null && typeof input.actor === 'string' && !mayActAs(token, input.actor)) {
        throw new EvidentError(
          'EVIDENT_FORBIDDEN',
          `${inputs.length > 1 ? `line ${i + 1}: ` : ''}token ${token.name} may not append as ${JSON.stringify(input.actor)}`,
          { index: batch ? i : undefined },
        );
      }
    }
  };

  const admitted = async <T>(count: number, work: () => Promise<T>): Promise<T> => {
    if (count > maxPending) {
      // Never admitted however long it waits: not a reason to retry.
      throw new EvidentError(
        'EVIDENT_TOO_LARGE',
        `the batch holds ${count} entries; this server takes at most ${maxPending} at once: split it`,
      );
    }
    if (pending + count > maxPending) {
      throw new EvidentError('EVIDENT_QUEUE_FULL', `the log has ${pending} entries waiting to be appended; retry`);
    }
    pending += count;
    try {
      return await work();
    } finally {
      pending -= count;
    }
  };

  // Every answer to an append counts, refusals too; entries and latency only for the ones that appended.
  app.addHook('onResponse', async (request, reply) => {
    if (request.method !== 'POST' || request.routeOptions.url !== '/v1/entries') return;
    const entries = (request as { appendedEntries?: number }).appendedEntries ?? 0;
    metrics.appended(reply.statusCode, reply.statusCode === 201 ? entries : 0, reply.elapsedTime / 1000);
  });

  // The token is checked before the body is read — a request without the right is refused before it holds up
  // to bodyLimit bytes of the server's memory — and again once it is read, in case it was revoked meanwhile.
  const onRequest = async (request: FastifyRequest) => {
    await authorize(request, 'append');
  };
  app.post('/v1/entries', { onRequest }, async (request, reply) => {
    const token = (await authorize(request, 'append')) as Token;
    const body = typeof request.body === 'string' ? request.body : '';
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    const batch = type === 'application/x-ndjson';
    let inputs: EntryInput[];
    if (batch) {
      const lines = body.split('\n');
      if (lines.at(-1) === '') lines.pop();
      if (lines.length === 0) throw new EvidentError('EVIDENT_BAD_REQUEST', 'the batch holds no entries');
      inputs = lines.map((line, i) => {
        try {
          if (line.trim() === '') throw new InvalidEntryError(`line ${i + 1}`, 'empty line (expected a JSON object)');
          return inputOf(parseIJson(line, `line ${i + 1}`), `line ${i + 1}`);
        } catch (error) {
          if (error instanceof EvidentError) throw new EvidentError(error.code, error.message, { index: i });
          throw error;
        }
      });
    } else {
      inputs = [inputOf(parseIJson(body, 'the body'), 'the body')];
    }
    allowed(token, inputs, batch);
    const header = request.headers['idempotency-key'];
    if (Array.isArray(header)) throw new EvidentError('EVIDENT_BAD_REQUEST', 'one Idempotency-Key, not several');
    // A batch answers with a summary, or with the entries as stored when the client accepts NDJSON.
    const entriesWanted = batch && (request.headers.accept ?? '').includes('application/x-ndjson');
    // Every entry records the token it came with (and the key): a token holder cannot pass as another.
    const append = async (key?: string) => {
      const via = { token: token.name, key };
      const done = await admitted(inputs.length, async () => {
        try {
          if (batch && !entriesWanted) return { ...(await log.appendBulk(inputs, { via })), entries: [] };
          const entries = await log.appendBatch(inputs, { via });
          return { first: (entries[0] as Entry).seq, last: (entries.at(-1) as Entry).seq, entries };
        } catch (error) {
          // A bad entry of a batch is named by its line, as parsing names it (the log counts from 0).
          const index = batch && error instanceof InvalidEntryError ? entryIndexOf(error, inputs.length) : undefined;
          if (error instanceof InvalidEntryError && index !== undefined) {
            const message = `line ${index + 1}: ${error.field}: ${error.problem}`;
            throw new EvidentError('EVIDENT_INVALID_ENTRY', message, { index });
          }
          throw error;
        }
      });
      (request as { appendedEntries?: number }).appendedEntries = inputs.length;
      return { first: done.first as number, last: done.last as number, entries: done.entries as Entry[] };
    };
    const answer = (status: number, first: number, last: number, entries: Entry[]) => {
      if (!batch) return reply.code(status).send(entries[0]);
      if (entriesWanted) return reply.code(status).type('application/x-ndjson').send(ndjson(entries));
      return reply.code(status).send({ appended: last - first + 1, first, last });
    };
    if (header === undefined) {
      const { first, last, entries } = await append();
      return answer(201, first, last, entries);
    }
    let appended: Entry[] = [];
    const result = await replays.once(token.name, header, async () => {
      const done = await append(header);
      appended = done.entries;
      return done;
    });
    if (!result.replayed) return answer(201, result.first, result.last, appended);
    if (batch && !entriesWanted) return answer(200, result.first, result.last, []);
    const entries = await collect(log.read({ fromSeq: result.first, toSeq: result.last }));
    if (entries.length !== result.last - result.first + 1) {
      throw new EvidentError('EVIDENT_LOG_CORRUPT', `entries ${result.first} to ${result.last} are not all there`);
    }
    return answer(200, result.first, result.last, entries);
  });

  app.get('/v1/entries', async (request, reply) => {
    await authorize(request, 'read');
    const q = request.query as Record<string, unknown>;
    const text = (name: string) => {
      const value = q[name];
      if (value === undefined) return undefined;
      if (typeof value !== 'string' || value === '') {
        throw new EvidentError('EVIDENT_BAD_REQUEST', `${name}: give it once, not empty`);
      }
      return value;
    };
    const limit = count(text('limit'), 'limit') ?? 100;
    if (limit < 1 || limit > MAX_LIMIT) throw new EvidentError('EVIDENT_BAD_REQUEST', `limit: 1 to ${MAX_LIMIT}`);
    const after = count(text('after'), 'after');
    const query: ReadQuery = {
      actor: text('actor'),
      action: text('action'),
      target: text('target'),
      since: time(text('since'), 'since'),
      until: time(text('until'), 'until'),
      fromSeq: after === undefined ? undefined : after + 1,
      limit,
    };
    const entries: Entry[] = [];
    for await (const entry of log.read(query)) entries.push(entry);
    const next = entries.length === limit ? (entries.at(-1) as Entry).seq : null;
    if ((request.headers.accept ?? '').includes('application/x-ndjson')) {
      // NDJSON has no room for a cursor: the next page's URL goes in a Link header (RFC 8288).
      if (next !== null) {
        const params = new URLSearchParams(request.url.split('?')[1] ?? '');
        params.set('after', String(next));
        reply.header('link', `</v1/entries?${params}>; rel="next"`);
      }
      return reply.type('application/x-ndjson').send(ndjson(entries));
    }
    return { entries, next };
  });

  const seqParam = (request: FastifyRequest) => {
    const seq = count((request.params as { seq: string }).seq, 'seq');
    if (seq === undefined) throw new EvidentError('EVIDENT_BAD_REQUEST', 'seq is missing');
    return seq;
  };

  app.get('/v1/entries/:seq', async (request) => {
    await authorize(request, 'read');
    const seq = seqParam(request);
    for await (const entry of log.read({ fromSeq: seq, toSeq: seq })) return entry;
    throw new EvidentError('EVIDENT_NOT_FOUND', `no entry ${seq}`);
  });

  app.get('/v1/entries/:seq/receipt', async (request, reply) => {
    await authorize(request, 'read');
    const seq = seqParam(request);
    const wait = count((request.query as { wait?: string }).wait, 'wait') ?? 0;
    if (wait > 60) throw new EvidentError('EVIDENT_BAD_REQUEST', 'wait: at most 60 seconds');
    const receipt = await log.receipt(seq, { waitMs: wait * 1000 }).catch((error: unknown) => {
      // The log's own message names where it is stored: not a reader's business.
      if (error instanceof EvidentError && error.code === 'EVIDENT_NOT_YET') {
        throw new EvidentError(
          'EVIDENT_NOT_YET',
          `no signed checkpoint covers entry ${seq} yet: retry, or ?wait=SECONDS`,
        );
      }
      throw error;
    });
    return reply.type('text/plain; charset=utf-8').send(receipt);
  });

  app.get('/v1/health', async () => ({ ok: true, ...(await log.head()) }));

  app.get('/metrics', async (request, reply) => {
    await authorize(request, 'read');
    const checkpoint = await published();
    if (checkpoint !== null && checkpoint.note !== seenCheckpoint?.note) {
      seenCheckpoint = { note: checkpoint.note, at: Date.now() };
    }
    const text = metrics.render({
      pending,
      size: (await log.head()).size,
      checkpointSize: checkpoint?.size ?? null,
      checkpointAge: seenCheckpoint === null ? null : (Date.now() - seenCheckpoint.at) / 1000,
      witnesses: options.witnesses?.status() ?? [],
    });
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });

  // Server-sent events: every entry from `after` (or the Last-Event-ID a reconnecting client sends) on, as it
  // is appended by any writer; without either, the entries appended from now on. Each event's id is its seq.
  const streams = new Set<NodeJS.WritableStream & { end(): void }>();
  app.addHook('preClose', (done) => {
    closing = true;
    for (const stream of streams) stream.end();
    done();
  });
  app.get('/v1/tail', async (request, reply) => {
    await authorize(request, 'read');
    const resume = request.headers['last-event-id'] ?? (request.query as { after?: string }).after;
    if (Array.isArray(resume)) throw new EvidentError('EVIDENT_BAD_REQUEST', 'one Last-Event-ID');
    const after = count(resume, 'Last-Event-ID / after');
    let next = after === undefined ? (await log.head()).size : after + 1;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    raw.flushHeaders(); // the client learns the stream is open now, not with its first event
    streams.add(raw);
    let open = true;
    raw.on('close', () => {
      open = false;
      streams.delete(raw);
    });
    let quiet = 0;
    while (open) {
      try {
        await authorize(request, 'read'); // a token revoked meanwhile ends the stream, as it ends new requests
      } catch (error) {
        const { code, message } = error as EvidentError;
        raw.end(`event: error\ndata: ${JSON.stringify({ error: { code, message } })}\n\n`);
        return;
      }
      let sent = false;
      for await (const entry of log.read({ fromSeq: next, limit: 1000 })) {
        if (!raw.write(`id: ${entry.seq}\nevent: entry\ndata: ${JSON.stringify(entry)}\n\n`)) {
          await new Promise((resolve) => raw.once('drain', resolve)); // a slow reader holds nothing but its socket
        }
        next = entry.seq + 1;
        sent = true;
      }
      quiet = sent ? 0 : quiet + 1;
      if (quiet >= 75) {
        raw.write(': still here\n\n'); // every 15 s, so that proxies keep the connection
        quiet = 0;
      }
      if (!sent) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  /** The latest checkpoint signed, with the cosignatures kept for it; null if the log does not sign. */
  const published = async () => {
    const note = await log.latestCheckpoint();
    return note === null ? null : { note, size: checkpointOfNote(note).size };
  };

  app.get('/checkpoint', async (request, reply) => {
    await authorize(request, 'read');
    const checkpoint = await published();
    if (checkpoint === null) throw new EvidentError('EVIDENT_NO_KEY', 'this log does not sign checkpoints');
    return reply
      .headers({ ...TILE_CORS, 'cache-control': 'no-cache' })
      .type('text/plain; charset=utf-8')
      .send(checkpoint.note);
  });

  // Full tiles and bundles never change once published: served from memory after the first read.
  const fullTiles = new TileCache(32 << 20);
  app.get('/tile/*', async (request, reply) => {
    await authorize(request, 'read');
    const path = (request.params as { '*': string })['*'];
    const cached = fullTiles.get(path);
    if (cached !== undefined) {
      return reply
        .headers({ ...TILE_CORS, 'cache-control': 'public, max-age=31536000, immutable' })
        .type('application/octet-stream')
        .send(cached);
    }
    const address = parseTilePath(path);
    if (address === null) throw new EvidentError('EVIDENT_NOT_FOUND', `${request.url} is not a tile path`);
    // Tiles of the tree the readers can check: the published checkpoint's (the whole tree, if it does not sign).
    const size = (await published())?.size ?? (await log.treeHead()).size;
    const { level, index, width } = address;
    const leaves = (index * 256 + width) * 256 ** (level === 'entries' ? 0 : level);
    if (leaves > size) throw new EvidentError('EVIDENT_NOT_FOUND', `${request.url} is beyond the tree of ${size}`);
    const body =
      level === 'entries'
        ? entryBundle(await collect(log.read({ fromSeq: index * 256, toSeq: index * 256 + width - 1 })))
        : await log.tile(level, index, width);
    if (width === 256) fullTiles.set(path, body);
    const cache = width === 256 ? 'public, max-age=31536000, immutable' : 'public, max-age=60';
    return reply
      .headers({ ...TILE_CORS, 'cache-control': cache })
      .type('application/octet-stream')
      .send(body);
  });

  return app;
}

/** Tiles by path, the least recently used dropped past `budget` bytes. */
class TileCache {
  readonly #tiles = new Map<string, Buffer>();
  #bytes = 0;

  constructor(readonly budget: number) {}

  get(path: string): Buffer | undefined {
    const tile = this.#tiles.get(path);
    if (tile !== undefined) {
      this.#tiles.delete(path); // most recently used last
      this.#tiles.set(path, tile);
    }
    return tile;
  }

  set(path: string, tile: Buffer): void {
    if (this.#tiles.has(path) || tile.length > this.budget) return;
    this.#tiles.set(path, tile);
    this.#bytes += tile.length;
    for (const [oldest, dropped] of this.#tiles) {
      if (this.#bytes <= this.budget) break;
      this.#tiles.delete(oldest);
      this.#bytes -= dropped.length;
    }
  }
}

function ndjson(entries: readonly Entry[]): string {
  return entries.map((entry) => `${JSON.stringify(entry)}\n`).join('');
}

async function collect(entries: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const entry of entries) out.push(entry);
  return out;
}

/** A whole number parameter, or undefined when absent. */
function count(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new EvidentError('EVIDENT_BAD_REQUEST', `${name}: expected a whole number, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** An RFC 3339 time parameter, normalised as entries store times; undefined when absent. */
function time(text: string | undefined, name: 'since' | 'until'): string | undefined {
  if (text === undefined) return undefined;
  const parsed = logTime(text, name);
  if (parsed === null) {
    throw new EvidentError('EVIDENT_BAD_REQUEST', `${name}: ${JSON.stringify(text)} is not an RFC 3339 time`);
  }
  return parsed;
}

/** A 415 naming what the server cannot take. */
function unsupported(message: string): Error {
  return Object.assign(new Error(message), { statusCode: 415 });
}

/** The tokens, read again when the file changes (a revoked token stops working within a second). */
function tokenSource(path: string | null): () => Promise<Token[]> {
  if (path === null) return async () => [];
  let tokens: Token[] | EvidentError = readTokens(path);
  let checked = Date.now();
  return async () => {
    if (Date.now() - checked >= 1000) {
      checked = Date.now();
      try {
        tokens = readTokens(path);
      } catch (error) {
        // A file broken by hand refuses every token until it is mended: an edit meant to revoke one must not
        // leave the list it replaced in force.
        tokens =
          error instanceof EvidentError ? error : new EvidentError('EVIDENT_BAD_CONFIG', (error as Error).message);
      }
    }
    if (tokens instanceof EvidentError) throw tokens;
    return tokens;
  };
}
