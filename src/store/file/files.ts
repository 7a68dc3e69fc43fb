/**
 * The file operations the JSONL store uses, in one object: the seam where
 * tests inject failures (a write that throws EIO mid-batch) and count opens.
 * Production code uses `nodeFiles`.
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { EvidentError, LogCorruptError } from '../../errors.js';
import { native } from './native.js';

export interface FileStat {
  size: number;
  ino: number;
  dev: number;
  mtimeMs: number;
  /** A regular file (not a directory, device, FIFO...). */
  isFile: boolean;
}

export interface Files {
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Appends (the descriptor is opened O_APPEND). Returns bytes written, which may be short. */
  write(fd: number, buffer: Buffer, offset: number, length: number): Promise<number>;
  /** Writes all of `buffer` at `position` (pwrite; the descriptor must not be O_APPEND). */
  writeAt(fd: number, buffer: Buffer, position: number): Promise<void>;
  fdatasync(fd: number): Promise<void>;
  /**
   * fdatasync(fd), then, only if it succeeded, unlock(lockFd) on the thread
   * that synced: the lock is free as soon as the data is durable, not once the
   * event loop next runs. If the sync fails (rejects), the lock is still held.
   */
  syncUnlock(fd: number, lockFd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  fstat(fd: number): Promise<FileStat>;
  /** null when nothing is at `path`. */
  stat(path: string): Promise<FileStat | null>;
  ftruncate(fd: number, length: number): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Creates `path` with `data`; fails with EEXIST if it exists. */
  writeFile(path: string, data: Buffer): Promise<void>;
  /**
   * Replaces `path` whole: writes a temporary file beside it and renames it
   * over, so a reader sees the old file or the new one. `durable`: the new
   * file and the rename are synced first (else, for derived files, not).
   */
  replaceFile(path: string, data: Buffer, durable?: boolean): Promise<void>;
  /** Removes a file or directory tree, if it exists. */
  remove(path: string): Promise<void>;
  /** The names in a directory; none if it does not exist. */
  list(path: string): Promise<string[]>;
  /** flock(LOCK_EX|LOCK_NB): true when taken. */
  tryLock(fd: number): boolean;
  /** flock(LOCK_SH|LOCK_NB): true when taken (others may share it), false when it is held exclusively. */
  tryLockShared(fd: number): boolean;
  /** flock(LOCK_EX), waiting on a dedicated thread. */
  lockWait(fd: number): Promise<void>;
  unlock(fd: number): void;
}

const read = promisify(fs.read);
/** Create, failing if anything (a file, a link) is at the path. */
const CREATE_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * A directory of the log's own, created if missing: one that is a link
 * (which would have evident write elsewhere) or not a directory is refused.
 */
export async function ownDirectory(files: Files, path: string): Promise<void> {
  await files.mkdir(path);
  const stat = fs.lstatSync(path);
  if (stat.isSymbolicLink() || !stat.isDirectory()) {
    throw new LogCorruptError(
      `${path} is ${stat.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}: evident writes a log's files only in directories of its own`,
    );
  }
}

/**
 * Opens a file of the log as itself: never through a link, never waiting
 * on a FIFO (O_NONBLOCK, which a regular file ignores), and only if it is a
 * regular file.
 */
export async function openOwn(files: Files, path: string, flags: number, mode = 0o644): Promise<number> {
  let fd: number;
  try {
    fd = await files.open(path, flags | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, mode);
  } catch (error) {
    // Opening a FIFO with no reader, or a socket, for writing.
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') throw new LogCorruptError(`${path} is not a regular file`);
    throw error;
  }
  if (!(await files.fstat(fd)).isFile) {
    await files.close(fd);
    throw new LogCorruptError(`${path} is not a regular file`);
  }
  return fd;
}
const writeFile = promisify(fs.writeFile);
const SMALL_READ = 64 * 1024;

/** Runs a synchronous call as a promise, so its errors reject rather than throw. */
function now<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}

const statOf = (s: fs.Stats): FileStat => ({
  size: s.size,
  ino: s.ino,
  dev: s.dev,
  mtimeMs: s.mtimeMs,
  isFile: s.isFile(),
});

/**
 * The real file layer. Metadata calls, the append write and truncation are
 * synchronous system calls (microseconds: the write is a copy into the page
 * cache, as pino's sync mode does), which keeps a commit to one thread-pool
 * round trip: the sync, which can take milliseconds and runs off the event
 * loop.
 */
export const nodeFiles: Files = {
  open: promisify(fs.open) as Files['open'],
  close: (fd) => now(() => fs.closeSync(fd)),
  // Small reads (the head after another writer's commit, a binary-search probe) are page-cache copies:
  // synchronous. Large ones (verify's and read()'s chunks) go to the thread pool.
  read: (fd, buffer, offset, length, position) =>
    length <= SMALL_READ
      ? now(() => fs.readSync(fd, buffer, offset, length, position))
      : read(fd, buffer, offset, length, position).then((r) => r.bytesRead),
  write: (fd, buffer, offset, length) => now(() => fs.writeSync(fd, buffer, offset, length)),
  writeAt: (fd, buffer, position) =>
    now(() => {
      for (let done = 0; done < buffer.length; )
        done += fs.writeSync(fd, buffer, done, buffer.length - done, position + done);
    }),
  fdatasync: promisify(fs.fdatasync),
  syncUnlock: (fd, lockFd) => now(() => native()).then((addon) => addon.syncUnlock(fd, lockFd)),
  fsync: promisify(fs.fsync),
  fstat: (fd) => now(() => statOf(fs.fstatSync(fd))),
  stat: (path) =>
    now(() => {
      const s = fs.statSync(path, { throwIfNoEntry: false });
      return s === undefined ? null : statOf(s);
    }),
  ftruncate: (fd, length) => now(() => fs.ftruncateSync(fd, length)),
  mkdir: (path) => fs.promises.mkdir(path, { recursive: true }).then(() => undefined),
  // On the thread pool (creating a file can wait for the journal commit another file's fsync started),
  // through the callback API: a FileHandle costs the event loop several times more.
  writeFile: (path, data) => writeFile(path, data, { flag: 'wx', mode: 0o644 }),
  // On the thread pool: creating and renaming files can wait for the journal commit another file's sync started.
  replaceFile: async (path, data, durable = false) => {
    // A new file, never one already there: a link planted at a guessable name would be written through.
    const temporary = `${path}.${randomBytes(8).toString('hex')}.tmp`;
    const file = await fs.promises.open(temporary, CREATE_NEW, 0o644);
    try {
      try {
        await file.writeFile(data);
        if (durable) await file.sync();
      } finally {
        await file.close();
      }
      await fs.promises.rename(temporary, path);
    } catch (error) {
      // A disk that is full, say: the half-written copy does not stay behind.
      await fs.promises.rm(temporary, { force: true }).catch(() => {});
      throw error;
    }
    if (durable) await syncDirectory(dirname(path));
  },
  remove: (path) => fs.promises.rm(path, { recursive: true, force: true }),
  list: (path) =>
    fs.promises.readdir(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    }),
  tryLock: (fd) => native().tryLock(fd),
  tryLockShared: (fd) => native().tryLockShared(fd),
  lockWait: (fd) => native().lockWait(fd),
  unlock: (fd) => native().unlock(fd),
};

/** fsync a directory, so that a file created or renamed in it survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * An operating-system error from the file layer (EACCES, ENOSPC, EIO...) as
 * evident's: EVIDENT_READ_FAILED or EVIDENT_WRITE_FAILED, keeping Node's
 * message (which names the call and the file) and saying what to look at.
 * Evident's own errors pass through.
 */
export function storeError(error: unknown, side: 'read' | 'write'): unknown {
  if (error instanceof EvidentError || !(error instanceof Error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') {
    const path = (error as NodeJS.ErrnoException).path ?? 'a file of the log';
    return new LogCorruptError(`${path} is a symbolic link: evident opens a log's files only as themselves`, {
      cause: error,
    });
  }
  const hint =
    code === 'EACCES' || code === 'EPERM'
      ? ': check the permissions of the log directory and its files'
      : code === 'ENOSPC' || code === 'EDQUOT'
        ? ': the disk is full'
        : code === 'EROFS'
          ? ': the file system is read-only'
          : '';
  const failed = side === 'read' ? 'EVIDENT_READ_FAILED' : 'EVIDENT_WRITE_FAILED';
  return new EvidentError(failed, `${error.message}${hint}`, { cause: error });
}

/** `work`, with the OS errors it throws as storeError's. */
export async function guarded<T>(side: 'read' | 'write', work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw storeError(error, side);
  }
}
