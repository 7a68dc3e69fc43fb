/**
 * Baselines for `npm run bench`, for comparison only (never used by evident):
 *
 * (a) the known naive algorithm evident replaces: per event, take the lock,
 *     read the whole log to find the last hash, seal, append, fsync, unlock;
 * (b) the same with an O(1) head: the last line is read from the end.
 *
 * Both write evident's own line format, so the work per entry is the same.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  type EntryInput,
  GENESIS_PREV,
  newEntryId,
  newLogId,
  nextTimestamp,
  prepareEntry,
  sealEntry,
} from '../src/entry.js';
import { nodeFiles } from '../src/store/file/files.js';

interface Last {
  log: string;
  seq: number;
  hash: string;
  ts: string;
}

export class PerEventAppender {
  readonly #path: string;
  readonly #fd: number;
  readonly #lockFd: number;
  readonly #headFromEnd: boolean;

  /** `headFromEnd`: false for baseline (a), true for (b). */
  constructor(dir: string, headFromEnd: boolean) {
    this.#path = join(dir, 'log.jsonl');
    this.#fd = openSync(this.#path, 'a+');
    this.#lockFd = openSync(join(dir, 'lock'), 'a');
    this.#headFromEnd = headFromEnd;
  }

  append(input: EntryInput): void {
    if (!nodeFiles.tryLock(this.#lockFd)) throw new Error('baseline expects an uncontended lock');
    try {
      const last = this.#headFromEnd ? this.#lastFromEnd() : this.#lastByScan();
      const sealed = sealEntry(prepareEntry(input), {
        log: last?.log ?? newLogId(),
        seq: last === null ? 0 : last.seq + 1,
        ts: nextTimestamp(last?.ts ?? null),
        id: newEntryId(),
        prev: last?.hash ?? GENESIS_PREV,
      });
      writeSync(this.#fd, sealed.line);
      fsyncSync(this.#fd);
    } finally {
      nodeFiles.unlock(this.#lockFd);
    }
  }

  #lastByScan(): Last | null {
    const lines = readFileSync(this.#path, 'utf8').split('\n');
    const text = lines[lines.length - 2];
    return text === undefined ? null : (JSON.parse(text) as Last);
  }

  #lastFromEnd(): Last | null {
    const size = fstatSync(this.#fd).size;
    if (size === 0) return null;
    const tail = Buffer.alloc(Math.min(size, 64 * 1024));
    readSync(this.#fd, tail, 0, tail.length, size - tail.length);
    const end = tail.length - 1; // the final newline
    const start = tail.lastIndexOf(0x0a, end - 1) + 1;
    return JSON.parse(tail.toString('utf8', start, end)) as Last;
  }

  close(): void {
    closeSync(this.#fd);
    closeSync(this.#lockFd);
  }
}
