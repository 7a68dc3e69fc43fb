/**
 * The storage interface every backend implements. The log's lifecycle
 * (batching, sealing, background mode) lives in ../log.ts and talks to a
 * backend only through this interface; a backend owns how exclusivity,
 * durability and reading are done on its medium.
 */
import type { VerifyFailure } from '../chain.js';
import type { Entry, Head } from '../entry.js';
import type { TrustedCheckpoint } from '../note/trust.js';

/**
 * Entries validated, encoded and given their ids, waiting for a head: the
 * members that depend on it (seq, prev, ts, and so the hash) are filled in
 * under the store's exclusive append rights.
 */
export interface UnsealedBatch {
  /** How many entries. */
  readonly count: number;
  /** At most how many UTF-8 bytes their lines take. */
  readonly maxBytes: number;
  /** Their lines after `head`, sealed in JavaScript. */
  seal(head: Head): SealedBatch;
  /**
   * The same entries as templates for a store that seals them itself, off
   * the event loop (the file store's addon): per entry the pieces of
   * entry.ts's writeEntryTemplate, for the log `log`.
   */
  templates(log: string): Buffer;
}

/** Lines sealed after a head, ready to append. */
export interface SealedBatch {
  /** The lines, each ending in a newline, concatenated. */
  text: string;
  /** The head once they are appended. */
  head: Head;
  /** Their leaf hashes (the entries' `hash`), 32 bytes each, in order. */
  leaves: Buffer;
}

/** What a commit appended. */
export interface CommittedBatch {
  /** The hash the first entry follows: the head's before the commit. */
  prev: string;
  /** The head after it. */
  head: Head;
  /** The entries' leaf hashes, 32 bytes each, in order. */
  leaves: Buffer;
}

/** The Merkle tree over a log's entries: its size and root (RFC 9162). */
export interface TreeHead {
  size: number;
  root: Buffer;
}

/** What the reader selects. Bounds are inclusive; times are RFC 3339. */
export interface ReadQuery {
  fromSeq?: number | undefined;
  toSeq?: number | undefined;
  since?: string | undefined;
  until?: string | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  limit?: number | undefined;
}

export interface VerifyProgress {
  /** Entries verified so far, or -1 when not known (parallel verification counts bytes only). */
  entries: number;
  bytes: number;
  totalBytes: number;
}

export interface VerifyOptions {
  /**
   * A checkpoint already trusted (see trustCheckpoint): the log must still
   * hold its entries, and they must hash to its root. The tree is recomputed
   * from the entries themselves, on one thread.
   */
  checkpoint?: TrustedCheckpoint | undefined;
  /**
   * With `checkpoint`: check only the entries after it, trusting the tiles
   * for the part it covers once they are shown to hash to its root.
   */
  sinceCheckpoint?: boolean | undefined;
  /** Worker threads to verify a large log with (ranges checked at once, then linked). Default 1. */
  threads?: number | undefined;
  /** Called now and then while verifying (about every 4 MiB). */
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
}

export interface VerifyResult {
  ok: boolean;
  /** Entries verified good (on failure: those before the first bad one). */
  size: number;
  /** Hash of the last good entry. */
  head: string;
  /** Bytes read. */
  bytes: number;
  failure?: VerifyFailure;
  /** With a checkpoint: the RFC 9162 root of the whole log as verified (base64). */
  root?: string;
}

/** A torn last line moved aside on open. */
export interface Recovery {
  /** Byte offset in the log where the torn line began. */
  offset: number;
  bytes: number;
  /** Where the bytes were saved. */
  file: string;
}

export interface Store {
  /** Opens the medium and loads the head. The lifecycle calls it exactly once. */
  open(): Promise<void>;
  /**
   * Under exclusive append rights: reads the current head, seals `batch`
   * after it, and makes its lines durable before returning. On failure
   * nothing is appended and the rights are released.
   */
  commit(batch: UnsealedBatch): Promise<CommittedBatch>;
  /** The current head (under the same exclusivity, so it is exact). */
  head(): Promise<Head>;
  /** Entries matching `query`, in order. */
  read(query: ReadQuery): AsyncIterable<Entry>;
  /** The tree over every entry now in the log. */
  treeHead(): Promise<TreeHead>;
  /** The root of the tree over the first `size` entries. */
  rootAt(size: number): Promise<Buffer>;
  /** RFC 9162 inclusion proof of entry `index` in the tree of `size` entries. */
  inclusionProof(index: number, size: number): Promise<Buffer[]>;
  /** RFC 9162 consistency proof between the trees of `size1` and `size2` entries. */
  consistencyProof(size1: number, size2: number): Promise<Buffer[]>;
  /** The latest signed checkpoint (a C2SP signed note), or null for a log that does not sign. */
  checkpoint(): Promise<string | null>;
  /**
   * For receipts: the newest checkpoint covering more than `minSize` entries
   * that witnesses have cosigned (with all their cosignatures), else the
   * latest signed checkpoint.
   */
  cosignedCheckpoint(minSize?: number): Promise<string | null>;
  /** Keeps a witness's cosigned copy of a checkpoint, for receipts to carry. */
  addCosignatures(note: string): Promise<void>;
  /** Streams the whole log through the chain rules. */
  verify(options: VerifyOptions): Promise<VerifyResult>;
  close(): Promise<void>;
}
