/**
 * A batch on its way from the log's queue to the store. Pure code, no I/O.
 *
 * Everything that does not depend on the head is done before the store's
 * append lock: entries were validated and encoded when they were appended,
 * their ids are given here, and the entry objects handed back to callers
 * are built after the commit, from what it appended. Under the lock only
 * seq, prev, ts and the hashes are left to fill in — by seal() in
 * JavaScript, or by a store that seals the templates itself.
 */
import {
  type Entry,
  type Head,
  newEntryId,
  newLogId,
  nextTimestamp,
  type PreparedEntry,
  sealedEntry,
  sealLine,
  writeEntryTemplate,
} from './entry.js';
import { HASH_SIZE } from './merkle/hash.js';
import type { CommittedBatch, SealedBatch, UnsealedBatch } from './store/store.js';

export class Batch implements UnsealedBatch {
  readonly count: number;
  readonly maxBytes: number;
  readonly #entries: readonly PreparedEntry[];
  readonly #ids: string[];

  constructor(entries: readonly PreparedEntry[]) {
    this.#entries = entries;
    this.count = entries.length;
    this.#ids = entries.map(() => newEntryId());
    let maxBytes = 0;
    for (const entry of entries) maxBytes += entry.maxBytes;
    this.maxBytes = maxBytes;
  }

  /** The lines after `head`: one time for the whole commit, never before the head's. */
  seal(head: Head): SealedBatch {
    const log = head.log ?? newLogId();
    const ts = nextTimestamp(head.ts);
    const leaves = Buffer.allocUnsafe(this.count * HASH_SIZE);
    let text = '';
    let { size, hash } = head;
    for (const [i, entry] of this.#entries.entries()) {
      const sealed = sealLine(entry, { log, seq: size, ts, id: this.#ids[i] as string, prev: hash });
      text += sealed.line;
      leaves.write(sealed.hash, i * HASH_SIZE, HASH_SIZE, 'hex');
      hash = sealed.hash;
      size++;
    }
    return { text, head: { log, size, hash, ts }, leaves };
  }

  templates(log: string): Buffer {
    const out = Buffer.allocUnsafe(this.maxBytes);
    let at = 0;
    for (const [i, entry] of this.#entries.entries())
      at = writeEntryTemplate(entry, this.#ids[i] as string, log, out, at);
    return out.subarray(0, at);
  }

  /** The entries as `committed` appended them, in order. */
  entries(committed: CommittedBatch): Entry[] {
    const { head, leaves } = committed;
    const log = head.log as string;
    const ts = head.ts as string;
    const first = head.size - this.count;
    let prev = committed.prev;
    return this.#entries.map((entry, i) => {
      const hash = leaves.toString('hex', i * HASH_SIZE, (i + 1) * HASH_SIZE);
      const sealed = sealedEntry(entry, { log, seq: first + i, ts, id: this.#ids[i] as string, prev }, hash);
      prev = hash;
      return sealed;
    });
  }
}
