/**
 * The file operations the JSONL store uses, in one object: the seam where
 * tests inject failures (a write that throws EIO mid-batch) and count opens.
 * Production code uses `nodeFiles`.
 */

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

export interface FileStat {
  size: number;
  ino: number;
  dev: number;
}

export interface Files {
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Appends (the descriptor is opened O_APPEND). Returns bytes written, which may be short. */
  write(fd: number, buffer: Buffer, offset: number, length: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  fstat(fd: number): Promise<FileStat>;
  /** null when nothing is at `path`. */
  stat(path: string): Promise<FileStat | null>;
  ftruncate(fd: number, length: number): Promise<void>;
  mkdir(path: string): Promise<void>;
  writeFile(path: string, data: Buffer): Promise<void>;
  /** flock(LOCK_EX|LOCK_NB): true when taken. */
  tryLock(fd: number): boolean;
  /** flock(LOCK_EX), waiting on a dedicated thread. */
  lockWait(fd: number): Promise<void>;
  unlock(fd: number): void;
}

interface FlockAddon {
  tryLock(fd: number): boolean;
  lockWait(fd: number): Promise<void>;
  unlock(fd: number): void;
}

// Built by `npm install` (node-gyp) from native/flock.c into <package>/build/Release.
const flock = createRequire(import.meta.url)('../../../../build/Release/evident_flock.node') as FlockAddon;

const read = promisify(fs.read);
const write = promisify(fs.write);
const fstat = promisify(fs.fstat);

export const nodeFiles: Files = {
  open: promisify(fs.open) as Files['open'],
  close: promisify(fs.close),
  read: (fd, buffer, offset, length, position) => read(fd, buffer, offset, length, position).then((r) => r.bytesRead),
  write: (fd, buffer, offset, length) => write(fd, buffer, offset, length, null).then((r) => r.bytesWritten),
  fdatasync: promisify(fs.fdatasync),
  fsync: promisify(fs.fsync),
  fstat: (fd) => fstat(fd).then((s) => ({ size: s.size, ino: s.ino, dev: s.dev })),
  stat: (path) =>
    fs.promises.stat(path).then(
      (s) => ({ size: s.size, ino: s.ino, dev: s.dev }),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      },
    ),
  ftruncate: promisify(fs.ftruncate),
  mkdir: (path) => fs.promises.mkdir(path, { recursive: true }).then(() => undefined),
  writeFile: (path, data) => fs.promises.writeFile(path, data, { flag: 'wx', mode: 0o644 }),
  tryLock: (fd) => flock.tryLock(fd),
  lockWait: (fd) => flock.lockWait(fd),
  unlock: (fd) => flock.unlock(fd),
};
