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
import { type Hash, nodeHash } from './hash.js';
import type { SubtreeHash } from './tree.js';

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

/** A tile to store: its level, index and hashes (fewer than 256 for a partial tile). */
export interface TileWrite {
  level: number;
  index: number;
  hashes: Hash[];
  /** For a full tile: its 255 inner nodes (see innerIndex), which the edge hashed anyway when it filled. */
  inner?: Hash[];
}

/**
 * Where a full tile's inner node sits in its list of 255 inner nodes: the
 * nodes r levels above the tile's hashes (1 ≤ r ≤ 8, 256/2^r of them) come
 * after those of the levels below, so they start at 256 - 2^(9-r).
 */
export function innerIndex(r: number, k: number): number {
  return TILE_WIDTH - 2 ** (TILE_HEIGHT + 1 - r) + k;
}

/**
 * The right edge of a tree: the last, partial tile of each tile level, and
 * the size. Appending leaves returns the tiles that changed: tiles that just
 * filled up, and the new partial tiles.
 */
export class TreeEdge {
  #size: number;
  /** edge[L]: the hashes of tile level L's last, partial tile (fewer than 256). */
  readonly #edge: Hash[][];
  /** #fullTiles[L]: how many full tiles tile level L has (the index of its partial tile). */
  readonly #fullTiles: number[] = [];
  /**
   * #nodes[L][r][k]: node k at height r (1..8) inside tile level L's partial
   * tile, once hashed. Complete nodes never change, so repeated roots cost
   * O(log n), and a tile that fills has most of its inner nodes already.
   */
  #nodes: Hash[][][] = [];

  /** An edge for a tree of `size` leaves whose partial tiles hold `edge` (see partialTiles()). */
  constructor(size = 0, edge: Hash[][] = []) {
    this.#size = size;
    this.#edge = edge.map((tile) => [...tile]);
    for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
      this.#fullTiles[level] = Math.floor(hashesAtTileLevel(size, level) / TILE_WIDTH);
    }
    for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
      const want = hashesAtTileLevel(size, level) % TILE_WIDTH;
      if ((this.#edge[level]?.length ?? 0) !== want) {
        throw new RangeError(`edge tile at level ${level} holds ${this.#edge[level]?.length ?? 0} hashes, not ${want}`);
      }
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

  /** Appends leaf hashes; returns every tile that changed (full tiles completed, then the current partial ones). */
  append(leaves: readonly Hash[]): TileWrite[] {
    const full: TileWrite[] = [];
    let top = 0; // the highest tile level this call touched
    for (const leaf of leaves) {
      let hash = leaf;
      for (let level = 0; ; level++) {
        const tile = this.#edgeAt(level);
        tile.push(hash);
        if (level > top) top = level;
        if (tile.length < TILE_WIDTH) break;
        const index = this.#fullTiles[level] ?? 0;
        this.#fullTiles[level] = index + 1;
        hash = this.#tileNode(tile, level, TILE_HEIGHT, 0); // reuses what roots already hashed
        const inner: Hash[] = [];
        for (let r = 1; r <= TILE_HEIGHT; r++) {
          for (let k = 0; k < TILE_WIDTH >> r; k++) inner.push(this.#tileNode(tile, level, r, k));
        }
        full.push({ level, index, hashes: tile, inner });
        this.#edge[level] = [];
        this.#nodes[level] = []; // the tile's inner nodes now live in a full tile, read from storage
      }
      this.#size++;
    }
    const partial: TileWrite[] = [];
    for (let level = 0; level <= top; level++) {
      const hashes = this.#edge[level] ?? [];
      if (hashes.length > 0) partial.push({ level, index: this.#fullTiles[level] ?? 0, hashes: [...hashes] });
    }
    return [...full, ...partial];
  }

  #edgeAt(level: number): Hash[] {
    while (this.#edge.length <= level) this.#edge.push([]);
    return this.#edge[level] as Hash[];
  }

  /** Complete-subtree hashes that the edge holds: enough for the root, and for any node in a partial tile. */
  subtree: SubtreeHash = (level, index) => {
    if (!this.holds(level, index)) throw new RangeError(`node ${level}/${index} is not on the right edge`);
    const at = locateNode(level, index);
    const r = level - at.tileLevel * TILE_HEIGHT;
    return this.#tileNode(this.#edge[at.tileLevel] as Hash[], at.tileLevel, r, at.from / at.count);
  };

  /** Whether subtree(level, index) is a node the edge holds (inside a partial tile), rather than one in a full tile. */
  holds(level: number, index: number): boolean {
    const at = locateNode(level, index);
    const tile = this.#edge[at.tileLevel];
    const partialIndex = Math.floor(hashesAtTileLevel(this.#size, at.tileLevel) / TILE_WIDTH);
    return tile !== undefined && at.tileIndex === partialIndex && at.from + at.count <= tile.length;
  }

  /** Node k at height r inside tile level L's partial tile (whose hashes are `tile`), memoised in #nodes. */
  #tileNode(tile: readonly Hash[], tileLevel: number, r: number, k: number): Hash {
    if (r === 0) return tile[k] as Hash;
    const heights = this.#nodes[tileLevel] ?? [];
    this.#nodes[tileLevel] = heights;
    const row = heights[r] ?? [];
    heights[r] = row;
    let hash = row[k];
    if (hash === undefined) {
      hash = nodeHash(this.#tileNode(tile, tileLevel, r - 1, 2 * k), this.#tileNode(tile, tileLevel, r - 1, 2 * k + 1));
      row[k] = hash;
    }
    return hash;
  }

  /** The edge's tiles, for constructing an equal edge elsewhere. */
  tiles(): Hash[][] {
    return this.#edge.map((tile) => [...tile]);
  }
}
