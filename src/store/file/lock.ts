/**
 * An exclusive flock on the file at a path, between processes. flock locks
 * an inode, so if the file is deleted or replaced (a checkout, a restore)
 * while we hold a descriptor, others would lock a different inode and ours
 * would exclude nobody: after taking the lock we check the path still names
 * our inode, and if not, reopen it and lock again.
 *
 * flock does not exclude a second caller in this process using the same
 * descriptor; callers in one process must queue before they lock (the
 * entries file does).
 */
import { constants } from 'node:fs';
import { type FileStat, type Files, openOwn } from './files.js';

/** How long a wait for a lock goes on before a warning says so (a holder stopped, say); tests shorten it. */
export const lockPatience = { ms: 10_000 };

export class PathLock {
  readonly path: string;
  readonly #files: Files;
  readonly #flags: number;
  #fd = -1;
  #stat: FileStat | null = null;
  /** Whether this object holds the lock now. */
  #held = false;
  /** While a caller waits for another holder to release the lock: settles once it is granted (or failed). */
  #waiting: Promise<void> | null = null;

  /** `flags` open the file (O_CREAT is added); the descriptor is also the caller's to read and write through. */
  constructor(files: Files, path: string, flags: number) {
    this.#files = files;
    this.path = path;
    this.#flags = flags | constants.O_CREAT; // openOwn: no link followed, so a dangling link's target is never created
  }

  /** The open descriptor (opening the file if needed). */
  async fd(): Promise<number> {
    if (this.#fd < 0) {
      this.#fd = await openOwn(this.#files, this.path, this.#flags);
      this.#stat = await this.#files.fstat(this.#fd);
    }
    return this.#fd;
  }

  /** Waits for the lock (on a dedicated thread, never blocking the event loop), following a replaced file. */
  async acquire(): Promise<number> {
    return (await this.#take(true)) as number;
  }

  /** Takes the lock if no one holds it; null if someone does. */
  tryAcquire(): Promise<number | null> {
    return this.#take(false);
  }

  async #take(wait: boolean): Promise<number | null> {
    const files = this.#files;
    for (;;) {
      const fd = await this.fd();
      if (!files.tryLock(fd)) {
        if (!wait) return null;
        const granted = files.lockWait(fd);
        this.#waiting = granted.catch(() => undefined);
        // A lock held for seconds is not a busy log but a holder that stopped (SIGSTOP, a debugger, a hung
        // disk): say so once, and go on waiting, as flock does.
        const patience = setTimeout(() => {
          process.emitWarning(
            `evident: ${this.path} has been locked by another process for ${lockPatience.ms / 1000} s; still waiting`,
          );
        }, lockPatience.ms);
        patience.unref();
        try {
          await granted;
        } finally {
          clearTimeout(patience);
          this.#waiting = null;
        }
      }
      const now = await files.stat(this.path);
      if (now !== null && this.#stat !== null && now.ino === this.#stat.ino && now.dev === this.#stat.dev) {
        this.#held = true;
        return fd;
      }
      files.unlock(fd);
      await this.close();
    }
  }

  /** Null when no caller is waiting for another holder to release the lock; else settles once it is granted. */
  waiting(): Promise<void> | null {
    return this.#waiting;
  }

  release(): void {
    if (this.#held) this.#files.unlock(this.#fd);
    this.#held = false;
  }

  /**
   * Makes `dataFd`'s bytes durable (fdatasync), then releases the lock from
   * the thread that synced (Files.syncUnlock). If the sync fails it rejects
   * and the lock is still held.
   */
  async syncAndRelease(dataFd: number): Promise<void> {
    await this.#files.syncUnlock(dataFd, this.#fd);
    this.#held = false;
  }

  /** Runs `work` holding the lock; always releases it. */
  async hold<T>(work: (fd: number) => Promise<T>): Promise<T> {
    const fd = await this.acquire();
    try {
      return await work(fd);
    } finally {
      this.release();
    }
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    this.#fd = -1;
    this.#stat = null;
    this.#held = false;
    if (fd >= 0) await this.#files.close(fd);
  }
}
