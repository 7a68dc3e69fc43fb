/**
 * The embedded backend: a directory holding one JSONL file.
 *
 *   <dir>/log.jsonl     the record: one canonical JSON entry per line
 *   <dir>/lock          empty; flock(2) on it grants the right to append
 *   <dir>/quarantine/   torn last lines moved aside after a crash
 *
 * Only log.jsonl is the record; the rest is rebuilt from it as needed.
 *
 * Commit, under the lock: make sure the lock and log files are still the
 * ones at their paths; bring the cached head up to date (O(1) when nothing
 * else wrote, else reading only the last line); seal; one write; one
 * fdatasync; unlock. All of it runs on the addon's thread (native/commit.c),
 * so the lock is never held waiting for this event loop; when the log is not
 * in its plain state the addon declines and the commit runs from here, where
 * the thread that synced still unlocks. A failed write or sync is truncated
 * away before unlocking.
 * A signing log then hands the batch to its publisher (publisher.ts), which
 * integrates the tree and signs off the commit path.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { ChainVerifier, parseEntry } from '../../chain.js';
import { EMPTY_HEAD, type Entry, type Head, hashedText, leafHashOfText } from '../../entry.js';
import { EvidentError, InvalidOptionError, LogCorruptError, LogNotFoundError, LogWriteError } from '../../errors.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import { verifyInclusion } from '../../merkle/verify.js';
import { leafHashes } from '../../native.js';
import { checkpointOfNote, parseCheckpoint } from '../../note/checkpoint.js';
import { parseVerifierKey } from '../../note/keys.js';
import { openNote, splitNote } from '../../note/note.js';
import type { TrustedCheckpoint } from '../../note/trust.js';
import type {
  CommittedBatch,
  ReadQuery,
  Recovery,
  Store,
  TreeHead,
  UnsealedBatch,
  VerifyOptions,
  VerifyResult,
} from '../store.js';
import { Checkpointer, readCheckpointNote } from './checkpointer.js';
import { type LogConfig, readConfig, signerFor } from './config.js';
import { type FileStat, type Files, nodeFiles } from './files.js';
import { CHUNK, iterateLines, lowerBound, readFully, readLastLine, readLineAt, readWholeFile } from './lines.js';
import { PathLock } from './path-lock.js';
import { Publisher } from './publisher.js';
import { FileTree } from './tree.js';
import { verifyLog, verifyLogWithCheckpoint, verifyRange } from './verify.js';

export type Durability = 'fsync' | 'write';

export interface FileStoreOptions {
  /** 'fsync' (default): a commit returns once fdatasync says the bytes are on stable storage. 'write': once the kernel has them (survives the process dying, not the machine). */
  durability?: Durability | undefined;
  /** Create the directory and log file if missing (otherwise a missing log is an error). */
  create?: boolean | undefined;
  /** Open for reading only: no lock, no recovery, never a byte written (verify, log, tail). */
  readOnly?: boolean | undefined;
  /** The file layer; tests substitute one that fails or counts. */
  files?: Files | undefined;
  /** Told when a torn last line is moved to quarantine. */
  onRecover?: ((recovery: Recovery) => void) | undefined;
  /**
   * Told when the Merkle tree could not be brought up to date after a commit
   * (the entries are durable; the tree is derived and is rebuilt from the log
   * on the next commit).
   */
  onTreeError?: ((error: unknown) => void) | undefined;
  /** The signing key for a log whose config.json says it signs: a key (PRIVATE+KEY+...) or a file holding one. Default: $EVIDENT_KEY, then the config's keyFile. */
  key?: string | undefined;
  /** Sign a checkpoint at most this often (ms); 0 (default): after every commit. Always on close. */
  checkpointIntervalMs?: number | undefined;
  /** Keep the Merkle tree (default true). Without it there are no proofs, checkpoints or receipts. */
  merkleTree?: boolean | undefined;
}

/** How much of the log #readLeavesAt reads per call: within what Files reads synchronously. */
const LEAF_READ = 64 * 1024;

export const LOG_FILE = 'log.jsonl';
export const LOCK_FILE = 'lock';
export const QUARANTINE_DIR = 'quarantine';
export const COSIGNATURES_DIR = 'cosignatures';
/** Empty; flock(2) on it is the integrator lease of a signing log (publisher.ts). */
export const INTEGRATOR_FILE = 'integrator';

export class FileStore implements Store {
  readonly dir: string;
  readonly logPath: string;
  readonly lockPath: string;
  readonly #files: Files;
  readonly #durability: Durability;
  readonly #create: boolean;
  readonly #readOnly: boolean;
  readonly #onRecover: ((recovery: Recovery) => void) | undefined;
  readonly #onTreeError: ((error: unknown) => void) | undefined;
  readonly #tree: FileTree;
  readonly #keepTree: boolean;
  readonly #key: string | undefined;
  readonly #checkpointIntervalMs: number;
  #config: LogConfig | null = null;
  #checkpointer: Checkpointer | null = null;
  /** A signing log's integrate-and-publish steps; null for a log that does not sign. */
  #publisher: Publisher | null = null;
  readonly #lock: PathLock;
  #logFd = -1;
  /** Descriptors of log files replaced at our path, kept open until close: a reader may still be using one. */
  #retiredFds: number[] = [];
  /** The tail of the queue of this process's callers waiting for the append lock. */
  #inProcess: Promise<void> = Promise.resolve();
  /** This process's callers holding or queued for the append lock. */
  #lockUsers = 0;
  /** Where #readLeavesAt reads others' lines (grown as needed, kept). */
  #lines = Buffer.allocUnsafe(64 * 1024);
  /** Identity of the log file our descriptor points at, to notice it replaced or removed at its path. */
  #logFile: FileStat | null = null;
  /** Head and end offset as of our last look under the lock; null when they must be re-read from the end. */
  #known: { head: Head; end: number } | null = null;

  constructor(dir: string, options: FileStoreOptions = {}) {
    this.dir = dir;
    this.logPath = join(dir, LOG_FILE);
    this.lockPath = join(dir, LOCK_FILE);
    this.#files = options.files ?? nodeFiles;
    this.#durability = options.durability ?? 'fsync';
    this.#create = (options.create ?? false) && !options.readOnly;
    this.#readOnly = options.readOnly ?? false;
    this.#onRecover = options.onRecover;
    this.#onTreeError = options.onTreeError;
    this.#tree = new FileTree(dir, this.#files, this.#readOnly);
    this.#keepTree = options.merkleTree ?? true;
    this.#key = options.key;
    this.#checkpointIntervalMs = options.checkpointIntervalMs ?? 0;
    this.#lock = new PathLock(this.#files, this.lockPath, constants.O_WRONLY | constants.O_APPEND);
  }

  /** The log's config (origin and verifier key of a signing log), or null; known once open. */
  get config(): LogConfig | null {
    return this.#config;
  }

  async open(): Promise<void> {
    const files = this.#files;
    if (this.#readOnly) {
      this.#logFd = await this.#openLog();
      this.#config = readConfig(this.dir);
      return;
    }
    if (this.#create) {
      await files.mkdir(this.dir);
    } else if ((await files.stat(this.logPath)) === null) {
      throw new LogNotFoundError(this.dir);
    }
    const created = this.#create && (await files.stat(this.logPath)) === null;
    await this.#lock.fd();
    this.#logFd = await this.#openLog();
    if (created) await syncDir(files, this.dir);
    this.#config = readConfig(this.dir);
    if (this.#config !== null && !this.#keepTree) {
      throw new InvalidOptionError('this log signs checkpoints, so it must keep its Merkle tree (merkleTree: false)');
    }
    if (this.#config === null) {
      await this.#locked(() => this.#refresh()); // recovers a torn tail now, not at the first append
      return;
    }
    // A signing log integrates and signs after each commit (publisher.ts); a
    // log that does not sign builds its tree on demand (a tree head, a
    // proof), extending it from where it was left, so appends pay nothing.
    const key = signerFor(this.#config, this.#key ?? process.env.EVIDENT_KEY);
    this.#checkpointer = new Checkpointer(this.dir, files, { key, intervalMs: this.#checkpointIntervalMs });
    this.#publisher = new Publisher(
      this.#tree,
      this.#checkpointer,
      new PathLock(files, join(this.dir, INTEGRATOR_FILE), constants.O_WRONLY),
      {
        readLeaves: this.#readLeaves,
        readLeavesAt: (count, start, end) => this.#readLeavesAt(count, start, end),
        head: () => this.#locked(() => this.#durableHead()),
        tryHead: () => this.#tryLocked(() => this.#durableHead()),
        bytes: async () => (await this.#files.fstat(this.#logFd)).size,
        lockWaiting: () => this.#lock.waiting(),
        sync: async () => {
          if (this.#durability === 'write') await this.#files.fdatasync(this.#logFd);
        },
      },
      (error) => this.#onTreeError?.(error),
    );
    const head = await this.#locked(() => this.#refresh());
    await this.#publisher.open(head.size);
  }

  async #openLog(): Promise<number> {
    const flags = this.#readOnly
      ? constants.O_RDONLY
      : constants.O_RDWR | constants.O_APPEND | (this.#create ? constants.O_CREAT : 0);
    try {
      const fd = await this.#files.open(this.logPath, flags, 0o644);
      this.#logFile = await this.#files.fstat(fd);
      return fd;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new LogNotFoundError(this.dir);
      throw error;
    }
  }

  commit(batch: UnsealedBatch): Promise<CommittedBatch> {
    if (this.#readOnly) return Promise.reject(new EvidentError('EVIDENT_READ_ONLY', 'the log was opened read-only'));
    return this.#queued(async () => {
      const committed = await this.#commitNatively(batch);
      return committed ?? this.#lock.hold(() => this.#commitHere(batch));
    });
  }

  /**
   * The commit on the addon's thread (native/commit.c), so that the append
   * lock's hold never waits for this event loop; null if there is no addon
   * commit, the log's identity is not known yet, or the addon declined (the
   * log is not in its plain state: then #commitHere judges and repairs).
   */
  async #commitNatively(batch: UnsealedBatch): Promise<CommittedBatch | null> {
    const commitBatch = this.#files.commitBatch;
    const known = this.#known;
    const log = known?.head.log ?? null;
    if (commitBatch === undefined || known === null || log === null || known.head.ts === null) return null;
    const { head } = known;
    const result = await this.#lock.commitNatively(
      (lockFd) =>
        commitBatch({
          lockFd,
          lockPath: this.lockPath,
          logFd: this.#logFd,
          logPath: this.logPath,
          sync: this.#durability === 'fsync',
          yieldCpu: this.#publisher?.integrator ?? false, // its step runs right after this commit
          known: { end: known.end, size: head.size, hash: Buffer.from(head.hash, 'hex'), ts: head.ts as string },
          logId: log,
          parts: batch.templates(log),
          count: batch.count,
          maxBytes: batch.maxBytes,
        }),
      (result) => result.status === 'failed',
    );
    if (result.status === 'declined') return null;
    if (result.status === 'failed') {
      try {
        await this.#rollBack(result.start);
      } finally {
        this.#lock.release();
      }
      throw this.#writeError(batch.count, result.error);
    }
    const prev = result.leaves.subarray(0, HASH_SIZE);
    const mine = result.leaves.subarray(HASH_SIZE);
    const after: Head = {
      log,
      size: result.firstSeq + batch.count,
      hash: mine.toString('hex', mine.length - HASH_SIZE),
      ts: result.ts,
    };
    this.#known = { head: after, end: result.end };
    this.#publisher?.committed({ from: result.firstSeq, leaves: mine, prev, start: result.start, end: result.end });
    return { prev: prev.toString('hex'), head: after, leaves: mine };
  }

  /** The commit from here, under the append lock: the head re-read (and a torn tail repaired), sealed in JavaScript. */
  async #commitHere(batch: UnsealedBatch): Promise<CommittedBatch> {
    const head = await this.#refresh();
    const sealed = batch.seal(head);
    const start = this.#known?.end ?? 0;
    const bytes = Buffer.from(sealed.text, 'utf8');
    try {
      await writeAll(this.#files, this.#logFd, bytes);
      if (this.#durability === 'fsync') await this.#lock.syncAndRelease(this.#logFd);
    } catch (error) {
      await this.#rollBack(start);
      throw this.#writeError(batch.count, error);
    }
    const end = start + bytes.length;
    this.#known = { head: sealed.head, end };
    // Other writers may already append (the lock is released once synced), but this process's callers still
    // queue behind this one, so the publisher receives its commits in order.
    const prev = Buffer.from(head.hash, 'hex');
    this.#publisher?.committed({ from: head.size, leaves: sealed.leaves, prev, start, end });
    return { prev: head.hash, head: sealed.head, leaves: sealed.leaves };
  }

  #writeError(count: number, error: unknown): LogWriteError {
    const what = count === 1 ? '1 entry' : `${count} entries`;
    return new LogWriteError(`could not append ${what} to ${this.logPath}: ${(error as Error).message}`, {
      cause: error,
    });
  }

  async head(): Promise<Head> {
    if (!this.#readOnly) return this.#locked(() => this.#refresh());
    const { size } = await this.#files.fstat(this.#logFd);
    const { last } = await readLastLine(this.#files, this.#logFd, size);
    return last === null ? EMPTY_HEAD : headOf(entryOf(last.text, last.offset));
  }

  /** Runs `work` holding the append lock; always unlocks, even when `work` throws. */
  #locked<T>(work: () => Promise<T>): Promise<T> {
    return this.#queued(() => this.#lock.hold(work));
  }

  /**
   * Runs `work` once this process's earlier users of the append lock are
   * done. flock excludes other descriptors, not our own: a second caller in
   * this process would "take" the lock we hold, and its unlock would release
   * it under the first. So callers in this process queue here first.
   */
  async #queued<T>(work: () => Promise<T>): Promise<T> {
    const before = this.#inProcess;
    let release = () => {};
    this.#inProcess = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#lockUsers++;
    await before;
    try {
      return await work();
    } finally {
      this.#lockUsers--;
      release();
    }
  }

  /**
   * #locked(work) if no caller of this process holds or awaits the append
   * lock and no other writer holds it; else null, at once.
   */
  async #tryLocked<T>(work: () => Promise<T>): Promise<T | null> {
    if (this.#lockUsers > 0) return null;
    let release = () => {};
    this.#inProcess = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#lockUsers++;
    try {
      if ((await this.#lock.tryAcquire()) === null) return null;
      try {
        return await work();
      } finally {
        this.#lock.release();
      }
    } finally {
      this.#lockUsers--;
      release();
    }
  }

  /** Under the append lock: the number of entries, all durable, and where the last one ends. */
  async #durableHead(): Promise<{ size: number; end: number }> {
    const { size } = await this.#refresh();
    return { size, end: this.#known?.end ?? 0 };
  }

  /** Under the lock: the current head, reading only what changed since we last looked. */
  async #refresh(): Promise<Head> {
    const files = this.#files;
    let stat = await files.stat(this.logPath); // one call: identity and size
    if (stat === null) throw new LogCorruptError(`${this.logPath} was removed while the log was open`);
    if (!sameFile(stat, this.#logFile)) {
      // Replaced under us (a checkout, a restore): follow the path, trust nothing cached.
      this.#retiredFds.push(this.#logFd);
      this.#logFd = await this.#openLog();
      this.#known = null;
      stat = await files.fstat(this.#logFd);
    }
    const known = this.#known;
    if (known !== null && stat.size === known.end) return known.head;
    if (known !== null && stat.size < known.end) {
      throw new LogCorruptError(
        `${this.logPath} shrank from ${known.end} to ${stat.size} bytes while open: entries were removed outside evident`,
      );
    }
    const { last, completeEnd } = await readLastLine(files, this.#logFd, stat.size);
    if (completeEnd < stat.size) await this.#quarantine(completeEnd, stat.size);
    if (last === null) {
      this.#known = { head: EMPTY_HEAD, end: 0 };
      return EMPTY_HEAD;
    }
    const entry = entryOf(last.text, last.offset);
    if (known !== null && known.head.size > entry.seq + 1) {
      throw new LogCorruptError(`${this.logPath} went back from ${known.head.size} entries to ${entry.seq + 1}`);
    }
    const head = headOf(entry);
    this.#known = { head, end: completeEnd };
    return head;
  }

  /**
   * The leaf hashes of the `count` entries whose lines are bytes [start, end)
   * — what other writers appended between two of our commits — searched for
   * in the bytes by the addon in one call (native/scan.c: a canonical line's
   * top-level `prev` is its last, and its `hash` the last before that),
   * instead of searching the log and parsing every entry. What it finds must
   * chain — each `prev` the `hash` before it — so a misread line cannot slip
   * into the tree. Read in chunks, a page-cache copy each (the bytes were just
   * written), not a thread-pool round trip, into one buffer kept for it (a
   * new one each time was garbage for the collector at every step). Null if
   * anything is off (then they are read the ordinary way).
   */
  async #readLeavesAt(count: number, start: number, end: number) {
    const length = end - start;
    if (count <= 0 || length > 16 << 20) return null;
    if (this.#lines.length < length) this.#lines = Buffer.allocUnsafe(Math.max(length, 2 * this.#lines.length));
    const bytes = this.#lines.subarray(0, length);
    if ((await readFully(this.#files, this.#logFd, bytes, length, start, LEAF_READ)) !== length) return null;
    const hashes = leafHashes(bytes, count);
    if (hashes === null) return null;
    return { leaves: hashes.subarray(HASH_SIZE), prev: hashes.subarray(0, HASH_SIZE) };
  }

  /** Moves bytes [from, to) — a line whose write never completed — into quarantine/, then cuts them off. */
  async #quarantine(from: number, to: number): Promise<void> {
    const files = this.#files;
    const bytes = Buffer.allocUnsafe(to - from);
    await readFully(files, this.#logFd, bytes, bytes.length, from);
    const dir = join(this.dir, QUARANTINE_DIR);
    await files.mkdir(dir);
    const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-at-${from}.partial`);
    await files.writeFile(file, bytes);
    const fd = await files.open(file, constants.O_RDONLY);
    try {
      await files.fsync(fd);
    } finally {
      await files.close(fd);
    }
    await syncDir(files, dir);
    await files.ftruncate(this.#logFd, from);
    await files.fdatasync(this.#logFd);
    this.#onRecover?.({ offset: from, bytes: bytes.length, file });
  }

  /** After a failed append: cut the file back to `end`. If even that fails, forget the head so the next commit re-reads it and quarantines the torn bytes. */
  async #rollBack(end: number): Promise<void> {
    try {
      await this.#files.ftruncate(this.#logFd, end);
      await this.#files.fdatasync(this.#logFd);
    } catch {
      this.#known = null; // the commit's own error is what the caller needs; recovery happens on the next commit
    }
  }

  async *read(query: ReadQuery): AsyncGenerator<Entry> {
    const files = this.#files;
    const fd = this.#logFd;
    const { size } = await files.fstat(fd);
    let start = 0;
    if (query.fromSeq !== undefined && query.fromSeq > 0) {
      const fromSeq = query.fromSeq;
      start = await lowerBound(files, fd, size, (text) => entryOf(text, -1).seq >= fromSeq);
    }
    if (query.since !== undefined) {
      const since = query.since;
      start = Math.max(start, await lowerBound(files, fd, size, (text) => entryOf(text, -1).ts >= since));
    }
    let count = 0;
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return;
    for await (const line of iterateLines(files, fd, start, size)) {
      const entry = entryOf(line.text, line.offset);
      if (query.toSeq !== undefined && entry.seq > query.toSeq) return;
      if (query.until !== undefined && entry.ts > query.until) return;
      if (query.fromSeq !== undefined && entry.seq < query.fromSeq) continue;
      if (query.since !== undefined && entry.ts < query.since) continue;
      if (query.actor !== undefined && entry.actor !== query.actor) continue;
      if (query.action !== undefined && !matchesAction(entry.action, query.action)) continue;
      if (query.target !== undefined && !entry.targets?.includes(query.target)) continue;
      yield entry;
      if (++count >= limit) return;
    }
  }

  treeHead(): Promise<TreeHead> {
    return this.#withTree(async () => ({ size: this.#tree.size, root: this.#tree.root() }));
  }

  rootAt(size: number): Promise<Buffer> {
    return this.#withTree(() => this.#tree.rootAt(size));
  }

  inclusionProof(index: number, size: number): Promise<Buffer[]> {
    return this.#withTree(() => this.#tree.inclusionProof(index, size));
  }

  consistencyProof(size1: number, size2: number): Promise<Buffer[]> {
    return this.#withTree(() => this.#tree.consistencyProof(size1, size2));
  }

  async checkpoint(): Promise<string | null> {
    if (this.#config === null) return null;
    await this.#publisher?.settled(); // one that covers this process's appends
    return readCheckpointNote(this.#files, this.dir);
  }

  async addCosignatures(note: string): Promise<void> {
    const key = this.#verifierKey();
    const opened = openNote(note, [key]);
    const checkpoint = parseCheckpoint(opened.text);
    if (checkpoint.origin !== key.name)
      throw new LogCorruptError(`a checkpoint for ${checkpoint.origin}, not this log`);
    const dir = join(this.dir, COSIGNATURES_DIR);
    const path = join(dir, `${leafHashOfText(opened.text)}`);
    const existing = await this.#readText(path);
    const sigs = existing === null ? [] : splitSignatures(existing);
    for (const line of splitSignatures(note)) if (!sigs.includes(line)) sigs.push(line);
    await this.#files.mkdir(dir);
    await this.#files.replaceFile(path, Buffer.from(`${opened.text}\n${sigs.join('')}`));
  }

  async cosignedCheckpoint(minSize = 0): Promise<string | null> {
    const latest = await this.checkpoint();
    if (latest === null) return null;
    const dir = join(this.dir, COSIGNATURES_DIR);
    let best: { size: number; note: string } | null = null;
    for (const name of await this.#files.list(dir)) {
      const note = await this.#readText(join(dir, name));
      if (note === null) continue;
      const size = checkpointOfNote(note).size;
      if (size > minSize && (best === null || size > best.size)) best = { size, note };
    }
    return best?.note ?? latest;
  }

  #verifierKey() {
    if (this.#config === null) throw new EvidentError('EVIDENT_NO_KEY', 'this log does not sign checkpoints');
    return parseVerifierKey(this.#config.verifierKey);
  }

  async #readText(path: string): Promise<string | null> {
    return (await readWholeFile(this.#files, path, 64 * 1024))?.toString('utf8') ?? null;
  }

  /**
   * Runs `work` on a tree brought up to the log's current head: a signing
   * log's through its publisher; a read-only log's in memory; otherwise under
   * the append lock, which also guards the tree's files.
   */
  async #withTree<T>(work: () => Promise<T>): Promise<T> {
    if (!this.#keepTree) {
      throw new InvalidOptionError('this log was opened without its Merkle tree (merkleTree: false)');
    }
    if (this.#readOnly) {
      await this.#tree.sync((await this.head()).size, this.#readLeaves);
      return work();
    }
    if (this.#publisher !== null) {
      const { size } = await this.#locked(() => this.#refresh());
      return this.#publisher.withTree(size, work);
    }
    return this.#locked(async () => {
      await this.#tree.sync((await this.#refresh()).size, this.#readLeaves);
      await this.#tree.persistIfDue();
      return work();
    });
  }

  /** The leaf hashes of entries [from, to), read from the log (for building the tree). */
  #readLeaves = async (from: number, to: number): Promise<{ leaves: Buffer; prev: Buffer | null }> => {
    if (from >= to) return { leaves: Buffer.alloc(0), prev: null };
    return (await this.#scanLeaves(from, to)) ?? this.#parseLeaves(from, to);
  };

  /**
   * #readLeaves through the addon's scan (scan.c, as #readLeavesAt), a chunk
   * of lines at a time from where entry `from` starts (found by seq): ~0.2 µs
   * an entry instead of a parse each (~3 µs), which building the tree of a
   * large log — at open, on a lease taken over, for a proof of a log that
   * does not sign — otherwise spends. The first and last lines' seq are
   * checked and the run must chain across chunks; null if anything is off
   * (then #parseLeaves reads, and judges, the entries one by one).
   */
  async #scanLeaves(from: number, to: number): Promise<{ leaves: Buffer; prev: Buffer } | null> {
    const files = this.#files;
    const fd = this.#logFd;
    const { size } = await files.fstat(fd);
    let position = from === 0 ? 0 : await lowerBound(files, fd, size, (text) => entryOf(text, -1).seq >= from);
    const first = await readLineAt(files, fd, position, size);
    if (first === null || entryOf(first.text, first.offset).seq !== from) return null;
    const leaves = Buffer.allocUnsafe((to - from) * HASH_SIZE);
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size - position)));
    let prev: Buffer | null = null;
    let lastStart = position;
    for (let done = 0; done < to - from; ) {
      const length = await readFully(files, fd, chunk, Math.min(chunk.length, size - position), position);
      const bytes = chunk.subarray(0, length);
      let lines = 0;
      let end = 0;
      for (let at = bytes.indexOf(10); at !== -1 && lines < to - from - done; at = bytes.indexOf(10, at + 1)) {
        lastStart = position + end;
        lines++;
        end = at + 1;
      }
      if (lines === 0) return null; // the end of the file, or a line longer than a chunk
      const hashes = leafHashes(bytes.subarray(0, end), lines);
      if (hashes === null) return null;
      const linked = hashes.subarray(0, HASH_SIZE);
      if (prev === null) prev = Buffer.from(linked);
      else if (!linked.equals(leaves.subarray((done - 1) * HASH_SIZE, done * HASH_SIZE))) return null;
      hashes.copy(leaves, done * HASH_SIZE, HASH_SIZE);
      done += lines;
      position += end;
    }
    const last = await readLineAt(files, fd, lastStart, size);
    if (last === null || entryOf(last.text, last.offset).seq !== to - 1) return null;
    return { leaves, prev: prev as Buffer };
  }

  /** #readLeaves entry by entry (from < to), through read(): every line parsed and judged. */
  async #parseLeaves(from: number, to: number): Promise<{ leaves: Buffer; prev: Buffer | null }> {
    const leaves = Buffer.allocUnsafe((to - from) * HASH_SIZE);
    let prev: Buffer | null = null;
    let count = 0;
    for await (const entry of this.read({ fromSeq: from, toSeq: to - 1 })) {
      prev ??= Buffer.from(entry.prev, 'hex');
      if (count < to - from && leaves.write(entry.hash, count * HASH_SIZE, HASH_SIZE, 'hex') !== HASH_SIZE) {
        throw new LogCorruptError(`entry ${entry.seq} has a hash that is not hex (run \`evident verify\`)`);
      }
      count++;
    }
    if (count !== to - from) {
      throw new LogCorruptError(`expected entries ${from} to ${to - 1} in ${this.logPath}, found ${count}`);
    }
    return { leaves, prev };
  }

  verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    const checkpoint = options.checkpoint;
    if (checkpoint === undefined) return verifyLog(this.#files, this.#logFd, this.logPath, options);
    if (options.sinceCheckpoint) return this.#verifySince(checkpoint, options);
    return verifyLogWithCheckpoint(this.#files, this.#logFd, checkpoint, options);
  }

  /**
   * Verifies only what follows a trusted checkpoint: the tiles' tree at its
   * size must hash to its root and hold its last entry, then the entries
   * after it are checked one by one and extend that tree. Anything that does
   * not fit falls back to the full pass, which decides from the entries alone.
   */
  #verifySince(checkpoint: TrustedCheckpoint, options: VerifyOptions): Promise<VerifyResult> {
    const full = () => verifyLogWithCheckpoint(this.#files, this.#logFd, checkpoint, options);
    return this.#withTree(async () => {
      const size = checkpoint.size;
      if (this.#tree.size < size) return full();
      const edge = await this.#tree.edgeAt(size);
      if (!edge.root().equals(checkpoint.root)) return full();
      let start: Head = EMPTY_HEAD;
      let offset = 0;
      const { size: bytes } = await this.#files.fstat(this.#logFd);
      if (size > 0) {
        let last: Entry | undefined;
        for await (const entry of this.read({ fromSeq: size - 1, limit: 1 })) last = entry;
        if (last === undefined || last.seq !== size - 1 || leafHashOfText(hashedText(last)) !== last.hash)
          return full();
        try {
          const proof = await this.#tree.inclusionProof(size - 1, size);
          verifyInclusion(size - 1, size, Buffer.from(last.hash, 'hex'), proof, checkpoint.root);
        } catch {
          return full();
        }
        start = headOf(last);
        offset = await lowerBound(this.#files, this.#logFd, bytes, (text) => entryOf(text, -1).seq >= size);
      }
      const range = await verifyRange(this.#files, this.#logFd, offset, bytes, start, undefined, (hash) => {
        edge.append([Buffer.from(hash, 'hex')]);
      });
      const root = edge.root().toString('base64');
      const base = { size: size + range.accepted, head: range.last.hash, root };
      if (range.failure !== null) {
        const { index: _index, ...failure } = range.failure;
        return { ok: false, ...base, bytes: range.failure.offset, failure };
      }
      if (range.stop < bytes) {
        const torn = new ChainVerifier(range.last).tornTail(range.stop, bytes - range.stop);
        return { ok: false, ...base, bytes: range.stop, failure: torn };
      }
      return { ok: true, ...base, bytes };
    });
  }

  async close(): Promise<void> {
    const checkpointer = this.#checkpointer;
    // Integrate and sign what is not yet, and persist the tree if it was brought up to date.
    if (this.#publisher !== null) {
      await this.#publisher.close().catch((error: unknown) => this.#onTreeError?.(error));
    } else if (!this.#readOnly && this.#logFd >= 0 && this.#keepTree && this.#tree.size > 0) {
      await this.#locked(() => this.#tree.persist()).catch((error: unknown) => this.#onTreeError?.(error));
    }
    await checkpointer?.close();
    await this.#tree.close();
    await this.#lock.close();
    const fds = [this.#logFd, ...this.#retiredFds.splice(0)].filter((fd) => fd >= 0);
    this.#logFd = -1;
    this.#known = null;
    await Promise.all(fds.map((fd) => this.#files.close(fd)));
  }
}

/** `pattern` matches an action exactly, or as a prefix when it ends in `.*` (`proposal.*`). */
export function matchesAction(action: string, pattern: string): boolean {
  if (pattern.endsWith('.*')) return action.startsWith(pattern.slice(0, -1)) || action === pattern.slice(0, -2);
  return action === pattern;
}

function entryOf(text: string, offset: number): Entry {
  const entry = parseEntry(text);
  if (typeof entry === 'string') {
    const where = offset >= 0 ? ` at byte ${offset}` : '';
    throw new LogCorruptError(`malformed entry${where}: ${entry} (run \`evident verify\`)`);
  }
  return entry;
}

/** The signature lines of a signed note, each with its newline. */
function splitSignatures(note: string): string[] {
  return splitNote(note)
    .signatures.split('\n')
    .filter((line) => line.length > 0)
    .map((line) => `${line}\n`);
}

function sameFile(a: FileStat | null, b: FileStat | null): boolean {
  return a !== null && b !== null && a.ino === b.ino && a.dev === b.dev;
}

function headOf(entry: Entry): Head {
  return {
    log: entry.log,
    size: entry.seq + 1,
    hash: entry.hash,
    ts: entry.ts,
  };
}

async function writeAll(files: Files, fd: number, bytes: Buffer): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = await files.write(fd, bytes, done, bytes.length - done);
    if (n <= 0) throw new EvidentError('EVIDENT_WRITE_FAILED', 'write made no progress');
    done += n;
  }
}

/** fsync a directory, so that a file created in it survives a crash. */
async function syncDir(files: Files, dir: string): Promise<void> {
  const fd = await files.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await files.fsync(fd);
  } finally {
    await files.close(fd);
  }
}
