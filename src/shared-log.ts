/**
 * One log shared by the threads of a process. A worker thread is a
 * JavaScript world of its own: a Log it opened would have its own store
 * handle, queue and (for PostgreSQL) connection pool. Instead the thread
 * that owns the log hands a worker a MessagePort (`log.share()`), and the
 * worker appends and reads through a SharedLog on it: the process keeps one
 * store, one pool and one queue, so the workers' appends are group-committed
 * with everyone else's.
 *
 * Entries are validated in the worker, exactly as Log does, and cross the
 * port as their canonical JSON: what the worker gave is refused there,
 * before the structured clone could turn a class instance into a plain
 * object, and the owner parses and validates the text again, so nothing a
 * worker sends is written on trust. Errors come back with their code,
 * message and, for an entry, its field and problem.
 */
import type { MessagePort } from 'node:worker_threads';
import { type Entry, type EntryInput, type Head, inputText, prepareBatch } from './entry.js';
import { type ErrorCode, EvidentError, InvalidEntryError, LogClosedError } from './errors.js';
import type { Appended } from './lifecycle/sequencer.js';
import type { AuditLog } from './log.js';
import type { ReadQuery } from './store/store.js';

/** Entries a read sends in one message: the worker asks for the next ones as it consumes them. */
const READ_CHUNK = 256;

/**
 * What the owning thread does for a SharedLog: the log's own operations.
 * Appends take each entry as the canonical JSON text the worker validated,
 * parsed and validated again by the log itself: what crosses the port is
 * never written on trust.
 */
export interface SharedOperations {
  location: string;
  maxEntryBytes: number;
  append(inputs: unknown[]): Promise<Entry[]>;
  appendBulk(inputs: unknown[]): Promise<Appended>;
  head(): Promise<Head>;
  read(query: ReadQuery): AsyncIterator<Entry>;
  checkpoint(): Promise<string | null>;
  receipt(seq: number, options: { waitMs?: number }): Promise<string>;
}

type Request =
  | { id: number; op: 'append' | 'appendBulk'; texts: string[] }
  | { id: number; op: 'head' | 'checkpoint' }
  | { id: number; op: 'receipt'; seq: number; waitMs: number | undefined }
  | { id: number; op: 'read'; query: ReadQuery }
  | { id: number; op: 'next' | 'return'; cursor: number };

/** A request before it is numbered. */
type Call = Request extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

type Reply = { id: number; value: unknown } | { id: number; error: SentError };

interface Hello {
  hello: { location: string; maxEntryBytes: number };
}

/** An error as it crosses the port: a structured clone would keep its message but not its code. */
interface SentError {
  name: string;
  message: string;
  code?: string | undefined;
  index?: number | undefined;
  field?: string | undefined;
  problem?: string | undefined;
}

/**
 * Serves `port` with `log`'s operations until either side closes it. Each
 * read is a cursor the worker pulls from, so a slow reader holds at most a
 * chunk; cursors left open by a worker that went away are closed with it.
 */
export function serveShared(port: MessagePort, log: SharedOperations): void {
  const cursors = new Map<number, AsyncIterator<Entry>>();
  const reply = (message: Reply) => {
    try {
      port.postMessage(message);
    } catch {
      // The worker went away: nobody is left to answer.
    }
  };
  const run = async (request: Request): Promise<unknown> => {
    switch (request.op) {
      case 'append':
        return log.append(request.texts.map((text) => JSON.parse(text)));
      case 'appendBulk':
        return log.appendBulk(request.texts.map((text) => JSON.parse(text)));
      case 'head':
        return log.head();
      case 'checkpoint':
        return log.checkpoint();
      case 'receipt':
        return log.receipt(request.seq, request.waitMs === undefined ? {} : { waitMs: request.waitMs });
      case 'read':
        cursors.set(request.id, log.read(request.query));
        return request.id;
      case 'next': {
        const cursor = cursors.get(request.cursor);
        if (cursor === undefined) return { entries: [], done: true };
        const entries: Entry[] = [];
        try {
          while (entries.length < READ_CHUNK) {
            const next = await cursor.next();
            if (next.done) {
              cursors.delete(request.cursor);
              return { entries, done: true };
            }
            entries.push(next.value);
          }
        } catch (error) {
          cursors.delete(request.cursor);
          throw error;
        }
        return { entries, done: false };
      }
      case 'return': {
        const cursor = cursors.get(request.cursor);
        cursors.delete(request.cursor);
        await cursor?.return?.();
        return null;
      }
    }
  };
  port.on('message', (request: Request) => {
    run(request).then(
      (value) => reply({ id: request.id, value }),
      (error: unknown) => reply({ id: request.id, error: sentError(error) }),
    );
  });
  port.on('close', () => {
    for (const cursor of cursors.values()) cursor.return?.().catch(() => undefined);
    cursors.clear();
  });
  port.postMessage({ hello: { location: log.location, maxEntryBytes: log.maxEntryBytes } } satisfies Hello);
  port.unref(); // the owner's process need not stay up for a port: the worker's side keeps it while it waits
}

function sentError(error: unknown): SentError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const sent: SentError = { name: error.name, message: error.message };
  if (error instanceof EvidentError) {
    sent.code = error.code;
    sent.index = error.index;
  }
  if (error instanceof InvalidEntryError) {
    sent.field = error.field;
    sent.problem = error.problem;
  }
  return sent;
}

function receivedError(sent: SentError): Error {
  if (sent.field !== undefined && sent.problem !== undefined) {
    return new InvalidEntryError(sent.field, sent.problem, sent.index);
  }
  const error =
    sent.code === undefined
      ? new Error(sent.message)
      : new EvidentError(sent.code as ErrorCode, sent.message, { index: sent.index });
  error.name = sent.name;
  return error;
}

/**
 * A log another thread of this process owns, reached through the port its
 * `log.share()` gave: the same appends, reads, checkpoints and receipts as
 * the Log itself. Closing it closes the port, not the log.
 */
export class SharedLog implements AuditLog {
  #location = '';
  #maxEntryBytes = 0;
  readonly #port: MessagePort;
  readonly #ready: Promise<void>;
  readonly #waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #nextId = 0;
  #closed = false;

  /** `port`: what `log.share()` returned in the owning thread, passed here in workerData or a message. */
  constructor(port: MessagePort) {
    this.#port = port;
    let opened: () => void = () => undefined;
    this.#ready = new Promise<void>((resolve) => {
      opened = resolve;
    });
    port.on('message', (message: Reply | Hello) => {
      if ('hello' in message) {
        this.#location = message.hello.location;
        this.#maxEntryBytes = message.hello.maxEntryBytes;
        if (this.#waiting.size === 0) port.unref();
        opened();
        return;
      }
      const waiting = this.#waiting.get(message.id);
      if (waiting === undefined) return;
      this.#waiting.delete(message.id);
      if (this.#waiting.size === 0) port.unref();
      if ('error' in message) waiting.reject(receivedError(message.error));
      else waiting.resolve(message.value);
    });
    // The owner closed the log (or its port): what is still waiting will get no answer.
    port.on('close', () => {
      this.#closed = true;
      for (const waiting of this.#waiting.values()) waiting.reject(new LogClosedError());
      this.#waiting.clear();
      opened();
    });
    // Referenced until the owner's greeting arrives (a worker that appends at once must not exit waiting for
    // it), then only while a call waits for its answer.
    port.ref();
  }

  /** Where the shared log is: its directory or store URL. Empty until the port has been answered. */
  get location(): string {
    return this.#location;
  }

  /** Resolves once the owning thread has answered on the port. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Appends one entry; resolves with it once it is durable. */
  async append(input: EntryInput): Promise<Entry> {
    const [entry] = await this.appendBatch([input]);
    return entry as Entry;
  }

  /** Appends entries atomically: all in one commit, consecutive, or none. */
  async appendBatch(inputs: readonly EntryInput[]): Promise<Entry[]> {
    const texts = await this.#encode(inputs);
    if (texts.length === 0) return [];
    return (await this.#call({ op: 'append', texts })) as Entry[];
  }

  /** appendBatch(), answering how many were appended and their first and last seq. */
  async appendBulk(inputs: readonly EntryInput[]): Promise<Appended> {
    const texts = await this.#encode(inputs);
    if (texts.length === 0) return { appended: 0, first: null, last: null };
    return (await this.#call({ op: 'appendBulk', texts })) as Appended;
  }

  async head(): Promise<Head> {
    return (await this.#call({ op: 'head' })) as Head;
  }

  async checkpoint(): Promise<string | null> {
    return (await this.#call({ op: 'checkpoint' })) as string | null;
  }

  async receipt(seq: number, options: { waitMs?: number } = {}): Promise<string> {
    return (await this.#call({ op: 'receipt', seq, waitMs: options.waitMs })) as string;
  }

  /** Entries matching `query`, in order, fetched a chunk at a time as they are consumed. */
  async *read(query: ReadQuery = {}): AsyncGenerator<Entry> {
    const cursor = (await this.#call({ op: 'read', query: { ...query } })) as number;
    let done = false;
    try {
      while (!done) {
        const chunk = (await this.#call({ op: 'next', cursor })) as { entries: Entry[]; done: boolean };
        done = chunk.done;
        yield* chunk.entries;
      }
    } finally {
      if (!done && !this.#closed) await this.#call({ op: 'return', cursor });
    }
  }

  /** Closes this thread's port; the log stays open in the thread that owns it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.close();
  }

  /**
   * The entries validated here, with the owner's size limit (a bad one throws
   * as Log's would), as canonical JSON: exactly the values that were judged,
   * whatever the structured clone would have made of the caller's objects.
   */
  async #encode(inputs: readonly EntryInput[]): Promise<string[]> {
    await this.#ready;
    if (this.#closed) throw new LogClosedError();
    return prepareBatch(inputs, this.#maxEntryBytes).map(inputText);
  }

  async #call(request: Call): Promise<unknown> {
    await this.#ready;
    if (this.#closed) throw new LogClosedError();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#port.ref();
      this.#port.postMessage({ ...request, id });
    });
  }
}
