/**
 * A batch on its way from the log's queue to the store. Pure code, no I/O.
 *
 * Everything that does not depend on the head is done before the store's
 * append rights are taken: entries were validated and encoded when they were
 * appended, their ids are given here, and the entry objects handed back to
 * callers are built after the commit, from what it appended. Under the
 * rights only seq, prev, ts and the hashes are left to fill in (seal()).
 */
import {
  type Entry,
  type Head,
  newEntryId,
  newLogId,
  nextTimestamp,
  type PreparedEntry,
  sealedEntry,
  sealInto,
} from './entry.js';
import { InvalidOptionError } from './errors.js';
import { HASH_SIZE } from './merkle/hash.js';
import type { CommittedBatch, SealedBatch, UnsealedBatch } from './store/store.js';

export class Batch implements UnsealedBatch {
  readonly count: number;
  readonly atomic: boolean;
  readonly #entries: readonly PreparedEntry[];
  readonly #ids: string[];
  readonly #atSize: number | undefined;
  /** At most how many bytes the sealed lines take. */
  readonly #maxBytes: number;
  /** The committed entries' hashes in hex, once entries() has been asked for. */
  #hashes: string[] | null = null;

  /**
   * `atSize`: the batch may only be sealed after a head of that size (a log's
   * first entry: 0). `atomic`: it holds a caller's batch of several entries.
   */
  constructor(entries: readonly PreparedEntry[], atSize?: number, atomic = false) {
    this.#entries = entries;
    this.count = entries.length;
    this.atomic = atomic;
    this.#ids = entries.map(() => newEntryId());
    this.#atSize = atSize;
    let maxBytes = 0;
    for (const entry of entries) maxBytes += entry.maxBytes;
    this.#maxBytes = maxBytes;
  }

  /** The lines after `head`: one time for the whole commit, never before the head's. */
  seal(head: Head): SealedBatch {
    if (this.#atSize !== undefined && head.size !== this.#atSize) {
      throw new InvalidOptionError(`the log has ${head.size} entries, not ${this.#atSize}: it changed meanwhile`);
    }
    const log = head.log ?? newLogId();
    const ts = nextTimestamp(head.ts);
    const leaves = Buffer.allocUnsafe(this.count * HASH_SIZE);
    // Each line is written into one buffer as it is sealed: a string of a few MB built by concatenation cost
    // more to flatten and encode than the sealing itself.
    const lines = Buffer.allocUnsafe(this.#maxBytes);
    let at = 0;
    let lastLine = 0;
    let { size, hash } = head;
    for (const [i, entry] of this.#entries.entries()) {
      lastLine = at;
      const sealed = sealInto(entry, { log, seq: size, ts, id: this.#ids[i] as string, prev: hash }, lines, at);
      at = sealed.end;
      leaves.write(sealed.hash, i * HASH_SIZE, HASH_SIZE, 'hex');
      hash = sealed.hash;
      size++;
    }
    return { lines: lines.subarray(0, at), lastLine, head: { log, size, hash, ts }, leaves };
  }

  /** Entries `from` to `from + count - 1` of the batch as `committed` appended them, in order. */
  entries(committed: CommittedBatch, from = 0, count = this.count - from): Entry[] {
    const { head, leaves } = committed;
    const log = head.log as string;
    const ts = head.ts as string;
    const first = head.size - this.count;
    // Each request of the commit asks for its own entries: the hashes are turned to hex once for all of them.
    if (this.#hashes === null) {
      this.#hashes = Array.from({ length: this.count }, (_, i) =>
        leaves.toString('hex', i * HASH_SIZE, (i + 1) * HASH_SIZE),
      );
    }
    const hashes = this.#hashes;
    const built: Entry[] = [];
    for (let i = from; i < from + count; i++) {
      const prev = i === 0 ? committed.after.hash : (hashes[i - 1] as string);
      const entry = this.#entries[i] as PreparedEntry;
      built.push(
        sealedEntry(entry, { log, seq: first + i, ts, id: this.#ids[i] as string, prev }, hashes[i] as string),
      );
    }
    return built;
  }
}
