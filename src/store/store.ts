/**
 * The seams between the log's lifecycle (../lifecycle/) and a storage
 * backend. A backend implements a few small interfaces, each with one job,
 * as Tessera's drivers and Sunlight's storage do:
 *
 *   EntryStore       the record: commit a sealed batch atomically, read the
 *                    head, read entries and their leaf hashes, verify
 *   TileStore        the Merkle tree's C2SP tiles: read, write
 *   CheckpointStore  the latest signed checkpoint: read, compare-and-replace
 *   Lease            the right to integrate and publish, one holder at a time
 *
 * Everything about *when* and *what* (batching, sealing, the tree, signing,
 * the rule that a log never signs two inconsistent histories) lives in the
 * lifecycle and is shared by every backend; a backend decides only how its
 * medium gives exclusivity, atomicity and durability.
 */
import type { VerifyFailure } from '../chain.js';
import type { Entry, Head } from '../entry.js';
import type { TileWrite } from '../merkle/tiles.js';

/**
 * Entries validated, encoded and given their ids, waiting for a head: the
 * members that depend on it (seq, prev, ts, and so the hash) are filled in
 * under the store's exclusive append rights.
 */
export interface UnsealedBatch {
  /** How many entries. */
  readonly count: number;
  /**
   * Whether it holds a caller's batch of several entries, which must land all
   * or none across a crash too (a store whose commit is not one atomic step
   * must make it so: the file store records the range first).
   */
  readonly atomic: boolean;
  /** Their lines after `head`, sealed. */
  seal(head: Head): SealedBatch;
}

/** Lines sealed after a head, ready to append. */
export interface SealedBatch {
  /** The lines, UTF-8, each ending in a newline, concatenated. */
  lines: Buffer;
  /** Where the last line starts in `lines`. */
  lastLine: number;
  /** The head once they are appended. */
  head: Head;
  /** Their leaf hashes (the entries' `hash`), 32 bytes each, in order. */
  leaves: Buffer;
}

/** What a commit appended. */
export interface CommittedBatch {
  /** The head before the commit: the first entry follows it. */
  after: Head;
  /** The head after it. */
  head: Head;
  /** The entries' leaf hashes, 32 bytes each, in order. */
  leaves: Buffer;
}

/** What the reader selects. Bounds are inclusive; times are RFC 3339. */
export interface ReadQuery {
  fromSeq?: number | undefined;
  toSeq?: number | undefined;
  since?: string | undefined;
  until?: string | undefined;
  actor?: string | undefined;
  /** An action, or a family such as `proposal.*`. */
  action?: string | undefined;
  target?: string | undefined;
  limit?: number | undefined;
}

/** Leaf hashes read back from the entries. */
export interface Leaves {
  /** The hashes of entries [from, to), 32 bytes each. */
  leaves: Buffer;
  /** The `prev` of entry `from`: the hash it follows. */
  prev: Buffer;
}

export interface VerifyProgress {
  /** Entries verified so far, or -1 when not known (parallel verification counts bytes only). */
  entries: number;
  bytes: number;
  totalBytes: number;
}

/** How a backend walks its entries through the chain rules (ChainVerifier). */
export interface ChainCheck {
  /** Start after this head (its entry verified already); default: the start of the log. */
  after?: Head | undefined;
  /** Verify ranges on this many worker threads where the backend can (the verdict is the same). */
  threads?: number | undefined;
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
  /** Told each good entry's leaf hash, in order (only with one thread). */
  onLeaf?: ((hash: Buffer) => void) | undefined;
}

export interface VerifyResult {
  ok: boolean;
  /** Entries verified good (on failure: those before the first bad one). */
  size: number;
  /** Hash of the last good entry. */
  head: string;
  /** Bytes (or rows) read. */
  bytes: number;
  failure?: VerifyFailure;
  /** With a checkpoint: the RFC 9162 root of the whole log as verified (base64). */
  root?: string;
  /** Torn last entries moved aside since the log began (a writer died mid-write, or the log was cut mid-line). */
  recovered?: number;
}

/** A torn last entry moved aside when the store was opened or appended to. */
export interface Recovery {
  /** Where the torn entry began (a byte offset for a file). */
  offset: number;
  bytes: number;
  /** Where the bytes were saved. */
  file: string;
  /** Set when they were the part written of a commit cut short: the seq its first entry would have had. */
  fromSeq?: number;
}

/** The record itself. */
export interface EntryStore {
  /**
   * Under the store's exclusive append rights: reads the current head, seals
   * `batch` after it, and makes its lines durable before resolving. On
   * failure nothing is appended (what was written is cut off) and the rights
   * are released.
   */
  commit(batch: UnsealedBatch): Promise<CommittedBatch>;
  /** The head of what is durable now, exactly. */
  head(): Promise<Head>;
  /** Entries matching `query`, in order; a malformed one throws, never skipped. */
  read(query: ReadQuery): AsyncIterable<Entry>;
  /** The leaf hashes of entries [from, to) (to ≤ the head's size), each checked to follow the one before. */
  leaves(from: number, to: number): Promise<Leaves>;
  /** Streams entries through the chain rules, naming the first bad one. */
  verify(check: ChainCheck): Promise<VerifyResult>;
}

/** The Merkle tree's tiles (C2SP tlog-tiles): full tiles never change once written; partial ones are replaced. */
export interface TileStore {
  /** Tile `level`/`index` of `width` hashes (256 for a full tile), or null if it is not stored. */
  read(level: number, index: number, width: number): Promise<Buffer | null>;
  /** Stores tiles, then records that the stored tiles hold the tree of `size` leaves. */
  write(tiles: readonly TileWrite[], size: number): Promise<void>;
  /** The size recorded by the last write (0 if none): its partial tiles are stored. */
  size(): Promise<number>;
  /** Removes every tile (the tree is rebuilt from the entries). */
  clear(): Promise<void>;
}

/** The latest signed checkpoint. */
export interface CheckpointStore {
  /** The checkpoint note, or null if none is stored. */
  read(): Promise<string | null>;
  /** Stores `next` if the stored note is still `expected` (null: none); false, storing nothing, if it is not. */
  replace(expected: string | null, next: string): Promise<boolean>;
}

/**
 * The integrator lease: the holder integrates entries into the tree, writes
 * tiles and signs checkpoints for every writer. It must end when its holder
 * dies, so that another writer can take it.
 */
export interface Lease {
  /** Takes the lease if no one holds it; true if this store holds it (now, or still: a lease that ended is false). */
  tryAcquire(): Promise<boolean>;
  release(): Promise<void>;
}

/** Checkpoints as witnesses cosigned them, kept for receipts. */
export interface CosignatureStore {
  /** Every cosigned note kept, with its key. */
  list(): Promise<KeptNote[]>;
  /** Keeps `note` (a checkpoint with cosignatures) under `key`, replacing what was kept under it. */
  put(key: string, note: string): Promise<void>;
  /** The note kept under `key`, or null. */
  get(key: string): Promise<string | null>;
  /** Drops what is kept under `key`, if anything. */
  remove(key: string): Promise<void>;
}

/** A cosigned note and the key it is kept under. */
export interface KeptNote {
  key: string;
  note: string;
}

/** How a log is opened on a store. */
export interface OpenOptions {
  /** Create the log if it is missing (otherwise a missing log is LogNotFoundError). */
  create: boolean;
  /** Never write: no lock, no recovery. */
  readOnly: boolean;
  /** Told when a torn last entry is moved aside. */
  onRecover: (recovery: Recovery) => void;
}

/** A backend: where one log lives. */
export interface Store {
  /** Where, for messages (a directory, a database URL without its password). */
  readonly location: string;
  readonly entries: EntryStore;
  readonly tiles: TileStore;
  readonly checkpoints: CheckpointStore;
  readonly lease: Lease;
  readonly cosignatures: CosignatureStore;
  /** Opens the medium (creating the log if asked). The lifecycle calls it once, before anything else. */
  open(options: OpenOptions): Promise<void>;
  /** Where the signing key of a signing log is kept, if the store records it (a file path), else null. */
  keyFile(): Promise<string | null>;
  /** Records where the signing key is kept (`evident init --key FILE`). */
  setKeyFile(path: string): Promise<void>;
  close(): Promise<void>;
}
