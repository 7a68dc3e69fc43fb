/**
 * Copying a log into another store, entry for entry: the same lines (so the
 * same hashes, ids and timestamps), the same signed checkpoint and
 * cosignatures. It is the same log, moved: a directory log that outgrew its
 * machine into PostgreSQL, or a PostgreSQL log out to a directory that
 * `evident verify --checkpoint` checks offline. Every line is verified by
 * the chain rules on the way; the target must be empty, or hold what a copy
 * of the same log that was cut short left there (it goes on from there).
 */
import { ChainVerifier } from './chain.js';
import { canonicalize } from './encoding/canonical.js';
import type { Head } from './entry.js';
import { EvidentError, InvalidOptionError, LogCorruptError } from './errors.js';
import { HASH_SIZE } from './merkle/hash.js';
import { storeOf } from './store/open.js';
import type { SealedBatch, Store, UnsealedBatch } from './store/store.js';

export interface CopyOptions {
  /** The log to copy (a directory, `file:DIR`, a `postgres://` URL, or a Store). */
  from: string | Store;
  /** Where to: a store that holds no entries yet (created if missing). */
  to: string | Store;
  /** Told the number of entries copied so far, after each batch. */
  onProgress?: ((copied: number) => void) | undefined;
}

export interface CopyResult {
  /** Entries copied. */
  entries: number;
  /** The head of the copy (the source's when the copy began). */
  head: Head;
  /** Whether a signed checkpoint was copied. */
  checkpoint: boolean;
  /** Cosigned checkpoints copied. */
  cosignatures: number;
}

/** Entries per commit into the target, and at most this many bytes of lines. */
const BATCH_ENTRIES = 2000;
const BATCH_BYTES = 4 << 20;

/** Copies the log `from` into the empty store `to`, verifying each line; see the module comment. */
export async function copyLog(options: CopyOptions): Promise<CopyResult> {
  const from = storeOf(options.from);
  const to = storeOf(options.to);
  await from.open({ create: false, readOnly: true, onRecover: () => {} });
  try {
    await to.open({ create: true, readOnly: false, onRecover: () => {} });
    try {
      return await copyOpen(from, to, options.onProgress);
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

async function copyOpen(from: Store, to: Store, onProgress?: (copied: number) => void): Promise<CopyResult> {
  const target = await to.entries.head();
  if ((await to.checkpoints.read()) !== null || (target.size > 0 && !(await isPrefixOf(target, to, from)))) {
    throw new InvalidOptionError(
      `${to.location} already holds a log (${target.size} entries): copy into an empty store`,
    );
  }
  // The checkpoint before the head: it covers no more than what is copied, however the source grows meanwhile.
  const checkpoint = await from.checkpoints.read();
  const cosignatures = await from.cosignatures.list();
  const head = await from.entries.head();
  // A copy that was cut short left the source's first entries there, and no checkpoint: it goes on after them.
  const chain = new ChainVerifier(target);
  let lines: string[] = [];
  let hashes: string[] = [];
  let bytes = 0;
  let after = target;
  const flush = async () => {
    if (lines.length === 0) return;
    const committed = await to.entries.commit(new CopiedBatch(lines, hashes, after, chain.head));
    after = committed.head;
    lines = [];
    hashes = [];
    bytes = 0;
    onProgress?.(after.size);
  };
  let offset = 0;
  for await (const entry of from.entries.read({ fromSeq: target.size, toSeq: head.size - 1 })) {
    const line = canonicalize(entry);
    const failure = chain.check(line, offset);
    if (failure !== null) {
      throw new LogCorruptError(
        `${from.location}: entry ${failure.seq} fails verification (${failure.reason}: ${failure.message}); ` +
          `${to.location} holds the ${after.size} entries copied before it`,
      );
    }
    offset += Buffer.byteLength(line) + 1;
    lines.push(line);
    hashes.push(chain.lastHash);
    bytes += line.length + 1;
    if (lines.length >= BATCH_ENTRIES || bytes >= BATCH_BYTES) await flush();
  }
  await flush();
  if (after.size !== head.size) {
    throw new LogCorruptError(
      `${from.location} held ${head.size} entries when the copy began, but ${after.size} were read`,
    );
  }
  if (checkpoint !== null && !(await to.checkpoints.replace(null, checkpoint))) {
    throw new EvidentError('EVIDENT_WRITE_FAILED', `${to.location}: a checkpoint appeared there during the copy`);
  }
  for (const { key, note } of cosignatures) await to.cosignatures.put(key, note);
  const keyFile = await from.keyFile();
  if (keyFile !== null) await to.setKeyFile(keyFile);
  return { entries: after.size, head: after, checkpoint: checkpoint !== null, cosignatures: cosignatures.length };
}

/**
 * Whether the entries of `to` (whose head is `head`) are the first of
 * `source`'s: its last entry, as its line holds it, is the source's entry
 * there, and the head says the same. (The chain before it is the CLI's
 * verify of the copy to check.)
 */
async function isPrefixOf(head: Head, to: Store, source: Store): Promise<boolean> {
  const at = { fromSeq: head.size - 1, toSeq: head.size - 1 };
  const last = async (store: Store) => {
    for await (const entry of store.entries.read(at)) return entry;
    return null;
  };
  const [mine, theirs] = [await last(to), await last(source)];
  return (
    mine !== null &&
    theirs !== null &&
    canonicalize(mine) === canonicalize(theirs) &&
    mine.hash === head.hash &&
    mine.log === head.log
  );
}

/** Lines already sealed, verified, to be appended as they are, after exactly the head they follow. */
class CopiedBatch implements UnsealedBatch {
  readonly count: number;
  /** A copy cut short is resumed from what it left, whole entries: no need to land each batch whole. */
  readonly atomic = false;
  readonly #lines: string[];
  readonly #hashes: string[];
  readonly #after: Head;
  readonly #head: Head;

  constructor(lines: string[], hashes: string[], after: Head, head: Head) {
    this.count = lines.length;
    this.#lines = lines;
    this.#hashes = hashes;
    this.#after = after;
    this.#head = head;
  }

  seal(head: Head): SealedBatch {
    if (head.size !== this.#after.size || head.hash !== this.#after.hash) {
      throw new InvalidOptionError('the target of the copy changed meanwhile: another writer appended to it');
    }
    const leaves = Buffer.allocUnsafe(this.count * HASH_SIZE);
    let lastLine = 0;
    let at = 0;
    const parts: Buffer[] = [];
    for (const [i, line] of this.#lines.entries()) {
      const bytes = Buffer.from(`${line}\n`, 'utf8');
      lastLine = at;
      at += bytes.length;
      parts.push(bytes);
      leaves.write(this.#hashes[i] as string, i * HASH_SIZE, HASH_SIZE, 'hex');
    }
    return { lines: Buffer.concat(parts), lastLine, head: this.#head, leaves };
  }
}
