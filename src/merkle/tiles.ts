/**
 * The C2SP tlog-tiles layout, and the tree's right edge. Pure code.
 *
 * A tile holds up to 256 hashes of one level of the tree: tile level L holds
 * the hashes of tree level 8·L (level 0: the leaf hashes; level 1: the roots
 * of 256-leaf subtrees, ...), tile N of a level the 256 hashes from N·256 on.
 * A full tile lives at `tile/<L>/<N>`, a partial one of W hashes at
 * `tile/<L>/<N>.p/<W>`; N is written in 3-digit groups, all but the last
 * prefixed with `x` (1234067 → x001/x234/067).
 *
 * Only the last tile of each level is ever partial, so the tree's right edge —
 * those partial tiles, at most 255 hashes per level — is all that appending
 * touches, and all that computing the current root needs.
 */
import { OutOfRangeError } from '../errors.js';
import { emptyRoot, HASH_SIZE, type Hash, hashPairs } from './hash.js';
import { isPowerOfTwo, levelOf, type SubtreeHash, splitPoint } from './tree.js';

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;

/** `tile/<level>/<index in 3-digit groups>[.p/<width>]`, per C2SP tlog-tiles. */
export function tilePath(level: number, index: number, width = TILE_WIDTH): string {
  let n = index;
  const groups: string[] = [];
  do {
    groups.unshift(String(n % 1000).padStart(3, '0'));
    n = Math.floor(n / 1000);
  } while (n > 0);
  const path = groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
  return `tile/${level}/${path}${width < TILE_WIDTH ? `.p/${width}` : ''}`;
}

/** How many hashes tile level L has in a tree of `size` leaves: the complete subtrees of 256^L leaves. */
export function hashesAtTileLevel(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** Where the hashes for tree node (level, index) are stored: a tile, and a range of its hashes to hash up. */
export interface NodeLocation {
  tileLevel: number;
  tileIndex: number;
  /** First hash within the tile. */
  from: number;
  /** Number of hashes, a power of two ≤ 128 (or 1). */
  count: number;
}

/** Locates tree node (level, index): stored directly when level is a multiple of 8, else hashed up from below. */
export function locateNode(level: number, index: number): NodeLocation {
  const tileLevel = Math.floor(level / TILE_HEIGHT);
  const count = 2 ** (level - tileLevel * TILE_HEIGHT);
  const first = index * count; // position among tile level's hashes
  const tileIndex = Math.floor(first / TILE_WIDTH);
  return { tileLevel, tileIndex, from: first - tileIndex * TILE_WIDTH, count };
}

/** Hashes as one buffer: a list joined (one hash is already that), a buffer as it is. */
function joined(hashes: readonly Hash[] | Buffer): Buffer {
  if (Buffer.isBuffer(hashes)) return hashes;
  return hashes.length === 1 ? (hashes[0] as Hash) : Buffer.concat(hashes as Hash[]);
}

/** A tile to store: its level, index and hashes (fewer than 256 for a partial tile), each concatenated. */
export interface TileWrite {
  level: number;
  index: number;
  /** The tile's hashes, 32 bytes each. */
  hashes: Buffer;
  /** For a full tile: its block (tileBlock), which the edge hashed anyway when it filled. */
  block?: Buffer;
}

/**
 * A tile's *block*: its 256 hashes (row 0), then the nodes above them, row
 * by row up to the tile's root (row 8, one node): 511 hashes in all. Every
 * node of the tree between two tile levels is in one block.
 */
const BLOCK_HASHES = 2 * TILE_WIDTH - 1;

/** Where row r (0..8) of a block starts, in hashes: 0, 256, 384, 448, ..., 510. */
function rowStart(r: number): number {
  return 2 * TILE_WIDTH - ((2 * TILE_WIDTH) >> r);
}

/** Hash number n of a block, as a view. */
function nodeAt(block: Buffer, n: number): Hash {
  return block.subarray(n * HASH_SIZE, (n + 1) * HASH_SIZE);
}

/** The block of a full tile: its hashes, then each row above hashed from the one below. */
export function tileBlock(hashes: Buffer): Buffer {
  if (hashes.length !== TILE_WIDTH * HASH_SIZE) {
    throw new OutOfRangeError(`a full tile holds ${TILE_WIDTH} hashes, not ${hashes.length / HASH_SIZE}`);
  }
  const block = Buffer.allocUnsafe(BLOCK_HASHES * HASH_SIZE);
  hashes.copy(block, 0);
  for (let r = 1; r <= TILE_HEIGHT; r++) {
    hashPairs(
      block.subarray(rowStart(r - 1) * HASH_SIZE, rowStart(r) * HASH_SIZE),
      block.subarray(rowStart(r) * HASH_SIZE, (rowStart(r) + (TILE_WIDTH >> r)) * HASH_SIZE),
    );
  }
  return block;
}

/** Node k of row r (0 ≤ r ≤ 8) of a block. */
export function blockNode(block: Buffer, r: number, k: number): Hash {
  return nodeAt(block, rowStart(r) + k);
}

/**
 * The right edge of a tree: the last, partial tile of each tile level, and
 * the size. Appending leaves returns the tiles that just filled up; the
 * partial tiles are read when they are to be stored (partials()).
 */
export class TreeEdge {
  #size: number;
  /** #widths[L]: how many hashes tile level L's last, partial tile holds (fewer than 256). */
  readonly #widths: number[] = [];
  /** #fullTiles[L]: how many full tiles tile level L has (the index of its partial tile). */
  readonly #fullTiles: number[] = [];
  /**
   * #blocks[L]: tile level L's partial tile as a block (tileBlock's layout),
   * its rows hashed as far as they are complete. #filled[L][r]:
   * how many of row r's nodes are hashed — always a prefix, since complete
   * nodes never change. So leaves are copied in a run at a time, repeated
   * roots cost O(log n), a row is extended by one call to the pair hasher,
   * and a tile that fills is its block's first two parts, ready to store.
   */
  readonly #blocks: Buffer[] = [];
  readonly #filled: number[][] = [];
  /** root(), until the next append. */
  #root: Hash | null = null;

  /**
   * An edge for a tree of `size` leaves whose partial tiles hold `edge` (see
   * partialTiles(); each a list of hashes or their concatenation).
   */
  constructor(size = 0, edge: readonly (readonly Hash[] | Buffer)[] = []) {
    this.#size = size;
    for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
      const count = hashesAtTileLevel(size, level);
      this.#fullTiles[level] = Math.floor(count / TILE_WIDTH);
      const want = count % TILE_WIDTH;
      const bytes = joined(edge[level] ?? []);
      if (bytes.length !== want * HASH_SIZE) {
        throw new OutOfRangeError(`edge tile at level ${level} holds ${bytes.length / HASH_SIZE} hashes, not ${want}`);
      }
      bytes.copy(this.#newBlock(level), 0);
      this.#widths[level] = want;
    }
  }

  get size(): number {
    return this.#size;
  }

  /** The partial tiles of a tree of `size` leaves: level and index of each level's last tile, and its width. */
  static partialTiles(size: number): { level: number; index: number; width: number }[] {
    const tiles: { level: number; index: number; width: number }[] = [];
    for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
      const count = hashesAtTileLevel(size, level);
      tiles.push({ level, index: Math.floor(count / TILE_WIDTH), width: count % TILE_WIDTH });
    }
    return tiles;
  }

  /**
   * Appends leaf hashes (a list, or their concatenation); returns the tiles
   * that filled up (partial tiles are read with partials()).
   */
  append(leaves: readonly Hash[] | Buffer): TileWrite[] {
    const bytes = joined(leaves);
    if (bytes.length % HASH_SIZE !== 0) throw new OutOfRangeError(`${bytes.length} bytes are not whole hashes`);
    const full: TileWrite[] = [];
    this.#appendTo(0, bytes, full);
    this.#size += bytes.length / HASH_SIZE;
    this.#root = null;
    return full;
  }

  /** Copies hashes into tile level L's partial tile, a run at a time; a tile that fills passes its root up. */
  #appendTo(level: number, bytes: Buffer, full: TileWrite[]): void {
    for (let at = 0; at < bytes.length; ) {
      const width = this.#widths[level] ?? 0;
      const block = this.#blocks[level] ?? this.#newBlock(level);
      const take = Math.min((TILE_WIDTH - width) * HASH_SIZE, bytes.length - at);
      bytes.copy(block, width * HASH_SIZE, at, at + take);
      at += take;
      this.#widths[level] = width + take / HASH_SIZE;
      if (width + take / HASH_SIZE < TILE_WIDTH) continue;
      const index = this.#fullTiles[level] ?? 0;
      this.#fullTiles[level] = index + 1;
      this.#fill(level);
      const hashes = block.subarray(0, TILE_WIDTH * HASH_SIZE);
      full.push({ level, index, hashes, block });
      this.#widths[level] = 0;
      this.#newBlock(level); // the full tile keeps the old block
      this.#appendTo(level + 1, blockNode(block, TILE_HEIGHT, 0), full); // the tile's root
    }
  }

  /** The partial tile of every tile level that has one, as it is now (copies). */
  partials(): TileWrite[] {
    const tiles: TileWrite[] = [];
    for (const [level, width] of this.#widths.entries()) {
      if (width > 0) {
        const hashes = Buffer.from((this.#blocks[level] as Buffer).subarray(0, width * HASH_SIZE));
        tiles.push({ level, index: this.#fullTiles[level] ?? 0, hashes });
      }
    }
    return tiles;
  }

  /**
   * MTH(D[size]), RFC 9162 §2.1.1. Splitting at splitPoint() again and
   * again down the right side leaves complete subtrees (one per binary digit
   * 1 of the size, largest first); the root hashes them together from the
   * right. Each is on the right edge.
   */
  root(): Hash {
    if (this.#root !== null) return this.#root;
    if (this.#size === 0) return emptyRoot();
    const subtrees: Hash[] = [];
    for (let start = 0; start < this.#size; ) {
      const rest = this.#size - start;
      const width = isPowerOfTwo(rest) ? rest : splitPoint(rest);
      subtrees.push(this.subtree(levelOf(width), start / width));
      start += width;
    }
    const pair = Buffer.allocUnsafe(2 * HASH_SIZE);
    let root = subtrees.pop() as Hash;
    for (let k = subtrees.length - 1; k >= 0; k--) {
      (subtrees[k] as Hash).copy(pair, 0);
      root.copy(pair, HASH_SIZE);
      root = Buffer.allocUnsafe(HASH_SIZE);
      hashPairs(pair, root);
    }
    this.#root = root;
    return root;
  }

  /** Complete-subtree hashes that the edge holds: enough for the root, and for any node in a partial tile. */
  subtree: SubtreeHash = (level, index) => {
    if (!this.holds(level, index)) throw new OutOfRangeError(`node ${level}/${index} is not on the right edge`);
    const at = locateNode(level, index);
    const r = level - at.tileLevel * TILE_HEIGHT;
    return this.#tileNode(at.tileLevel, r, at.from / at.count);
  };

  /** Whether subtree(level, index) is a node the edge holds (inside a partial tile), rather than one in a full tile. */
  holds(level: number, index: number): boolean {
    const at = locateNode(level, index);
    const width = this.#widths[at.tileLevel];
    const partialIndex = Math.floor(hashesAtTileLevel(this.#size, at.tileLevel) / TILE_WIDTH);
    return width !== undefined && at.tileIndex === partialIndex && at.from + at.count <= width;
  }

  /** Node k at height r inside tile level L's partial tile (it must be complete: see holds()). */
  #tileNode(tileLevel: number, r: number, k: number): Hash {
    if (r !== 0) this.#fill(tileLevel);
    return nodeAt(this.#blocks[tileLevel] as Buffer, rowStart(r) + k);
  }

  /** Hashes the complete nodes of tile level L's partial tile not hashed yet: one pair-hasher call per row. */
  #fill(tileLevel: number): void {
    const block = this.#blocks[tileLevel] as Buffer;
    const filled = this.#filled[tileLevel] as number[];
    const width = this.#widths[tileLevel] as number;
    for (let r = 1; r <= TILE_HEIGHT; r++) {
      const have = filled[r] as number;
      const need = width >> r;
      if (need <= have) break; // rows above cannot have more
      const below = rowStart(r - 1);
      const at = rowStart(r);
      hashPairs(
        block.subarray((below + 2 * have) * HASH_SIZE, (below + 2 * need) * HASH_SIZE),
        block.subarray((at + have) * HASH_SIZE, (at + need) * HASH_SIZE),
      );
      filled[r] = need;
    }
  }

  #newBlock(tileLevel: number): Buffer {
    const block = Buffer.alloc(BLOCK_HASHES * HASH_SIZE);
    this.#blocks[tileLevel] = block;
    this.#filled[tileLevel] = new Array(TILE_HEIGHT + 1).fill(0);
    return block;
  }

  /** The edge's tiles, for constructing an equal edge elsewhere (copies). */
  tiles(): Buffer[] {
    return this.#widths.map((width, level) =>
      Buffer.from((this.#blocks[level] as Buffer).subarray(0, width * HASH_SIZE)),
    );
  }
}
