/**
 * The log's lifecycle: lazy opening, group commit and the background writer.
 * Everything about *when* things happen is here; *how* a backend locks,
 * writes and syncs is behind the Store interface.
 *
 * Group commit: appends queue up while a commit is in flight; the next
 * commit takes everything queued (up to maxBatch entries) under one lock,
 * one write and one sync, and each caller's promise resolves only after
 * that sync. Validation and encoding happen in the caller, before the
 * queue, so a bad entry never reaches a batch and never holds the lock.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Batch } from './batch.js';
import {
  DEFAULT_MAX_ENTRY_BYTES,
  type Entry,
  type EntryInput,
  type Head,
  type PreparedEntry,
  prepareEntry,
} from './entry.js';
import { InvalidEntryError, InvalidOptionError, LogClosedError, QueueFullError, RecordFailedError } from './errors.js';
import { initSigning } from './store/file/config.js';
import { type Durability, FileStore } from './store/file/file-store.js';
import type { Files } from './store/file/files.js';
import type { ReadQuery, Recovery, Store, TreeHead, VerifyOptions, VerifyResult } from './store/store.js';

export interface LogOptions {
  /** The log directory. Default: $EVIDENT_DIR, else ./.evident */
  dir?: string | undefined;
  /** 'fsync' (default) or 'write'; see README "Durability". */
  durability?: Durability | undefined;
  /** Create the log if it does not exist. Default false: a mistyped directory is an error, not a new log. */
  create?: boolean | undefined;
  /** Open for reading only: no lock taken, nothing ever written (not even torn-tail recovery). */
  readOnly?: boolean | undefined;
  /** Largest encoded entry, in bytes. Default 65536. */
  maxEntryBytes?: number | undefined;
  /** Most entries in one commit. Default 4096. */
  maxBatch?: number | undefined;
  /** Most events `record()` holds before it throws QueueFullError. Default 10000. */
  maxQueue?: number | undefined;
  /** The file layer (a seam for tests). */
  files?: Files | undefined;
  /** A signing log's key: the key text or its file. Default: $EVIDENT_KEY, then the file config.json names. */
  key?: string | undefined;
  /** Sign checkpoints at most this often (ms). Default 0: after every commit. Always on close. */
  checkpointInterval?: number | undefined;
  /** Keep the Merkle tree (default true). false: a bare hash chain, no proofs, checkpoints or receipts. */
  merkleTree?: boolean | undefined;
  /** A different backend; overrides dir/durability/create/files. */
  store?: Store | undefined;
}

export interface LogEvents {
  /** A torn last line was moved to quarantine when the log was opened. */
  recovered: [Recovery];
  /** Background `record()` events could not be written. */
  error: [RecordFailedError];
}

interface Pending {
  prepared: PreparedEntry[];
  /** Absent for background `record()` events. */
  resolve?: (entries: Entry[]) => void;
  reject?: (error: unknown) => void;
}

/** The directory a log lives in, from an option, then $EVIDENT_DIR, then ./.evident */
export function resolveLogDir(dir?: string): string {
  return resolve(dir ?? process.env.EVIDENT_DIR ?? '.evident');
}

export class Log extends EventEmitter<LogEvents> {
  readonly dir: string;
  readonly #store: Store;
  readonly #maxEntryBytes: number;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  #opening: Promise<void> | null = null;
  #queue: Pending[] = [];
  #recorded = 0; // background events queued or in flight
  #draining = false;
  #idle: (() => void)[] = [];
  #recordError: RecordFailedError | null = null;
  #closed = false;

  constructor(options: LogOptions = {}) {
    super();
    this.dir = resolveLogDir(options.dir);
    this.#maxEntryBytes = positive(options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES, 'maxEntryBytes');
    this.#maxBatch = positive(options.maxBatch ?? 4096, 'maxBatch');
    this.#maxQueue = positive(options.maxQueue ?? 10_000, 'maxQueue');
    const durability = options.durability ?? 'fsync';
    if (durability !== 'fsync' && durability !== 'write') {
      throw new InvalidOptionError(`durability must be 'fsync' or 'write', not ${JSON.stringify(durability)}`);
    }
    this.#store =
      options.store ??
      new FileStore(this.dir, {
        durability,
        create: options.create,
        readOnly: options.readOnly,
        files: options.files,
        key: options.key,
        checkpointIntervalMs: options.checkpointInterval,
        merkleTree: options.merkleTree,
        onRecover: (recovery) => this.emit('recovered', recovery),
        onTreeError: (error) => process.emitWarning(`evident: Merkle tree not updated, will rebuild: ${error}`),
      });
  }

  /** Creates (if needed) and opens a log eagerly. */
  static async open(options: LogOptions = {}): Promise<Log> {
    const log = new Log(options);
    await log.ready();
    return log;
  }

  /**
   * Creates a log (or opens an existing one). With `signingKey` (a key file or
   * the key text) the log signs checkpoints as the key's name: its first
   * checkpoint, of the empty tree or of what the log holds, is signed now.
   */
  static async init(options: LogOptions & { signingKey?: string | undefined } = {}): Promise<Log> {
    const dir = resolveLogDir(options.dir);
    mkdirSync(dir, { recursive: true });
    if (options.signingKey !== undefined) initSigning(dir, options.signingKey);
    const log = new Log({ ...options, dir, create: true, key: options.key ?? options.signingKey });
    await log.ready();
    await log.close(); // signs the first checkpoint
    return log;
  }

  /** Opens the log if no one has yet. Concurrent first callers share one open. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new LogClosedError());
    return this.#open();
  }

  #open(): Promise<void> {
    this.#opening ??= this.#store.open().catch((error: unknown) => {
      this.#opening = null; // let a later call try again (the directory may appear)
      throw error;
    });
    return this.#opening;
  }

  /** Appends one entry; resolves with it once it is durable. */
  async append(input: EntryInput): Promise<Entry> {
    const [entry] = await this.appendBatch([input]);
    return entry as Entry;
  }

  /** Appends entries atomically: all in one commit, consecutive, or none. */
  appendBatch(inputs: readonly EntryInput[]): Promise<Entry[]> {
    if (this.#closed) return Promise.reject(new LogClosedError());
    const prepared: PreparedEntry[] = [];
    for (const [index, input] of inputs.entries()) {
      try {
        prepared.push(prepareEntry(input, this.#maxEntryBytes));
      } catch (error) {
        const named = error instanceof InvalidEntryError && inputs.length > 1;
        return Promise.reject(named ? new InvalidEntryError(error.field, error.problem, index) : error);
      }
    }
    if (prepared.length === 0) return Promise.resolve([]);
    return new Promise<Entry[]>((resolve, reject) => this.#enqueue({ prepared, resolve, reject }));
  }

  /**
   * Queues an entry for the background writer and returns at once.
   * Throws InvalidEntryError for a bad entry and QueueFullError when
   * maxQueue events are waiting (nothing is dropped). A failed commit is
   * reported as an 'error' event and by the next flush() rejecting.
   */
  record(input: EntryInput): void {
    if (this.#closed) throw new LogClosedError();
    if (this.#recorded >= this.#maxQueue) throw new QueueFullError(this.#maxQueue);
    const prepared = prepareEntry(input, this.#maxEntryBytes);
    this.#recorded++;
    this.#enqueue({ prepared: [prepared] });
  }

  /** Resolves when everything queued so far is durable; rejects if background events failed since the last flush. */
  async flush(): Promise<void> {
    while (this.#draining || this.#queue.length > 0) await new Promise<void>((done) => this.#idle.push(done));
    const failed = this.#recordError;
    this.#recordError = null;
    if (failed !== null) throw failed;
  }

  /** The current head: size, last hash, last time. */
  async head(): Promise<Head> {
    await this.ready();
    return this.#store.head();
  }

  /** Entries matching `query`, in order. Throws LogCorruptError on a malformed line rather than skipping it. */
  async *read(query: ReadQuery = {}): AsyncGenerator<Entry> {
    await this.ready();
    yield* this.#store.read(query);
  }

  /** The Merkle tree over every entry now in the log: its size and RFC 9162 root. */
  async treeHead(): Promise<TreeHead> {
    await this.ready();
    return this.#store.treeHead();
  }

  /** The root of the tree over the first `size` entries. */
  async rootAt(size: number): Promise<Buffer> {
    await this.ready();
    return this.#store.rootAt(size);
  }

  /** RFC 9162 inclusion proof of entry `seq` in the tree of `size` entries (default: the whole log). */
  async inclusionProof(seq: number, size?: number): Promise<Buffer[]> {
    await this.ready();
    return this.#store.inclusionProof(seq, size ?? (await this.#store.treeHead()).size);
  }

  /** RFC 9162 consistency proof from the tree of `size1` entries to that of `size2` (default: the whole log). */
  async consistencyProof(size1: number, size2?: number): Promise<Buffer[]> {
    await this.ready();
    return this.#store.consistencyProof(size1, size2 ?? (await this.#store.treeHead()).size);
  }

  /** The latest signed checkpoint (C2SP tlog-checkpoint note text), or null for a log that does not sign. */
  async checkpoint(): Promise<string | null> {
    await this.ready();
    return this.#store.checkpoint();
  }

  /** The latest signed checkpoint with the cosignatures witnesses have added to it. */
  async cosignedCheckpoint(minSize = 0): Promise<string | null> {
    await this.ready();
    return this.#store.cosignedCheckpoint(minSize);
  }

  /** Keeps a cosigned copy of one of this log's checkpoints (from a witness), for receipts to carry. */
  async addCosignatures(note: string): Promise<void> {
    await this.ready();
    return this.#store.addCosignatures(note);
  }

  /** Checks the whole chain in one streaming pass; names the first bad entry. */
  async verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    await this.ready();
    return this.#store.verify(options);
  }

  /** Drains what is queued, then releases the files. Rejects if background events failed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true; // refuse new work; what is queued still drains
    let failure: unknown = null;
    try {
      await this.flush();
    } catch (error) {
      failure = error;
    }
    if (this.#opening !== null) {
      await this.#opening.catch(() => undefined);
      await this.#store.close();
    }
    if (failure !== null) throw failure;
  }

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    if (!this.#draining) {
      this.#draining = true;
      // A microtask later, so every append made in this tick joins the first batch.
      queueMicrotask(() => void this.#drain());
    }
  }

  /** Commits queued entries batch after batch until the queue is empty. */
  async #drain(): Promise<void> {
    try {
      await this.#open(); // not ready(): close() drains what was queued before it
    } catch (error) {
      this.#failAll(error);
    }
    while (this.#queue.length > 0) {
      const batch = this.#takeBatch();
      try {
        const sealing = new Batch(batch.flatMap((pending) => pending.prepared));
        const entries = sealing.entries(await this.#store.commit(sealing));
        let at = 0;
        for (const pending of batch) {
          const mine = entries.slice(at, at + pending.prepared.length);
          at += pending.prepared.length;
          if (pending.resolve) pending.resolve(mine);
          else this.#recorded--;
        }
      } catch (error) {
        this.#fail(batch, error);
      }
    }
    this.#draining = false;
    for (const done of this.#idle.splice(0)) done();
  }

  /** Takes whole requests from the queue up to maxBatch entries (always at least one request). */
  #takeBatch(): Pending[] {
    let count = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const size = (this.#queue[n] as Pending).prepared.length;
      if (n > 0 && count + size > this.#maxBatch) break;
      count += size;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  #failAll(error: unknown): void {
    const all = this.#queue.splice(0);
    this.#fail(all, error);
  }

  #fail(batch: Pending[], error: unknown): void {
    const recorded: EntryInput[] = [];
    for (const pending of batch) {
      if (pending.reject) pending.reject(error);
      else {
        this.#recorded--;
        recorded.push(...pending.prepared.map((p) => p.input));
      }
    }
    if (recorded.length > 0) {
      const failure = new RecordFailedError(recorded, error);
      // flush() and close() reject with every failed event since the last flush.
      const earlier = this.#recordError?.inputs ?? [];
      this.#recordError = earlier.length === 0 ? failure : new RecordFailedError([...earlier, ...recorded], error);
      if (this.listenerCount('error') > 0) this.emit('error', failure);
      else process.emitWarning(failure.message, { code: failure.code });
    }
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive integer, not ${value}`);
  }
  return value;
}
