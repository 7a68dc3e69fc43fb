/**
 * The log's Merkle tree (RFC 9162 §2.1) over a TileStore, the same for every
 * backend. The right edge (the partial tile of each level) lives in memory,
 * so extending the tree costs about one node hash per leaf, and the root is
 * at hand. Full tiles go to the store when flushed and never change; roots
 * and proofs at any size read the O(log n) tiles their nodes are in.
 *
 * Only the integrator flushes (writes tiles). Any other process may build
 * the tree in memory from the entries, for proofs, without writing.
 */
import { LogCorruptError, OutOfRangeError } from '../errors.js';
import { HASH_SIZE, type Hash } from '../merkle/hash.js';
import {
  blockNode,
  locateNode,
  TILE_HEIGHT,
  TILE_WIDTH,
  type TileWrite,
  TreeEdge,
  tileBlock,
} from '../merkle/tiles.js';
import { consistencyProof, inclusionProof, recordSubtrees, type SubtreeHash, treeRoot } from '../merkle/tree.js';
import type { TileStore } from '../store/store.js';

/** Blocks of full tiles kept in memory (16 KiB each). */
const CACHED_BLOCKS = 256;

export class Tree {
  readonly #tiles: TileStore;
  #edge = new TreeEdge();
  /** Full tiles built here and not yet stored, by `level/index`. */
  readonly #unwritten = new Map<string, TileWrite>();
  /** Blocks of full tiles read from the store, most recently used last. */
  readonly #blocks = new Map<string, Buffer>();
  /** By tile level: the width of the partial tile last stored. */
  readonly #partialsWritten = new Map<number, number>();
  /** The size last recorded in the store. */
  #flushed = -1;
  /** The stored tiles are not this tree's: the next flush removes them first. */
  #discard = false;

  constructor(tiles: TileStore) {
    this.#tiles = tiles;
  }

  get size(): number {
    return this.#edge.size;
  }

  /** MTH of the whole tree. */
  root(): Hash {
    return this.#edge.root();
  }

  /**
   * Loads the tree the stored tiles hold: its size and partial tiles. Throws
   * LogCorruptError when a partial tile is missing or the wrong length (the
   * caller then rebuilds from the entries).
   */
  async load(): Promise<void> {
    this.reset();
    const size = await this.#tiles.size();
    const edge: Buffer[] = [];
    for (const { level, index, width } of TreeEdge.partialTiles(size)) {
      edge[level] = width === 0 ? Buffer.alloc(0) : await this.#readTile(level, index, width);
    }
    this.#edge = new TreeEdge(size, edge);
    this.#flushed = size;
    for (const tile of this.#edge.partials()) this.#partialsWritten.set(tile.level, tile.hashes.length / HASH_SIZE);
  }

  /**
   * Forgets everything; the tree is empty. `discardStored`: the stored tiles
   * are not to be trusted either (they are removed at the next flush, since a
   * full tile once stored is never overwritten).
   */
  reset(discardStored = false): void {
    if (discardStored) this.#discard = true;
    this.#edge = new TreeEdge();
    this.#unwritten.clear();
    this.#blocks.clear();
    this.#partialsWritten.clear();
    this.#flushed = -1;
  }

  /** Cuts the tree back to its first `size` leaves (the rest is to be taken again from the entries). */
  async truncate(size: number): Promise<void> {
    if (size === this.size) return;
    this.#edge = await this.edgeAt(size);
    for (const [key, tile] of this.#unwritten) {
      if ((tile.index + 1) * TILE_WIDTH ** (tile.level + 1) > size) this.#unwritten.delete(key);
    }
    this.#partialsWritten.clear();
    this.#flushed = -1;
  }

  /** Appends leaf hashes (32 bytes each); the tiles that fill are kept until flush(). */
  extend(leaves: Buffer): void {
    if (leaves.length === 0) return;
    for (const tile of this.#edge.append(leaves)) this.#unwritten.set(`${tile.level}/${tile.index}`, tile);
  }

  /** The hash of leaf `index`. */
  leaf(index: number): Promise<Hash> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) {
      throw new OutOfRangeError(`no leaf ${index} in a tree of ${this.size}`);
    }
    return this.#node(0, index);
  }

  /**
   * Stores what changed since the last flush: the full tiles built, then the
   * partial tiles, then the size, so that a reader who finds the size finds
   * its tiles.
   */
  async flush(): Promise<void> {
    const size = this.size;
    if (size === this.#flushed) return;
    if (this.#discard) {
      await this.#tiles.clear();
      this.#discard = false;
      this.#partialsWritten.clear();
    }
    const writes = [...this.#unwritten.values()];
    const partials = this.#edge
      .partials()
      .filter((tile) => this.#partialsWritten.get(tile.level) !== tile.hashes.length / HASH_SIZE);
    await this.#tiles.write([...writes, ...partials], size);
    for (const tile of writes) {
      const key = `${tile.level}/${tile.index}`;
      this.#unwritten.delete(key);
      if (tile.block !== undefined) this.#cache(key, tile.block);
    }
    for (const tile of partials) this.#partialsWritten.set(tile.level, tile.hashes.length / HASH_SIZE);
    this.#flushed = size;
  }

  /** The right edge of the tree as it was at `size` leaves (the partial tiles it had then). */
  async edgeAt(size: number): Promise<TreeEdge> {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new OutOfRangeError(`the tree has ${this.size} leaves, not ${size}`);
    }
    const tiles: Buffer[] = [];
    for (const { level, index, width } of TreeEdge.partialTiles(size)) {
      const hashes: Hash[] = [];
      for (let k = 0; k < width; k++) hashes.push(await this.#node(level * TILE_HEIGHT, index * TILE_WIDTH + k));
      tiles[level] = Buffer.concat(hashes);
    }
    return new TreeEdge(size, tiles);
  }

  /**
   * The hashes of tile `level`/`index` of `width` (C2SP tlog-tiles): the
   * complete subtrees of 256^level leaves from index·256 on. Only tiles the
   * tree holds whole: every hash of it must be a complete subtree.
   */
  async tile(level: number, index: number, width: number): Promise<Buffer> {
    const first = index * TILE_WIDTH;
    if (width < 1 || width > TILE_WIDTH || (first + width) * TILE_WIDTH ** level > this.size) {
      throw new OutOfRangeError(`tile ${level}/${index} of width ${width} is beyond the tree of ${this.size} leaves`);
    }
    const hashes: Hash[] = [];
    for (let k = 0; k < width; k++) hashes.push(await this.#node(level * TILE_HEIGHT, first + k));
    return Buffer.concat(hashes);
  }

  /** MTH of the first `size` leaves, RFC 9162 §2.1.1. */
  rootAt(size: number): Promise<Hash> {
    if (size === this.size) return Promise.resolve(this.root());
    return this.#compute(size, (get) => treeRoot(get, size));
  }

  /** PATH(index, D[size]), RFC 9162 §2.1.3.1. */
  inclusionProof(index: number, size: number): Promise<Hash[]> {
    return this.#compute(size, (get) => inclusionProof(get, index, size));
  }

  /** PROOF(size1, D[size2]), RFC 9162 §2.1.4.1. */
  consistencyProof(size1: number, size2: number): Promise<Hash[]> {
    return this.#compute(size2, (get) => consistencyProof(get, size1, size2));
  }

  /** Runs a computation twice: once to learn which nodes it reads, then with those nodes fetched. */
  async #compute<T>(size: number, run: (get: SubtreeHash) => T): Promise<T> {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new OutOfRangeError(`the tree has ${this.size} leaves, not ${size}`);
    }
    const plan = recordSubtrees();
    run(plan.get);
    const known = new Map<string, Hash>();
    for (const [level, index] of plan.wanted) known.set(`${level}/${index}`, await this.#node(level, index));
    return run((level, index) => known.get(`${level}/${index}`) as Hash);
  }

  /** A complete subtree's hash: from the edge if it holds it, else from its full tile's block. */
  async #node(level: number, index: number): Promise<Hash> {
    if (this.#edge.holds(level, index)) return this.#edge.subtree(level, index);
    const at = locateNode(level, index);
    const block = await this.#block(at.tileLevel, at.tileIndex);
    return blockNode(block, level - at.tileLevel * TILE_HEIGHT, at.from / at.count);
  }

  async #block(level: number, index: number): Promise<Buffer> {
    const key = `${level}/${index}`;
    const built = this.#unwritten.get(key)?.block;
    if (built !== undefined) return built;
    const cached = this.#blocks.get(key);
    if (cached !== undefined) {
      this.#blocks.delete(key); // most recently used goes last
      this.#blocks.set(key, cached);
      return cached;
    }
    const block = tileBlock(await this.#readTile(level, index, TILE_WIDTH));
    // A stored tile is believed only if it hashes to its parent, which the edge or a believed tile holds.
    const parent = await this.#node((level + 1) * TILE_HEIGHT, index);
    if (!blockNode(block, TILE_HEIGHT, 0).equals(parent)) {
      throw new LogCorruptError(`tile ${level}/${index} does not hash to its parent: it is not this tree's`);
    }
    this.#cache(key, block);
    return block;
  }

  #cache(key: string, block: Buffer): void {
    if (this.#blocks.size >= CACHED_BLOCKS) this.#blocks.delete(this.#blocks.keys().next().value as string);
    this.#blocks.set(key, block);
  }

  async #readTile(level: number, index: number, width: number): Promise<Buffer> {
    const bytes = await this.#tiles.read(level, index, width);
    if (bytes === null) throw new LogCorruptError(`tile ${level}/${index} (width ${width}) is missing`);
    if (bytes.length !== width * HASH_SIZE) {
      throw new LogCorruptError(`tile ${level}/${index} holds ${bytes.length} bytes, not ${width * HASH_SIZE}`);
    }
    return bytes;
  }
}
