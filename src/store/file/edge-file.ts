/**
 * <dir>/tree-edge: a signing log's Merkle tree as a compact range — the
 * complete subtrees down its right edge (merkle/compact.ts) — tied to the
 * log's last entry. Every commit brings it forward under the append lock,
 * so whoever holds that lock finds the tree of exactly the log's entries in
 * a few hundred bytes, and can extend it by its own batch at about one node
 * hash per entry, without reading what other writers appended. A checkpoint
 * is signed from it.
 *
 * Derived, like the tiles, and written without a sync: after a crash it may
 * be behind the log (then the entries after it are read back from the log,
 * which must chain on from its last leaf), torn or missing (then it is
 * rebuilt from the tree and checked against the signed checkpoint first).
 *
 * Layout, big-endian: "EVEDGE1\n", the size (u64), the byte offset where
 * the last entry's line ends (u64), that entry's hash (32 bytes: its leaf),
 * the subtrees' hashes (one per binary digit 1 of the size, largest first),
 * then SHA-256 of everything before it. Written in place at offset 0; bytes
 * after the checksum (a longer edge of an earlier size) are ignored.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { CompactRange, rangeLevels } from '../../merkle/compact.js';
import { HASH_SIZE, type Hash, hashesOf } from '../../merkle/hash.js';
import { pairHasher } from '../../native.js';
import type { Files } from './files.js';
import { readFully } from './lines.js';

export const EDGE_FILE = 'tree-edge';
const MAGIC = Buffer.from('EVEDGE1\n', 'latin1');
const HEADER = MAGIC.length + 8 + 8 + HASH_SIZE;
/** 53 subtrees at most (sizes are below 2^53), and the checksum. */
const MAX_BYTES = HEADER + 54 * HASH_SIZE;

/** The tree of a log's first `range.size` entries, whose last line ends at byte `end` and has hash `last` (hex). */
export interface LogEdge {
  range: CompactRange;
  end: number;
  last: string;
}

/** The edge of an empty log. */
export const EMPTY_EDGE: LogEdge = Object.freeze({
  range: new CompactRange(0, [], pairHasher),
  end: 0,
  last: '0'.repeat(2 * HASH_SIZE),
});

/** The file's bytes for `edge`. */
export function encodeEdge(edge: LogEdge): Buffer {
  const { range } = edge;
  const bytes = Buffer.allocUnsafe(HEADER + (range.hashes.length + 1) * HASH_SIZE);
  MAGIC.copy(bytes, 0);
  bytes.writeBigUInt64BE(BigInt(range.size), 8);
  bytes.writeBigUInt64BE(BigInt(edge.end), 16);
  bytes.write(edge.last, 24, HASH_SIZE, 'hex');
  for (const [k, hash] of range.hashes.entries()) hash.copy(bytes, HEADER + k * HASH_SIZE);
  const body = bytes.length - HASH_SIZE;
  createHash('sha256').update(bytes.subarray(0, body)).digest().copy(bytes, body);
  return bytes;
}

/** The edge in `bytes`, or null if they are not a whole, intact one (torn, damaged, not an edge file). */
export function decodeEdge(bytes: Buffer): LogEdge | null {
  if (bytes.length < HEADER + HASH_SIZE || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const size = bytes.readBigUInt64BE(8);
  const end = bytes.readBigUInt64BE(16);
  if (size > BigInt(Number.MAX_SAFE_INTEGER) || end > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  const count = rangeLevels(Number(size)).length;
  const body = HEADER + count * HASH_SIZE;
  if (bytes.length < body + HASH_SIZE) return null;
  const sum = createHash('sha256').update(bytes.subarray(0, body)).digest();
  if (!sum.equals(bytes.subarray(body, body + HASH_SIZE))) return null;
  const hashes: Hash[] = hashesOf(Buffer.from(bytes.subarray(HEADER, body)));
  return {
    range: new CompactRange(Number(size), hashes, pairHasher),
    end: Number(end),
    last: bytes.toString('hex', 24, HEADER),
  };
}

/** The edge file of one log directory, through one descriptor. Callers hold the append lock. */
export class EdgeFile {
  readonly path: string;
  readonly #files: Files;
  #fd = -1;
  readonly #buffer = Buffer.allocUnsafe(MAX_BYTES);

  constructor(files: Files, path: string) {
    this.#files = files;
    this.path = path;
  }

  async #open(): Promise<number> {
    if (this.#fd < 0) this.#fd = await this.#files.open(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    return this.#fd;
  }

  /**
   * The edge on disk; null when there is none or it is not intact. With
   * `follow`, first reopens the path if the file there is no longer the one
   * our descriptor has (replaced or removed: a restore, a checkout).
   */
  async read(follow = false): Promise<LogEdge | null> {
    if (follow && this.#fd >= 0) {
      const [atPath, ours] = [await this.#files.stat(this.path), await this.#files.fstat(this.#fd)];
      if (atPath === null || atPath.ino !== ours.ino || atPath.dev !== ours.dev) await this.close();
    }
    const length = await readFully(this.#files, await this.#open(), this.#buffer, MAX_BYTES, 0);
    return decodeEdge(this.#buffer.subarray(0, length));
  }

  async write(edge: LogEdge): Promise<void> {
    await this.#files.writeAt(await this.#open(), encodeEdge(edge), 0);
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    this.#fd = -1;
    if (fd >= 0) await this.#files.close(fd);
  }
}
