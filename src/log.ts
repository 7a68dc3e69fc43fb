/**
 * The log: what callers use. It opens its store lazily and exactly once,
 * and wires the lifecycle together — the sequencer (group commit), the
 * integrator (tree and checkpoints) and the signing identity the log's first
 * entry declares. It never names a backend: a store is a path or a Store.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Batch } from './batch.js';
import {
  DEFAULT_MAX_ENTRY_BYTES,
  type Entry,
  type EntryInput,
  type Head,
  hashedText,
  leafHashOfText,
  type PreparedEntry,
  prepareBatch,
  prepareEntry,
  type Via,
} from './entry.js';
import {
  EvidentError,
  HistoryMismatchError,
  InvalidOptionError,
  LogClosedError,
  LogCorruptError,
  NoteError,
  OutOfRangeError,
  QueueFullError,
  type RecordFailedError,
} from './errors.js';
import { addCosignatures, bestCosigned, withKeptCosignatures } from './lifecycle/cosignatures.js';
import { Integrator } from './lifecycle/integrator.js';
import { type Appended, Sequencer } from './lifecycle/sequencer.js';
import {
  checkpointKey,
  identityOf,
  initEntry,
  loadSignerKey,
  type SigningIdentity,
  signerFor,
} from './lifecycle/signing.js';
import type { Tree } from './lifecycle/tree.js';
import { locateRewrite, verifyAgainst, verifySince } from './lifecycle/verify.js';
import { emptyRoot } from './merkle/hash.js';
import { verifyInclusion } from './merkle/verify.js';
import { type Checkpoint, checkpointOfNote, formatCheckpoint, parseCheckpoint } from './note/checkpoint.js';
import { type PrivateNoteKey, type PublicNoteKey, parseVerifierKey, verifierKeyOf } from './note/keys.js';
import { ed25519Signer, openNote, signNote } from './note/note.js';
import { type TrustedCheckpoint, trustCheckpoint } from './note/trust.js';
import { formatReceipt } from './receipt.js';
import { serveShared } from './shared-log.js';
import type { Durability } from './store/file/entries.js';
import { storeOf } from './store/open.js';
import { checkedQuery } from './store/query.js';
import type {
  ChainCheck,
  CommittedBatch,
  ReadQuery,
  Recovery,
  Store,
  VerifyProgress,
  VerifyResult,
} from './store/store.js';

export interface AppendOptions {
  /** For a service that appends for others (`evident serve`): the token and idempotency key, stored in each entry. */
  via?: Via | undefined;
}

/** What a Log and a RemoteLog (a log behind `evident serve`) both do: code written against it takes either. */
export interface AuditLog {
  /** Where the log is: its directory or store URL, or the service's URL. */
  readonly location: string;
  append(input: EntryInput): Promise<Entry>;
  appendBatch(inputs: readonly EntryInput[]): Promise<Entry[]>;
  appendBulk(inputs: readonly EntryInput[]): Promise<Appended>;
  read(query?: ReadQuery): AsyncIterable<Entry>;
  head(): Promise<Head>;
  checkpoint(): Promise<string | null>;
  receipt(seq: number, options?: { waitMs?: number }): Promise<string>;
  close(): Promise<void>;
}

export interface LogOptions {
  /** Where the log lives: a directory (or `file:DIR`), or a Store. Default: $EVIDENT_STORE, $EVIDENT_DIR, else ./.evident */
  store?: string | Store | undefined;
  /** 'fsync' (default): an append resolves once its entry is on stable storage. 'write': once the OS has it. */
  durability?: Durability | undefined;
  /** Create the log if it does not exist. Default false: a mistyped path is an error, not a new log. */
  create?: boolean | undefined;
  /** Open for reading only: no lock taken, nothing ever written (not even crash recovery). */
  readOnly?: boolean | undefined;
  /** Largest encoded entry, in bytes. Default 65536. */
  maxEntryBytes?: number | undefined;
  /** Most entries in one commit. Default 4096. */
  maxBatch?: number | undefined;
  /** Most events `record()` holds before it throws QueueFullError. Default 10000. */
  maxQueue?: number | undefined;
  /** A signing log's key: the key text or its file. Default: $EVIDENT_KEY, then the file the store records. */
  key?: string | undefined;
  /** A signing log signs a checkpoint at most this often, in ms (checkpoint() and close() sign at once). Default 1000. */
  checkpointInterval?: number | undefined;
}

/** A checkpoint this process signed. */
export interface CheckpointEvent {
  size: number;
  root: Buffer;
  /** The signed note (C2SP tlog-checkpoint). */
  note: string;
}

export interface LogEvents {
  /** A torn last entry was moved aside (a writer died mid-write). */
  recovered: [Recovery];
  /** Background `record()` events could not be written. */
  error: [RecordFailedError];
  /** This process signed a checkpoint. */
  checkpoint: [CheckpointEvent];
}

export interface VerifyOptions {
  /**
   * A checkpoint already trusted (see trustCheckpoint): the log must still
   * hold its entries, and they must hash to its root. The tree is recomputed
   * from the entries themselves, on one thread.
   */
  checkpoint?: TrustedCheckpoint | undefined;
  /** With `checkpoint`: check only the entries after it, trusting the stored tree up to it once it hashes to its root. */
  sinceCheckpoint?: boolean | undefined;
  /** Worker threads to verify a large directory log with (ranges checked at once, then linked). Default 1. */
  threads?: number | undefined;
  /** Called now and then while verifying. */
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
}

/** The Merkle tree over a log's entries: its size and root (RFC 9162). */
export interface TreeHead {
  size: number;
  root: Buffer;
}

export interface InitOptions extends LogOptions {
  /** Make a signing log: its key (text or file). Its origin is the key's name; its first entry declares it. */
  signingKey?: string | undefined;
}

export interface ReanchorOptions extends LogOptions {
  /** Who re-anchors (recorded in the entry). */
  actor: string;
  /** Why (recorded in the entry). */
  reason: string;
}

const DEFAULT_INTERVAL_MS = 1000;

export class Log extends EventEmitter<LogEvents> implements AuditLog {
  /** Where the log lives (a directory, for a directory log). */
  readonly location: string;
  readonly #store: Store;
  readonly #options: LogOptions;
  readonly #maxEntryBytes: number;
  readonly #maxQueue: number;
  readonly #intervalMs: number;
  readonly #sequencer: Sequencer;
  #opening: Promise<void> | null = null;
  #integrator: Integrator | null = null;
  #identity: SigningIdentity | null = null;
  /** The stored checkpoint latestCheckpoint() last found signed by this log's key. */
  #latestTrusted: string | null = null;
  /** Open even if the history no longer matches its checkpoint (a re-anchor). */
  #lenient = false;
  #closed = false;
  /** The ports share() gave out that are still open. */
  readonly #shared = new Set<MessagePort>();

  constructor(options: LogOptions = {}) {
    super();
    this.#options = options;
    this.#maxEntryBytes = positive(options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES, 'maxEntryBytes');
    // C2SP tlog-tiles entry bundles give each entry's hashed text (the line without its 74-byte hash member)
    // a 16-bit length: a larger entry could be appended but never served or checked through tiles.
    if (this.#maxEntryBytes > DEFAULT_MAX_ENTRY_BYTES) {
      throw new InvalidOptionError(
        `maxEntryBytes ${this.#maxEntryBytes}: at most ${DEFAULT_MAX_ENTRY_BYTES}, the most an entry bundle carries`,
      );
    }
    this.#maxQueue = positive(options.maxQueue ?? 10_000, 'maxQueue');
    this.#intervalMs = positive(options.checkpointInterval ?? DEFAULT_INTERVAL_MS, 'checkpointInterval');
    const durability = options.durability ?? 'fsync';
    if (durability !== 'fsync' && durability !== 'write') {
      throw new InvalidOptionError(`durability must be 'fsync' or 'write', not ${JSON.stringify(durability)}`);
    }
    this.#store = storeOf(options.store, { durability });
    this.location = this.#store.location;
    this.#sequencer = new Sequencer({
      maxBatch: positive(options.maxBatch ?? 4096, 'maxBatch'),
      ready: () => this.#open(),
      commit: (batch) => this.#commit(batch),
      onRecordFailed: (failure) => {
        if (this.listenerCount('error') > 0) this.emit('error', failure);
        else process.emitWarning(failure.message, { code: failure.code });
      },
    });
  }

  /** Creates (if asked) and opens a log eagerly. */
  static async open(options: LogOptions = {}): Promise<Log> {
    const log = new Log(options);
    await log.ready();
    return log;
  }

  /**
   * Creates a log, or checks an existing one. With `signingKey` (a key file or
   * the key text, from `evident keygen`) the log signs checkpoints as the key's
   * name: its first entry declares the origin and verifier key, and its first
   * checkpoints are signed now. A log signs from its first entry or never:
   * one that has entries and does not sign is refused.
   */
  static async init(options: InitOptions = {}): Promise<void> {
    const warn = (message: string) => process.emitWarning(`evident: ${message}`);
    // A key that cannot sign is refused before anything is created.
    const signer = options.signingKey === undefined ? null : checkpointKey(loadSignerKey(options.signingKey, warn));
    const log = new Log({ ...options, create: true, key: options.key ?? options.signingKey });
    try {
      await log.ready();
      if (options.signingKey !== undefined) await log.#declareSigning(options.signingKey);
    } catch (error) {
      // Several inits at once with one key: the first declares it, and the others find their work done.
      if (signer === null || !(await Log.#declares(options, verifierKeyOf(signer)))) throw error;
    } finally {
      await log.close();
    }
    if (options.signingKey === undefined) return;
    const key = options.key ?? options.signingKey;
    const signed = new Log({ ...options, create: false, key });
    await signed.ready();
    await signed.close(); // signs the checkpoint covering the first entry
  }

  /**
   * Re-anchors a signing log whose entries no longer match its signed
   * checkpoint (or whose checkpoint is gone): records who and why in a new
   * entry, and signs a checkpoint of the history it now holds. Witnesses that
   * cosigned the old one will refuse the new one if it does not extend it:
   * that is the point. Returns the new checkpoint note.
   */
  static async reanchor(options: ReanchorOptions): Promise<string> {
    const log = new Log(options);
    log.#lenient = true;
    try {
      await log.ready();
      return await (log.#integrator as Integrator).reanchor(
        (input) => log.#append([prepareEntry(input, log.#maxEntryBytes, true)]).then((entries) => entries[0] as Entry),
        options.actor,
        options.reason,
      );
    } finally {
      await log.close();
    }
  }

  /** Opens the log if no one has yet. Concurrent first callers share one open. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new LogClosedError());
    return this.#open();
  }

  #open(): Promise<void> {
    this.#opening ??= this.#openOnce().catch(async (error: unknown) => {
      this.#opening = null; // a later call may try again (the directory may appear)
      this.#integrator = null;
      await this.#store.close().catch(() => undefined);
      throw error;
    });
    return this.#opening;
  }

  async #openOnce(): Promise<void> {
    const readOnly = this.#options.readOnly ?? false;
    await this.#store.open({
      create: this.#options.create ?? false,
      readOnly,
      onRecover: (recovery) => this.emit('recovered', recovery),
    });
    const identity = await this.#identityOf(readOnly);
    this.#identity = identity;
    const key =
      identity === null || readOnly
        ? null
        : signerFor(identity, await this.#keySource(identity), (message) => process.emitWarning(`evident: ${message}`));
    const integrator = new Integrator(this.#store, {
      identity,
      key,
      intervalMs: this.#intervalMs,
      readOnly,
      onCheckpoint: (checkpoint, note) =>
        this.emit('checkpoint', { size: checkpoint.size, root: checkpoint.root, note }),
      onError: (error) => process.emitWarning(`evident: checkpointing ${this.location}: ${(error as Error).message}`),
    });
    this.#integrator = integrator;
    if (readOnly) return;
    if (identity !== null) await integrator.open((await this.#store.entries.head()).size, this.#lenient);
    else if (!emptyTreeCheckpoint(await this.#store.checkpoints.read())) {
      // A checkpoint of the empty tree vouches for no entry: an `init --key` that another writer's first entry
      // beat left it. Anything larger was signed over entries this first entry is not the start of.
      throw new HistoryMismatchError(
        `the log in ${this.location} has a signed checkpoint but its first entry declares no key: ` +
          'its entries were replaced',
      );
    }
  }

  /**
   * The signing identity the log's first entry declares, or null. A writer
   * refuses a first entry that is not seq 0 or not an entry; a reader takes
   * the log as one that does not sign, and verify names what is wrong.
   */
  async #identityOf(readOnly: boolean): Promise<SigningIdentity | null> {
    try {
      const firstTwo: Entry[] = [];
      for await (const entry of this.#store.entries.read({ limit: 2 })) firstTwo.push(entry);
      const [first = null, second] = firstTwo;
      // What the log is comes from its first entry: a writer takes it only if it is intact and the next follows it.
      if (first !== null && (first.seq !== 0 || leafHashOfText(hashedText(first)) !== first.hash)) {
        throw new LogCorruptError(`the first entry in ${this.location} is not intact (run evident verify)`);
      }
      if (first !== null && second !== undefined && second.prev !== first.hash) {
        throw new LogCorruptError(
          `the second entry in ${this.location} does not follow the first (run evident verify)`,
        );
      }
      return identityOf(first);
    } catch (error) {
      if (readOnly && error instanceof LogCorruptError) return null;
      throw error;
    }
  }

  async #keySource(identity: SigningIdentity): Promise<string> {
    const source = this.#options.key ?? process.env.EVIDENT_KEY ?? (await this.#store.keyFile());
    if (source === null || source === undefined || source === '') {
      throw new EvidentError(
        'EVIDENT_NO_KEY',
        `the log in ${this.location} signs checkpoints as ${identity.origin}: give its key (--key, the key option, or $EVIDENT_KEY)`,
      );
    }
    return source;
  }

  /** Under the sequencer: one batch, committed and handed to the integrator. */
  async #commit(batch: Batch): Promise<CommittedBatch> {
    const integrator = this.#integrator as Integrator;
    integrator.assertWritable();
    const committed = await this.#store.entries.commit(batch);
    integrator.committed(committed);
    return committed;
  }

  /** Appends one entry; resolves with it once it is durable. */
  async append(input: EntryInput, options: AppendOptions = {}): Promise<Entry> {
    const [entry] = await this.appendBatch([input], options);
    return entry as Entry;
  }

  /** Appends entries atomically: all in one commit, consecutive, or none. */
  appendBatch(inputs: readonly EntryInput[], options: AppendOptions = {}): Promise<Entry[]> {
    return this.#prepared(inputs, options, (prepared) => this.#append(prepared));
  }

  /**
   * Appends entries atomically, as appendBatch() does, and resolves with how
   * many were appended and their first and last seq instead of the entries:
   * for bulk loads, which need not pay for building every entry back.
   */
  appendBulk(inputs: readonly EntryInput[], options: AppendOptions = {}): Promise<Appended> {
    return this.#prepared(inputs, options, (prepared) =>
      prepared.length === 0
        ? Promise.resolve({ appended: 0, first: null, last: null })
        : this.#sequencer.appendBulk(prepared),
    );
  }

  /** Validates and encodes `inputs` in the caller, then queues them by `queue`; a bad one rejects, naming it. */
  #prepared<T>(
    inputs: readonly EntryInput[],
    options: AppendOptions,
    queue: (prepared: PreparedEntry[]) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new LogClosedError());
    let prepared: PreparedEntry[];
    try {
      prepared = prepareBatch(inputs, this.#maxEntryBytes, options.via);
    } catch (error) {
      return Promise.reject(error);
    }
    return queue(prepared);
  }

  /**
   * A port through which a worker thread uses this log: `new SharedLog(port)`
   * there appends, reads and asks for checkpoints and receipts as this Log
   * does, while the process keeps one store, one connection pool and one
   * queue. Transfer it to the worker (`transferList`); closing the log
   * closes every port it gave.
   */
  share(): MessagePort {
    if (this.#closed) throw new LogClosedError();
    const { port1, port2 } = new MessageChannel();
    this.#shared.add(port1);
    port1.once('close', () => this.#shared.delete(port1));
    serveShared(port1, {
      location: this.location,
      maxEntryBytes: this.#maxEntryBytes,
      append: (inputs) => this.appendBatch(inputs as EntryInput[]),
      appendBulk: (inputs) => this.appendBulk(inputs as EntryInput[]),
      head: () => this.head(),
      read: (query) => this.read(query),
      checkpoint: () => this.checkpoint(),
      receipt: (seq, options) => this.receipt(seq, options),
    });
    return port2;
  }

  #append(prepared: PreparedEntry[]): Promise<Entry[]> {
    if (prepared.length === 0) return Promise.resolve([]);
    return this.#sequencer.append(prepared);
  }

  /**
   * Queues an entry for the background writer and returns at once.
   * Throws InvalidEntryError for a bad entry and QueueFullError when
   * maxQueue events are waiting (nothing is dropped). A failed commit is
   * reported as an 'error' event and by the next flush() rejecting.
   */
  record(input: EntryInput): void {
    if (this.#closed) throw new LogClosedError();
    if (this.#sequencer.recorded >= this.#maxQueue) throw new QueueFullError(this.#maxQueue);
    this.#sequencer.record(prepareEntry(input, this.#maxEntryBytes));
  }

  /** Resolves when everything queued so far is durable; rejects if background events failed since the last flush. */
  flush(): Promise<void> {
    return this.#sequencer.flush();
  }

  /** The current head: size, last hash, last time. */
  async head(): Promise<Head> {
    await this.ready();
    return this.#store.entries.head();
  }

  /** Entries matching `query`, in order. Throws LogCorruptError on a malformed entry rather than skipping it. */
  async *read(query: ReadQuery = {}): AsyncGenerator<Entry> {
    const checked = checkedQuery(query);
    await this.ready();
    yield* this.#store.entries.read(checked);
  }

  /** The Merkle tree over every entry now in the log: its size and RFC 9162 root. */
  async treeHead(): Promise<TreeHead> {
    return this.#withTree(async (tree) => ({ size: tree.size, root: tree.root() }));
  }

  /** The root of the tree over the first `size` entries. */
  rootAt(size: number): Promise<Buffer> {
    return this.#withTree((tree) => tree.rootAt(size), size);
  }

  /** RFC 9162 inclusion proof of entry `seq` in the tree of `size` entries (default: the whole log). */
  inclusionProof(seq: number, size?: number): Promise<Buffer[]> {
    return this.#withTree((tree) => tree.inclusionProof(seq, size ?? tree.size), size);
  }

  /** RFC 9162 consistency proof from the tree of `size1` entries to that of `size2` (default: the whole log). */
  consistencyProof(size1: number, size2?: number): Promise<Buffer[]> {
    return this.#withTree((tree) => tree.consistencyProof(size1, size2 ?? tree.size), size2);
  }

  /** The hashes of C2SP tlog-tiles tile `level`/`index` of `width` hashes (256: a full tile), 32 bytes each. */
  tile(level: number, index: number, width = 256): Promise<Buffer> {
    return this.#withTree((tree) => tree.tile(level, index, width));
  }

  async #withTree<T>(work: (tree: Tree) => Promise<T>, size = 0): Promise<T> {
    await this.ready();
    const head = await this.#store.entries.head();
    if (!Number.isSafeInteger(size) || size < 0 || size > head.size) {
      throw new OutOfRangeError(`the log has ${head.size} entries, not ${size}`);
    }
    return (this.#integrator as Integrator).withTree(work, size);
  }

  /**
   * The latest signed checkpoint (C2SP tlog-checkpoint note), covering every
   * entry this process appended: signed now if this process is the log's
   * integrator, else the integrator's next one is waited for. Null for a log
   * that does not sign.
   */
  async checkpoint(): Promise<string | null> {
    await this.ready();
    const integrator = this.#integrator as Integrator;
    if (!this.#options.readOnly || this.#identity === null) return integrator.checkpoint();
    // A reader signs nothing: the stored checkpoint, if it is this log's.
    const note = await this.#store.checkpoints.read();
    if (note === null) {
      throw new HistoryMismatchError(
        `the log in ${this.location} signs as ${this.#identity.origin} but its checkpoint is gone (evident reanchor)`,
      );
    }
    trustCheckpoint(note, { log: this.#identity.verifierKey });
    return note;
  }

  /**
   * A receipt for entry `seq` (C2SP tlog-proof): its inclusion proof in the
   * newest checkpoint covering it, cosigned by witnesses where they have. If
   * no checkpoint covers it yet, one is signed (or waited for, up to `waitMs`).
   */
  async receipt(seq: number, options: { waitMs?: number } = {}): Promise<string> {
    await this.ready();
    const integrator = this.#integrator as Integrator;
    if (this.#identity === null) {
      throw new EvidentError(
        'EVIDENT_NO_KEY',
        `the log in ${this.location} does not sign checkpoints, so it gives no receipts`,
      );
    }
    const head = await this.#store.entries.head();
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= head.size) {
      throw new OutOfRangeError(`the log has no entry ${seq} (it has ${head.size})`);
    }
    const waitMs = options.waitMs ?? (this.#options.readOnly ? 0 : undefined);
    const known = await integrator.checkpointFor(seq, waitMs);
    const note = (await bestCosigned(this.#store.cosignatures, seq)) ?? known.note;
    const { size, root } = parseCheckpoint(openNote(note, [this.#identity.verifierKey]).text);
    const { leaves: leaf } = await this.#store.entries.leaves(seq, seq + 1);
    // Never a receipt that does not hold: the proof is checked against the signed root before it is given. A
    // stored tile that is wrong fails it with LogCorruptError, on which withTree rebuilds the tree from the
    // entries and asks again; if the entries themselves do not hold, the error stands.
    const proof = await integrator.withTree(async (tree) => {
      const path = await tree.inclusionProof(seq, size);
      try {
        verifyInclusion(seq, size, leaf, path, root);
      } catch {
        throw new LogCorruptError(
          `the tree in ${this.location} does not prove entry ${seq} in its checkpoint at ${size}`,
        );
      }
      return path;
    }, size);
    return formatReceipt({ index: seq, proof, checkpoint: note });
  }

  /** The newest checkpoint witnesses cosigned that covers more than `minSize` entries, else the latest signed one. */
  async cosignedCheckpoint(minSize = 0): Promise<string | null> {
    await this.ready();
    if (this.#identity === null) return null;
    return (await bestCosigned(this.#store.cosignatures, minSize)) ?? (await this.#store.checkpoints.read());
  }

  /**
   * The latest checkpoint signed, with the witnesses' cosignatures kept for
   * it (none yet, if they have not answered); null for a log that does not
   * sign. What `GET /checkpoint` serves: never an older one because it was
   * cosigned.
   */
  async latestCheckpoint(): Promise<string | null> {
    await this.ready();
    if (this.#identity === null) return null;
    const note = await this.#store.checkpoints.read();
    if (note === null) return null;
    // Only ever this log's own; a note checked once is not checked again (the server asks for each request).
    if (note !== this.#latestTrusted) {
      trustCheckpoint(note, { log: this.#identity.verifierKey });
      this.#latestTrusted = note;
    }
    return withKeptCosignatures(this.#store.cosignatures, note);
  }

  /**
   * Keeps a witness's cosigned copy of one of this log's checkpoints, for
   * receipts to carry: its lines by the `witnesses` keys (verifier keys, or
   * their text), each of which must verify; lines by other keys are dropped.
   */
  async addCosignatures(note: string, witnesses: readonly (PublicNoteKey | string)[]): Promise<Checkpoint> {
    await this.ready();
    const keys = witnesses.map((k) => (typeof k === 'string' ? parseVerifierKey(k) : k));
    return addCosignatures(this.#store.cosignatures, this.#identity, note, keys);
  }

  /** Checks the whole chain in one streaming pass (or ranges on threads); names the first bad entry. */
  async verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    await this.ready();
    const entries = this.#store.entries;
    const check = { threads: options.threads, onProgress: options.onProgress };
    const checkpoint = options.checkpoint ?? (this.#identity === null ? undefined : await this.#ownCheckpoint());
    if (checkpoint === undefined) return entries.verify(check);
    if (typeof checkpoint === 'string') return withoutCheckpoint(await entries.verify(check), checkpoint);
    const result = await this.#verifyAgainst(checkpoint, options.sinceCheckpoint === true, check);
    return locateRewrite(result, entries, this.#store.tiles, checkpoint);
  }

  async #verifyAgainst(checkpoint: TrustedCheckpoint, since: boolean, check: ChainCheck): Promise<VerifyResult> {
    const entries = this.#store.entries;
    if (!since) return verifyAgainst(entries, checkpoint, check);
    try {
      return await (this.#integrator as Integrator).withTree(
        (tree) => verifySince(entries, tree, checkpoint, check),
        checkpoint.size,
      );
    } catch (error) {
      if (error instanceof EvidentError && error.code !== 'EVIDENT_READ_FAILED') {
        return verifyAgainst(entries, checkpoint, check); // the stored tree cannot vouch: judge the entries alone
      }
      throw error;
    }
  }

  /**
   * A signing log's own stored checkpoint, trusted with the key its first
   * entry declares (plain verification checks the log against it); or why
   * there is none to check against.
   */
  async #ownCheckpoint(): Promise<TrustedCheckpoint | string> {
    const identity = this.#identity as SigningIdentity;
    const note = await this.#store.checkpoints.read();
    if (note === null) return `the log signs as ${identity.origin} but its checkpoint is gone`;
    try {
      return trustCheckpoint(note, { log: identity.verifierKey });
    } catch (error) {
      return `the log's checkpoint is not one it signed: ${(error as Error).message}`;
    }
  }

  /**
   * Drains what is queued; the log's integrator signs a checkpoint of the
   * whole log; then the store is released. Rejects if background events
   * failed, or the final checkpoint could not be signed.
   */
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
      const opened = await this.#opening.then(
        () => true,
        () => false,
      );
      if (opened) {
        try {
          await this.#integrator?.close();
        } catch (error) {
          failure ??= error;
        }
        await this.#store.close();
      }
    }
    // Workers' appends that were queued have been answered: the ports are closed after them.
    for (const port of this.#shared) port.close();
    if (failure !== null) throw failure;
  }

  /** Whether the log `options` name has a first entry declaring `verifierKey`. */
  static async #declares(options: InitOptions, verifierKey: string): Promise<boolean> {
    const log = new Log({ store: options.store, readOnly: true });
    try {
      await log.ready();
      return log.#identity !== null && verifierKeyOf(log.#identity.verifierKey) === verifierKey;
    } catch {
      return false;
    } finally {
      await log.close();
    }
  }

  /** Log.init's part for a signing log: checkpoint 0 stored, then the first entry declaring the key. */
  async #declareSigning(source: string): Promise<void> {
    const key = checkpointKey(loadSignerKey(source, (message) => process.emitWarning(`evident: ${message}`)));
    const store = this.#store;
    const signsAs = (declared: SigningIdentity) =>
      new InvalidOptionError(
        `the log in ${this.location} already signs as ${declared.origin} with ${verifierKeyOf(declared.verifierKey)}`,
      );
    // Entries found where none were when the log was opened: another init may have declared its key meanwhile.
    const notEmpty = async (size: number) => {
      let first: Entry | null = null;
      for await (const entry of store.entries.read({ fromSeq: 0, limit: 1 })) first = entry;
      const declared = identityOf(first);
      return declared !== null
        ? signsAs(declared)
        : new InvalidOptionError(
            `the log in ${this.location} has ${size} entries and does not sign: a log signs from its first entry ` +
              '(start a signing log in a new directory)',
          );
    };
    const declared = this.#identity;
    if (declared !== null) {
      if (verifierKeyOf(declared.verifierKey) !== verifierKeyOf(key)) throw signsAs(declared);
    } else {
      const head = await store.entries.head();
      if (head.size > 0) throw await notEmpty(head.size);
      const empty = signNote(formatCheckpoint({ origin: key.name, size: 0, root: emptyRoot(), extensions: [] }), [
        ed25519Signer(key),
      ]);
      let stored = await store.checkpoints.read();
      if (stored === null && !(await store.checkpoints.replace(null, empty))) stored = await store.checkpoints.read();
      if (stored !== null) {
        const checkpoint = checkpointOfNote(stored);
        if (checkpoint.size !== 0) {
          throw new HistoryMismatchError(`the log in ${this.location} is empty but its checkpoint covers entries`);
        }
        if (!isSignedBy(stored, key)) {
          // Another init, with another key, stored its checkpoint first and is about to declare that key.
          const size = (await store.entries.head()).size;
          if (size > 0) throw await notEmpty(size);
          throw new InvalidOptionError(
            `the log in ${this.location} is being declared for ${checkpoint.origin} by another init (its empty ` +
              'checkpoint is stored); if none is running, remove that checkpoint and init again',
          );
        }
      }
      try {
        await store.entries.commit(new Batch([prepareEntry(initEntry(key), this.#maxEntryBytes, true)], 0));
      } catch (error) {
        const size = (await store.entries.head()).size;
        throw size > 0 ? await notEmpty(size) : error;
      }
    }
    if (!source.startsWith('PRIVATE+KEY+')) await store.setKeyFile(source);
  }
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive integer, not ${value}`);
  }
  return value;
}

/** A signing log's chain verdict when it has no checkpoint of its own to check against: a failure, after any of the chain's. */
function withoutCheckpoint(result: VerifyResult, why: string): VerifyResult {
  if (!result.ok) return result;
  const failure = { seq: result.size, line: result.size + 1, offset: result.bytes, reason: 'no-checkpoint' as const };
  return { ...result, ok: false, failure: { ...failure, message: `${why} (evident reanchor)` } };
}

/** Whether `note` is absent or a checkpoint of the empty tree (its signature unchecked: it vouches for nothing). */
function emptyTreeCheckpoint(note: string | null): boolean {
  if (note === null) return true;
  try {
    return checkpointOfNote(note).size === 0;
  } catch {
    return false;
  }
}

/** Whether `note` carries a signature by `key` that verifies. */
function isSignedBy(note: string, key: PrivateNoteKey): boolean {
  try {
    openNote(note, [key]);
    return true;
  } catch (error) {
    if (error instanceof NoteError) return false;
    throw error;
  }
}
