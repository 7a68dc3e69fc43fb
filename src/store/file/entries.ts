/**
 * The record of a directory log: <dir>/log.jsonl, one canonical JSON entry
 * per line, appended under an exclusive flock on <dir>/lock.
 *
 * Commit, under the lock: make sure the lock and log files are still the ones
 * at their paths; bring the cached head up to date (nothing to read when no
 * one else wrote, else only the last line); seal; one write; then one
 * fdatasync, after which the thread that synced releases the lock (the lock
 * is never held waiting for this event loop to notice). A failed write or
 * sync is cut off before the lock is released. A torn last line (a writer
 * that died mid-write) is moved to <dir>/quarantine/ — never deleted — by
 * the next writer, under the lock; so is the written part of a commit that
 * had to land whole and did not (intent.ts).
 */
import { constants } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseEntry } from '../../chain.js';
import {
  DEFAULT_MAX_ENTRY_BYTES,
  EMPTY_HEAD,
  type Entry,
  GENESIS_PREV,
  type Head,
  hashedText,
  headOf,
  leafHashOfText,
} from '../../entry.js';
import { EvidentError, LogCorruptError, LogNotFoundError, LogWriteError } from '../../errors.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import { matchesQuery } from '../query.js';
import type {
  ChainCheck,
  CommittedBatch,
  EntryStore,
  Leaves,
  OpenOptions,
  ReadQuery,
  UnsealedBatch,
  VerifyResult,
} from '../store.js';
import { type FileStat, type Files, guarded, ownDirectory, storeError } from './files.js';
import {
  cutShort,
  decodeIntent,
  encodeIntent,
  endsInside,
  INTENT_BYTES,
  INTENT_FILE,
  type Intent,
  NO_INTENT,
} from './intent.js';
import { CHUNK, iterateLines, lowerBound, readFully, readLastLine, scanLineBytes } from './lines.js';
import { PathLock } from './lock.js';
import { verifyFile } from './verify.js';

export type Durability = 'fsync' | 'write';

export const LOG_FILE = 'log.jsonl';
export const LOCK_FILE = 'lock';
export const QUARANTINE_DIR = 'quarantine';

interface Known {
  head: Head;
  /** Where the head's line ends: the file's length then. */
  end: number;
  /** Where the head's line starts. */
  lastStart: number;
  mtimeMs: number;
}

const PREV_KEY = Buffer.from('"prev":"');
const HASH_KEY = Buffer.from('"hash":"');
const SEQ_KEY = Buffer.from('","seq":');

export class FileEntries implements EntryStore {
  readonly dir: string;
  readonly logPath: string;
  readonly #files: Files;
  readonly #durability: Durability;
  readonly #lock: PathLock;
  #readOnly = false;
  #onRecover: OpenOptions['onRecover'] = () => {};
  #logFd = -1;
  /** Descriptors of log files replaced at our path, kept open until close: a reader may still be using one. */
  #retiredFds: number[] = [];
  /** The tail of the queue of this process's callers waiting for the append lock. */
  #inProcess: Promise<void> = Promise.resolve();
  /** Identity of the log file our descriptor points at, to notice it replaced or removed at its path. */
  #logFile: FileStat | null = null;
  /**
   * As of our last look under the lock: the head, where its line starts and
   * ends, and the file's mtime then; null when they must be re-read from the
   * end.
   */
  #known: Known | null = null;
  /** Where the entry after the last one leaves() read starts, to spare the next read a search. */
  #cursor: { seq: number; offset: number } | null = null;
  /** The intent record's descriptor, once a writer needed it (-1 before), and the identity of its file. */
  #intentFd = -1;
  #intentFile: FileStat | null = null;

  constructor(dir: string, files: Files, durability: Durability) {
    this.dir = dir;
    this.logPath = join(dir, LOG_FILE);
    this.#files = files;
    this.#durability = durability;
    this.#lock = new PathLock(files, join(dir, LOCK_FILE), constants.O_WRONLY | constants.O_APPEND);
  }

  /** Opens log.jsonl (creating it if asked) and, for a writer, repairs a torn last line now. */
  async open(options: OpenOptions): Promise<void> {
    this.#readOnly = options.readOnly;
    this.#onRecover = options.onRecover;
    const create = options.create && !options.readOnly;
    const created = create && (await this.#files.stat(this.logPath)) === null;
    if (!this.#readOnly) await this.#lock.fd();
    this.#logFd = await this.#openLog(create);
    if (created) await syncDir(this.#files, this.dir);
    if (!this.#readOnly) await this.#locked(() => this.#refresh());
  }

  async #openLog(create = false): Promise<number> {
    // Never through a symbolic link: a link to another file would have evident append to, and repair, that file.
    // O_NONBLOCK: opening a FIFO would wait for a writer; a regular file ignores it.
    const flags =
      constants.O_NOFOLLOW |
      constants.O_NONBLOCK |
      (this.#readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_APPEND | (create ? constants.O_CREAT : 0));
    try {
      const fd = await this.#files.open(this.logPath, flags, 0o644);
      const stat = await this.#files.fstat(fd);
      if (!stat.isFile) {
        await this.#files.close(fd);
        throw new LogCorruptError(`${this.logPath} is not a regular file`);
      }
      this.#logFile = stat;
      return fd;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new LogNotFoundError(this.dir);
      throw error;
    }
  }

  commit(batch: UnsealedBatch): Promise<CommittedBatch> {
    if (this.#readOnly) return Promise.reject(new EvidentError('EVIDENT_READ_ONLY', 'the log was opened read-only'));
    return guarded('write', () => this.#commit(batch));
  }

  #commit(batch: UnsealedBatch): Promise<CommittedBatch> {
    return this.#locked(async () => {
      const after = await this.#refresh();
      const sealed = batch.seal(after);
      const start = this.#known?.end ?? 0;
      const bytes = sealed.lines;
      let mtimeMs: number;
      try {
        if (batch.atomic) {
          const first = sealed.leaves.toString('hex', 0, HASH_SIZE);
          await this.#intend({ start, end: start + bytes.length, seq: after.size, first, prev: after.hash });
        }
        await writeAll(this.#files, this.#logFd, bytes);
        mtimeMs = (await this.#files.fstat(this.#logFd)).mtimeMs;
        if (batch.atomic) {
          // Acknowledged once synced: the record goes, under the lock (another writer's would follow it), so
          // that a cut made later into these entries (a newline deleted) is never taken for this commit's.
          if (this.#durability === 'fsync') await this.#files.fdatasync(this.#logFd);
          await this.#files.writeAt(this.#intentFd, NO_INTENT, 0);
        } else if (this.#durability === 'fsync') await this.#lock.syncAndRelease(this.#logFd);
      } catch (error) {
        await this.#rollBack(start);
        const what = batch.count === 1 ? '1 entry' : `${batch.count} entries`;
        throw new LogWriteError(`could not append ${what} to ${this.logPath}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const end = start + bytes.length;
      const lastStart = start + sealed.lastLine;
      this.#known = { head: sealed.head, end, lastStart, mtimeMs };
      return { after, head: sealed.head, leaves: sealed.leaves };
    });
  }

  head(): Promise<Head> {
    return guarded('read', () => this.#head());
  }

  async #head(): Promise<Head> {
    if (this.#readOnly) {
      const fd = await this.#readerFd();
      const { last } = await readLastLine(this.#files, fd, await this.#visibleEnd(fd));
      return last === null ? EMPTY_HEAD : headOf(entryOf(last.text, last.offset));
    }
    return this.#locked(async () => {
      const head = await this.#refresh();
      // A checkpoint may cover what this returns: with durability 'write' the commits did not sync it.
      if (this.#durability === 'write') await this.#files.fdatasync(this.#logFd);
      return head;
    });
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
    await before;
    try {
      return await work();
    } finally {
      release();
    }
  }

  /** Under the lock: the current head, reading only what changed since we last looked. */
  async #refresh(): Promise<Head> {
    const files = this.#files;
    let stat = await files.stat(this.logPath); // one call: identity and size
    if (stat === null) throw new LogCorruptError(`${this.logPath} was removed while the log was open`);
    const replaced = !sameFile(stat, this.#logFile);
    if (replaced) {
      // Replaced under us (a restore, a checkout): follow the path, but only onto a file that still holds
      // every entry this writer knew — the checks below, with nothing taken from the old file's size or time.
      stat = await files.fstat(await this.#follow());
    }
    const known = this.#known;
    if (known !== null && !replaced && stat.size === known.end && stat.mtimeMs === known.mtimeMs) return known.head;
    if (known !== null && stat.size < known.end) {
      throw new LogCorruptError(
        replaced
          ? `${this.logPath} was replaced by a file of ${stat.size} bytes while open, without the ${known.end} bytes of entries it held`
          : `${this.logPath} shrank from ${known.end} to ${stat.size} bytes while open: entries were removed outside evident`,
      );
    }
    if (known !== null && known.head.size > 0) await this.#unchanged(known);
    const intent = await this.#cutShort(this.#logFd, stat.size);
    if (intent !== null && intent.start >= (known?.end ?? 0)) {
      await this.#quarantine(intent.start, stat.size, intent.seq);
      stat = { ...stat, size: intent.start };
    }
    let { last, completeEnd } = await readLastLine(files, this.#logFd, stat.size);
    if (completeEnd < stat.size) {
      if (await this.#lacksOnlyItsNewline(last?.text ?? null, completeEnd, stat.size)) {
        ({ last, completeEnd } = await readLastLine(files, this.#logFd, stat.size + 1));
      } else await this.#quarantine(completeEnd, stat.size);
    }
    const mtimeMs = (await files.fstat(this.#logFd)).mtimeMs;
    if (last === null) {
      this.#known = { head: EMPTY_HEAD, end: 0, lastStart: 0, mtimeMs };
      return EMPTY_HEAD;
    }
    const entry = entryOf(last.text, last.offset);
    if (known !== null && known.head.size > entry.seq + 1) {
      throw new LogCorruptError(`${this.logPath} went back from ${known.head.size} entries to ${entry.seq + 1}`);
    }
    const head = headOf(entry);
    this.#known = { head, end: completeEnd, lastStart: last.offset, mtimeMs };
    return head;
  }

  /**
   * The file changed since we last looked: others appended, or someone edited
   * it. The line we last knew as the head must still be there, with its seq
   * and hash; else what follows it is not built on what we acknowledged.
   */
  async #unchanged(known: Known): Promise<void> {
    const line = Buffer.allocUnsafe(known.end - known.lastStart);
    const read = await readFully(this.#files, this.#logFd, line, line.length, known.lastStart);
    const fields = read === line.length && line[line.length - 1] === 0x0a ? linkOf(line, 0, line.length - 1) : null;
    if (fields === null || fields[0] !== known.head.size - 1 || fields[2] !== known.head.hash) {
      throw new LogCorruptError(
        `entry ${known.head.size - 1} of ${this.logPath} changed while the log was open: the log was edited or rewritten`,
      );
    }
  }

  /**
   * Whether bytes [from, to) after the last newline are a whole entry that
   * follows the line before (`previous`), lacking only its newline — then
   * the newline is written: cutting it off would lose an entry a writer may
   * have acknowledged (a newline deleted by hand). Anything else is a torn
   * write, for quarantine.
   */
  async #lacksOnlyItsNewline(previous: string | null, from: number, to: number): Promise<boolean> {
    if (to - from > 1 << 20) return false;
    const bytes = Buffer.allocUnsafe(to - from);
    await readFully(this.#files, this.#logFd, bytes, bytes.length, from);
    const entry = parseEntry(bytes.toString('utf8'));
    if (typeof entry === 'string' || leafHashOfText(hashedText(entry)) !== entry.hash) return false;
    const before = previous === null ? null : parseEntry(previous);
    const follows =
      before === null
        ? entry.seq === 0 && entry.prev === GENESIS_PREV
        : typeof before !== 'string' && entry.seq === before.seq + 1 && entry.prev === before.hash;
    if (!follows) return false;
    await writeAll(this.#files, this.#logFd, Buffer.from('\n'));
    await this.#files.fdatasync(this.#logFd);
    return true;
  }

  /**
   * Moves bytes [from, to) — a line whose write never completed, or the part
   * written of a commit cut short (from entry `fromSeq`) — into quarantine/,
   * then cuts them off.
   */
  async #quarantine(from: number, to: number, fromSeq?: number): Promise<void> {
    const files = this.#files;
    const bytes = Buffer.allocUnsafe(to - from);
    await readFully(files, this.#logFd, bytes, bytes.length, from);
    const dir = join(this.dir, QUARANTINE_DIR);
    await ownDirectory(files, dir);
    const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-at-${from}.partial`);
    try {
      await files.writeFile(file, bytes);
      const fd = await files.open(file, constants.O_RDONLY);
      try {
        await files.fsync(fd);
      } finally {
        await files.close(fd);
      }
      await syncDir(files, dir);
      await files.ftruncate(this.#logFd, from);
    } catch (error) {
      // The bytes are still in the log (nothing was cut): a copy of them, whole or not, would only be miscounted
      // by verify as a repair, once more on every attempt. (A name already taken is another repair's copy.)
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') await files.remove(file).catch(() => {});
      throw error;
    }
    await files.fdatasync(this.#logFd);
    this.#onRecover({ offset: from, bytes: bytes.length, file, ...(fromSeq === undefined ? {} : { fromSeq }) });
  }

  /** Records, before a commit that must land whole writes anything, the range it will write (intent.ts). */
  async #intend(intent: Intent): Promise<void> {
    const fd = await this.#intentHandle();
    await this.#files.writeAt(fd, encodeIntent(intent), 0);
    if (this.#durability === 'fsync') await this.#files.fdatasync(fd);
  }

  /**
   * Under the lock: the writer's descriptor of the record at its path, opened
   * (created) when it has none, or when the file there is not the one it has
   * open (replaced, removed): a record must be where the next writer reads it.
   */
  async #intentHandle(): Promise<number> {
    const stat = await this.#files.stat(join(this.dir, INTENT_FILE));
    if (this.#intentFd >= 0 && sameFile(stat, this.#intentFile)) return this.#intentFd;
    const fd = await this.#openIntent(constants.O_RDWR | (stat === null ? constants.O_CREAT : 0));
    if (stat === null) await syncDir(this.#files, this.dir);
    if (this.#intentFd >= 0) await this.#files.close(this.#intentFd);
    this.#intentFd = fd;
    this.#intentFile = await this.#files.fstat(fd);
    return fd;
  }

  /** The intent recorded for a commit that the log file (`fd`, `size` bytes) holds only in part; else null. */
  async #cutShort(fd: number, size: number): Promise<Intent | null> {
    const intent = await this.#intent();
    if (intent === null || !endsInside(intent, size)) return null;
    // The batch's first line, with or without its newline (a write may stop right before it): an entry is at
    // most DEFAULT_MAX_ENTRY_BYTES, so the bytes read hold all of it if it is there.
    const bytes = Buffer.allocUnsafe(Math.min(size - intent.start, DEFAULT_MAX_ENTRY_BYTES + 1));
    const read = await readFully(this.#files, fd, bytes, bytes.length, intent.start);
    const newline = bytes.subarray(0, read).indexOf(0x0a);
    const link = linkOf(bytes, 0, newline < 0 ? read : newline);
    return cutShort(intent, size, link === null ? null : { seq: link[0], hash: link[2] }) ? intent : null;
  }

  /** The intent recorded at the path now, if any (read through a descriptor of its own). */
  async #intent(): Promise<Intent | null> {
    let fd: number;
    try {
      fd = await this.#openIntent(constants.O_RDONLY);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      return await readIntent(this.#files, fd);
    } finally {
      await this.#files.close(fd);
    }
  }

  /**
   * Where what readers may see of the file (`fd`) ends: before the part
   * written of a batch that is cut short or still being written, which is
   * not (yet) acknowledged; else its size.
   */
  async #visibleEnd(fd: number): Promise<number> {
    const { size } = await this.#files.fstat(fd);
    return (await this.#cutShort(fd, size))?.start ?? size;
  }

  async #openIntent(flags: number): Promise<number> {
    const path = join(this.dir, INTENT_FILE);
    const fd = await this.#files.open(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    if (!(await this.#files.fstat(fd)).isFile) {
      await this.#files.close(fd);
      throw new LogCorruptError(`${path} is not a regular file`);
    }
    return fd;
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
    try {
      yield* this.#read(query);
    } catch (error) {
      throw storeError(error, 'read');
    }
  }

  async *#read(query: ReadQuery): AsyncGenerator<Entry> {
    const files = this.#files;
    const fd = await this.#readerFd();
    const size = await this.#visibleEnd(fd);
    let start = 0;
    if (query.fromSeq !== undefined && query.fromSeq > 0) start = await this.#offsetOf(fd, query.fromSeq, size);
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
      if (!matchesQuery(entry, query)) continue;
      yield entry;
      if (++count >= limit) return;
    }
  }

  /** Where the line of entry `seq` starts (or the end, if the log is shorter): a binary search, seq only grows. */
  #offsetOf(fd: number, seq: number, size: number): Promise<number> {
    if (seq === 0) return Promise.resolve(0);
    return lowerBound(this.#files, fd, size, (text) => entryOf(text, -1).seq >= seq);
  }

  /**
   * The descriptor a read-only log reads through: the file now at the path,
   * reopened when it was replaced there (a restore), so `tail -f` goes on
   * following the log. A writer's follows the path under the lock (#refresh).
   */
  async #readerFd(): Promise<number> {
    if (!this.#readOnly) return this.#logFd;
    const stat = await this.#files.stat(this.logPath);
    return stat !== null && !sameFile(stat, this.#logFile) ? this.#follow() : this.#logFd;
  }

  /** Opens the log file now at the path in place of ours, which is retired (a reader may still use it). */
  async #follow(): Promise<number> {
    const fd = await this.#openLog(); // retire the old descriptor only once there is a new one
    this.#retiredFds.push(this.#logFd);
    this.#logFd = fd;
    this.#cursor = null;
    return fd;
  }

  /**
   * The leaf hashes of entries [from, to), read a chunk of lines at a time.
   * Each line's top-level `hash`, `prev` and `seq` are found where a
   * canonical line has them — `prev` is the last member that can hold the
   * text `"prev":"` (after it come only seq, targets and ts, whose strings
   * cannot hold an unescaped quote), `hash` the last before it — and
   * anything unexpected is parsed whole. Each must be the next seq and follow
   * the one before; the hashes are not recomputed (verify does that).
   */
  leaves(from: number, to: number): Promise<Leaves> {
    return guarded('read', () => this.#leaves(from, to));
  }

  async #leaves(from: number, to: number): Promise<Leaves> {
    const count = to - from;
    const leaves = Buffer.allocUnsafe(Math.max(0, count) * HASH_SIZE);
    const prev = Buffer.alloc(HASH_SIZE);
    if (count <= 0) return { leaves, prev };
    const fd = this.#logFd;
    const { size } = await this.#files.fstat(fd);
    const cursor = this.#cursor;
    const start = cursor !== null && cursor.seq === from ? cursor.offset : await this.#offsetOf(fd, from, size);
    let done = 0;
    let failure = null as LogCorruptError | null;
    const link = Buffer.allocUnsafe(HASH_SIZE);
    // Read in chunks about the size of what is wanted: a few entries after each commit, or a long run.
    const chunk = Math.min(CHUNK, Math.max(16 * 1024, count * 512));
    const end = await scanLineBytes(
      this.#files,
      fd,
      start,
      size,
      (bytes, lineFrom, lineTo, offset) => {
        const fields = linkOf(bytes, lineFrom, lineTo) ?? parsedLink(bytes, lineFrom, lineTo);
        if (typeof fields === 'string') {
          failure = new LogCorruptError(`malformed entry at byte ${offset} of ${this.logPath}: ${fields}`);
          return false;
        }
        const seq = from + done;
        const [entrySeq, entryPrev, entryHash] = fields;
        const expected = done === 0 ? null : leaves.subarray((done - 1) * HASH_SIZE, done * HASH_SIZE);
        link.write(entryPrev, 'hex');
        if (entrySeq !== seq || (expected !== null && !expected.equals(link))) {
          failure = new LogCorruptError(
            `entry ${seq} at byte ${offset} of ${this.logPath} does not follow the one before it (run \`evident verify\`)`,
          );
          return false;
        }
        if (done === 0) link.copy(prev);
        leaves.write(entryHash, done * HASH_SIZE, HASH_SIZE, 'hex');
        done++;
        return done < count ? undefined : false;
      },
      chunk,
    );
    if (failure !== null) throw failure;
    if (done < count) {
      throw new LogCorruptError(`expected entries ${from} to ${to - 1} in ${this.logPath}, found ${done}`);
    }
    this.#cursor = { seq: to, offset: end };
    return { leaves, prev };
  }

  /**
   * Threads, unless told: one for a log under 16 MiB, else one per core up
   * to 4; never more than the cores (more only cost memory and time).
   */
  verify(check: ChainCheck): Promise<VerifyResult> {
    return guarded('read', () => this.#verify(check));
  }

  async #verify(check: ChainCheck): Promise<VerifyResult> {
    const fd = await this.#readerFd();
    const { end, cut } = await this.#settledEnd(fd);
    const start =
      check.after !== undefined && check.after.size > 0 ? await this.#offsetOf(fd, check.after.size, end) : 0;
    const cores = availableParallelism();
    const threads = Math.min(cores, check.threads ?? (end < 16 << 20 ? 1 : 4));
    let result = await verifyFile(this.#files, fd, this.logPath, start, { ...check, threads }, end);
    // Lines of a commit cut short are whole entries that were never acknowledged: the next writer moves them aside.
    if (cut !== null && cut.start >= start && (result.ok || (result.failure?.offset ?? 0) >= cut.start)) {
      const message = `a commit of entries from seq ${cut.seq} was cut short (${end - cut.start} of its ${cut.end - cut.start} bytes written): the next append moves them to ${QUARANTINE_DIR}/`;
      result = {
        ok: false,
        size: cut.seq,
        head: cut.prev,
        bytes: cut.start - start,
        failure: { seq: cut.seq, line: cut.seq + 1, offset: cut.start, reason: 'torn-tail', message },
      };
    }
    const recovered = (await this.#files.list(join(this.dir, QUARANTINE_DIR))).length;
    return recovered === 0 ? result : { ...result, recovered };
  }

  /**
   * Where verify reads the file (`fd`) to, and the batch cut short there, if
   * any. A file ending in part of a line or of a batch is a commit in flight
   * while a writer holds the append lock: verify stops before it, as readers
   * do. With the lock free it is a crash's, and named; so that a commit that
   * just finished is not taken for one, the file is looked at again holding
   * a shared lock for that moment (writers take it exclusively; readers share
   * it, so two verifies never take each other for writers).
   */
  async #settledEnd(fd: number): Promise<{ end: number; cut: Intent | null }> {
    const look = async () => {
      const { size } = await this.#files.fstat(fd);
      const cut = await this.#cutShort(fd, size);
      const { completeEnd } = await readLastLine(this.#files, fd, size);
      return { size, cut, completeEnd, partial: cut !== null || completeEnd < size };
    };
    const first = await look();
    if (!first.partial) return { end: first.size, cut: null };
    const settled = await this.#whileNoWriter(look);
    if (settled === null) return { end: first.cut?.start ?? first.completeEnd, cut: null };
    return { end: settled.size, cut: settled.cut };
  }

  /**
   * `work`'s result, run holding a shared lock on the append lock's file if
   * no writer holds it now (other readers share it); null if a writer does.
   * Where that cannot be told — no lock file, one this reader may not open or
   * that is not a plain file, no flock addon — `work` runs as it is.
   */
  async #whileNoWriter<T>(work: () => Promise<T>): Promise<T | null> {
    const files = this.#files;
    let fd: number;
    try {
      // Read-only, not following a link, never waiting on a FIFO: a reader may not write here, flock needs no more.
      fd = await files.open(
        join(this.dir, LOCK_FILE),
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      );
    } catch (error) {
      if (['ENOENT', 'EACCES', 'EPERM', 'ELOOP'].includes((error as NodeJS.ErrnoException).code ?? '')) return work();
      throw error;
    }
    try {
      if (!(await files.fstat(fd)).isFile) return await work();
      let taken: boolean;
      try {
        taken = files.tryLockShared(fd);
      } catch (error) {
        if ((error as EvidentError).code === 'EVIDENT_NATIVE') return await work();
        throw error;
      }
      if (!taken) return null;
      try {
        return await work();
      } finally {
        files.unlock(fd);
      }
    } finally {
      await files.close(fd);
    }
  }

  async close(): Promise<void> {
    await this.#lock.close();
    const fds = [this.#logFd, this.#intentFd, ...this.#retiredFds.splice(0)].filter((fd) => fd >= 0);
    this.#logFd = -1;
    this.#intentFd = -1;
    this.#intentFile = null;
    this.#known = null;
    this.#cursor = null;
    await Promise.all(fds.map((fd) => this.#files.close(fd)));
  }
}

/** seq, prev and hash (hex) of a canonical line [from, to), found by position; null if it is not so plain. */
function linkOf(bytes: Buffer, from: number, to: number): [number, string, string] | null {
  const p = bytes.lastIndexOf(PREV_KEY, to - 1);
  if (p < from) return null;
  const h = bytes.lastIndexOf(HASH_KEY, p - 1);
  if (h < from || p + PREV_KEY.length + 64 + SEQ_KEY.length > to) return null;
  const seqAt = p + PREV_KEY.length + 64;
  if (bytes.compare(SEQ_KEY, 0, SEQ_KEY.length, seqAt, seqAt + SEQ_KEY.length) !== 0) return null;
  const digits = seqAt + SEQ_KEY.length;
  let at = digits;
  while (at < to && isDigit(bytes[at] as number)) at++;
  if (at === digits || at - digits > 16) return null;
  const seq = Number(bytes.toString('latin1', digits, at));
  const prev = bytes.toString('latin1', p + PREV_KEY.length, p + PREV_KEY.length + 64);
  const hash = bytes.toString('latin1', h + HASH_KEY.length, h + HASH_KEY.length + 64);
  return isHex(prev) && isHex(hash) ? [seq, prev, hash] : null;
}

/** linkOf for a line that is not plain: parsed whole; why it is not an entry, if it is not. */
function parsedLink(bytes: Buffer, from: number, to: number): [number, string, string] | string {
  const entry = parseEntry(bytes.toString('utf8', from, to));
  if (typeof entry === 'string') return entry;
  if (!isHex(entry.prev) || !isHex(entry.hash)) return `entry ${entry.seq} has a hash that is not hex`;
  return [entry.seq, entry.prev, entry.hash];
}

const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39;
const HEX64 = /^[0-9a-f]{64}$/;
function isHex(text: string): boolean {
  return HEX64.test(text);
}

function entryOf(text: string, offset: number): Entry {
  const entry = parseEntry(text);
  if (typeof entry === 'string') {
    const where = offset >= 0 ? ` at byte ${offset}` : '';
    throw new LogCorruptError(`malformed entry${where}: ${entry} (run \`evident verify\`)`);
  }
  return entry;
}

function sameFile(a: FileStat | null, b: FileStat | null): boolean {
  return a !== null && b !== null && a.ino === b.ino && a.dev === b.dev;
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
export async function syncDir(files: Files, dir: string): Promise<void> {
  const fd = await files.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await files.fsync(fd);
  } finally {
    await files.close(fd);
  }
}

/** The intent record behind `fd`, or null. */
async function readIntent(files: Files, fd: number): Promise<Intent | null> {
  const bytes = Buffer.alloc(INTENT_BYTES);
  const read = await readFully(files, fd, bytes, bytes.length, 0);
  return decodeIntent(bytes.subarray(0, read));
}
