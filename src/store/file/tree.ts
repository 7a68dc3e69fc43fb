/**
 * The log's Merkle tree on disk: C2SP tlog-tiles under <dir>/tile/, plus
 * <dir>/tree-size saying how many leaves the tiles hold. Both are derived
 * from log.jsonl (each entry's `hash` is its leaf) and rebuilt from it when
 * missing, behind or damaged.
 *
 * The right edge lives in memory, so appending costs O(log n) hashing. A tile
 * is written once, after it fills, in the background and together with the
 * others that filled meanwhile. The partial tiles and tree-size are written
 * at most once a second (after those, also in the background) and on close:
 * they only save a newly opened process from reading the latest entries
 * back from the log, which is what a process whose edge is behind does (each
 * process reads others' entries once: O(1) per entry overall).
 * Proofs read the O(log n) tiles their nodes are in; full tiles never change,
 * so they are cached.
 */
import { constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { LogCorruptError } from '../../errors.js';
import { HASH_SIZE, type Hash, nodeHash } from '../../merkle/hash.js';
import { innerIndex, locateNode, TILE_WIDTH, type TileWrite, TreeEdge, tilePath } from '../../merkle/tiles.js';
import { consistencyProof, inclusionProof, recordSubtrees, type SubtreeHash, treeRoot } from '../../merkle/tree.js';
import { pairHasher, type TileFile } from '../../native.js';
import type { Files } from './files.js';
import { readFully, readWholeFile } from './lines.js';

export const TREE_SIZE_FILE = 'tree-size';
/**
 * Inner nodes of full tiles, beside (not inside) the C2SP tile/ tree: a
 * derived cache that spares proofs hashing. One file per tile level,
 * tile-inner/<L>.nodes, holding tile N's 255 inner nodes (innerIndex order)
 * at N × 255 × 32: written in place, no file created per tile.
 */
export const INNER_DIR = 'tile-inner';
const INNER_BYTES = (TILE_WIDTH - 1) * HASH_SIZE;
const PERSIST_EVERY_MS = 1000;
/** Full tiles held in memory before they are written without waiting for persist() (2 × 8 KiB each). */
const WRITE_FULL_TILES_AT = 256;

/**
 * Reads the leaf hashes of entries [from, to) from the log (concatenated), and
 * the `prev` of entry `from` (null if from = to).
 */
export type LeafReader = (from: number, to: number) => Promise<{ leaves: Buffer; prev: Hash | null }>;

export class FileTree {
  readonly #dir: string;
  readonly #files: Files;
  #edge = new TreeEdge(0, [], pairHasher);
  readonly #fullTiles = new Map<string, Buffer>(); // cache: full tiles never change (hashes or inner nodes)
  readonly #memoryTiles = new Map<string, Buffer>(); // read-only trees: full tiles built but not written
  readonly #nodes = new Map<string, Hash>(); // complete nodes hashed up from full tiles (they never change)
  #dirsMade = new Set<string>();
  /**
   * Full tiles not yet on disk, by level/index. They are written together, in
   * the background, with persist() or once enough have gathered: creating
   * files one at a time, between commits, would put a file's metadata in
   * nearly every journal commit the log's fdatasync forces.
   */
  readonly #unwritten = new Map<string, TileWrite>();
  /** Keys of #unwritten tiles already handed to the background writer. */
  readonly #queued = new Set<string>();
  /** Full tiles being written in the background (they stay in #unwritten until written); the first error, if any. */
  #writing: Promise<void> = Promise.resolve();
  #writeError: unknown = null;
  /** Counts reset()s: a background write queued before one is for a tree that is gone. */
  #generation = 0;
  /** By tile level: how many hashes the level had when its partial tile was last written. */
  #partialsWritten = new Map<number, number>();
  #persistedAt = 0;

  readonly #readOnly: boolean;
  /** Open descriptors of the tile-inner files, by tile level (null: the file does not exist, for a reader). */
  readonly #innerFds = new Map<number, number | null>();

  /** `readOnly`: keep the tree in memory only, never writing tiles (for readers of a log they may not write). */
  constructor(dir: string, files: Files, readOnly = false) {
    this.#dir = dir;
    this.#files = files;
    this.#readOnly = readOnly;
  }

  get size(): number {
    return this.#edge.size;
  }

  /** The root of the current tree. */
  root(): Hash {
    return this.#edge.root();
  }

  /**
   * Brings the tree to `size` leaves: loads the edge the tiles on disk hold,
   * then extends it from the log for whatever they lack. Tiles that claim more
   * leaves than the log has, or that cannot be read, are rebuilt from the log.
   */
  async sync(size: number, readLeaves: LeafReader): Promise<void> {
    if (this.#edge.size === size) return;
    if (this.#edge.size > size) this.reset(); // the log is shorter than our tree: trust nothing held
    let fromDisk = false;
    if (this.#edge.size === 0) {
      let stored = await this.#readStoredSize();
      if (stored > size) stored = 0; // the tiles describe a longer log than this one: start over
      try {
        this.#edge = await this.#loadEdge(stored);
        fromDisk = stored > 0;
      } catch {
        this.reset(); // unreadable or torn tiles: rebuild from the log
      }
    }
    const { leaves, prev } = await readLeaves(this.#edge.size, size);
    // The log must continue the tree: the first new entry's prev is the tree's last leaf.
    if (this.#edge.size > 0 && prev !== null && !(await this.#node(0, this.#edge.size - 1)).equals(prev)) {
      if (!fromDisk) {
        throw new LogCorruptError(
          `entry ${this.#edge.size} does not follow the entries before it: the log was rewritten`,
        );
      }
      return this.rebuild(size, readLeaves); // the tiles are not this log's: build them from the log
    }
    await this.extend(leaves);
  }

  /** Throws away the tiles on disk and builds the tree of `size` leaves again from the log. */
  async rebuild(size: number, readLeaves: LeafReader): Promise<void> {
    this.reset();
    if (!this.#readOnly) {
      await this.#writing; // nothing of the old tree's may land after its files are removed
      this.#writeError = null;
      await this.#closeInner();
      await this.#files.remove(join(this.#dir, 'tile'));
      await this.#files.remove(join(this.#dir, INNER_DIR));
      await this.#files.remove(join(this.#dir, TREE_SIZE_FILE));
      this.#dirsMade.clear();
    }
    await this.extend((await readLeaves(0, size)).leaves);
    await this.persist();
  }

  /** Forgets everything in memory; the next sync reloads from disk. */
  reset(): void {
    this.#generation++; // background writes of the old tree are dropped
    this.#edge = new TreeEdge(0, [], pairHasher);
    this.#nodes.clear();
    this.#partialsWritten.clear();
    this.#fullTiles.clear();
    this.#memoryTiles.clear();
    this.#unwritten.clear();
    this.#queued.clear();
  }

  /**
   * Appends leaf hashes. Full tiles are written in the background; partial
   * tiles and the size wait for persist().
   */
  async extend(leaves: Buffer): Promise<void> {
    if (leaves.length === 0) return;
    const writes = this.#edge.append(leaves);
    if (this.#readOnly) {
      // Nothing is written: full tiles stay in memory, where #node finds them.
      for (const t of writes) {
        this.#memoryTiles.set(`${t.level}/${t.index}`, t.hashes);
        if (t.inner !== undefined) this.#memoryTiles.set(`inner/${t.level}/${t.index}`, t.inner);
      }
      return;
    }
    for (const tile of writes) {
      const key = `${tile.level}/${tile.index}`;
      this.#unwritten.set(key, tile);
      if (this.#unwritten.size - this.#queued.size >= WRITE_FULL_TILES_AT) this.#writeFullTiles();
    }
  }

  /**
   * persist(), if it has not run for a second, in the background: the tree
   * as it is now is written after the full tiles queued before it, and the
   * caller (a step, holding the lock that guards the tree's files) does not
   * wait for any of it. A failure of earlier background writes is thrown.
   */
  async persistIfDue(): Promise<void> {
    if (this.#readOnly || Date.now() - this.#persistedAt < PERSIST_EVERY_MS) return;
    this.#throwWriteError();
    this.#persistedAt = Date.now();
    this.#writeFullTiles();
    const generation = this.#generation;
    const size = this.#edge.size;
    const partials = this.#edge.partials();
    this.#writing = this.#writing.then(async () => {
      if (generation !== this.#generation) return;
      try {
        await this.#writeSizeAndPartials(size, partials);
      } catch (error) {
        this.#writeError ??= error;
      }
    });
  }

  /** Writes the partial tiles and tree-size, so that a new reader need not rebuild them from the log. */
  async persist(): Promise<void> {
    if (this.#readOnly) return;
    this.#writeFullTiles();
    await this.#writing;
    this.#throwWriteError();
    await this.#writeSizeAndPartials(this.#edge.size, this.#edge.partials());
    this.#persistedAt = Date.now();
  }

  /** Throws (once) what a background write failed with. */
  #throwWriteError(): void {
    if (this.#writeError === null) return;
    const error = this.#writeError;
    this.#writeError = null;
    throw error;
  }

  /** The partial tiles of the tree of `size` leaves, then tree-size: after its full tiles, which it claims. */
  async #writeSizeAndPartials(size: number, partials: TileWrite[]): Promise<void> {
    for (const tile of partials) {
      const width = tile.hashes.length / HASH_SIZE;
      if (this.#partialsWritten.get(tile.level) === tile.index * TILE_WIDTH + width) continue;
      await this.#writeTile(tile);
      this.#partialsWritten.set(tile.level, tile.index * TILE_WIDTH + width);
    }
    await this.#writeFileAtomic(join(this.#dir, TREE_SIZE_FILE), Buffer.from(`${size}\n`));
  }

  /** Starts writing the full tiles gathered so far, in the background, one after another. */
  #writeFullTiles(): void {
    const tiles = [...this.#unwritten].filter(([key]) => !this.#queued.has(key));
    if (tiles.length === 0) return;
    for (const [key] of tiles) this.#queued.add(key);
    const generation = this.#generation;
    this.#writing = this.#writing.then(async () => {
      if (this.#files.writeTiles !== undefined) return this.#writeTilesAtOnce(tiles, generation);
      for (const [key, tile] of tiles) {
        if (generation !== this.#generation) return; // reset(): these tiles and their keys are gone
        try {
          await this.#writeTile(tile);
          this.#unwritten.delete(key);
        } catch (error) {
          this.#writeError ??= error;
        } finally {
          this.#queued.delete(key);
        }
      }
    });
  }

  /** #writeTile for full tiles, all of them in one call off the event loop (Files.writeTiles). */
  async #writeTilesAtOnce(tiles: [string, TileWrite][], generation: number): Promise<void> {
    const writeTiles = this.#files.writeTiles as NonNullable<Files['writeTiles']>;
    try {
      const files: TileFile[] = [];
      for (const [, tile] of tiles) {
        const path = join(this.#dir, tilePath(tile.level, tile.index, TILE_WIDTH));
        await this.#makeDir(dirname(path));
        const inner = tile.inner ?? null;
        const fd = inner === null ? -1 : ((await this.#innerFd(tile.level)) as number);
        files.push([path, tile.hashes, `${path}.p`, fd, tile.index * INNER_BYTES, inner]);
      }
      if (generation !== this.#generation) return; // reset(): these tiles and their keys are gone
      const results = await writeTiles(files);
      for (const [k, [key]] of tiles.entries()) {
        const error = results[k] ?? null;
        if (error === null) this.#unwritten.delete(key);
        else this.#writeError ??= error;
      }
    } catch (error) {
      this.#writeError ??= error;
    } finally {
      for (const [key] of tiles) this.#queued.delete(key);
    }
  }

  /** The right edge of the tree as it was at `size` leaves (the level hashes its partial tiles held then). */
  async edgeAt(size: number): Promise<TreeEdge> {
    if (size > this.#edge.size) throw new RangeError(`the tree has ${this.#edge.size} leaves, not ${size}`);
    const tiles: Hash[][] = [];
    for (const { level, index, width } of TreeEdge.partialTiles(size)) {
      tiles[level] = [];
      for (let k = 0; k < width; k++) tiles[level].push(await this.#node(level * 8, index * TILE_WIDTH + k));
    }
    return new TreeEdge(size, tiles, pairHasher);
  }

  /** Root of the tree's first `size` leaves (any size up to the current one). */
  async rootAt(size: number): Promise<Hash> {
    if (size === this.#edge.size) return this.#edge.root();
    return this.#compute(size, (get) => treeRoot(get, size));
  }

  /** RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves. */
  async inclusionProof(index: number, size: number): Promise<Hash[]> {
    return this.#compute(size, (get) => inclusionProof(get, index, size));
  }

  /** RFC 9162 consistency proof from the tree of `size1` leaves to that of `size2`. */
  async consistencyProof(size1: number, size2: number): Promise<Hash[]> {
    return this.#compute(size2, (get) => consistencyProof(get, size1, size2));
  }

  /** Runs a computation twice: once to learn which nodes it reads, then with those nodes read from tiles. */
  async #compute<T>(size: number, run: (get: SubtreeHash) => T): Promise<T> {
    if (size > this.#edge.size) throw new RangeError(`the tree has ${this.#edge.size} leaves, not ${size}`);
    const plan = recordSubtrees();
    run(plan.get);
    const known = new Map<string, Hash>();
    for (const [level, index] of plan.wanted) known.set(`${level}/${index}`, await this.#node(level, index));
    return run((level, index) => known.get(`${level}/${index}`) as Hash);
  }

  /** A complete subtree's hash: from the in-memory edge if it is there, else from its full tile. */
  async #node(level: number, index: number): Promise<Hash> {
    if (this.#edge.holds(level, index)) return this.#edge.subtree(level, index);
    const known = this.#nodes.get(`${level}/${index}`);
    if (known !== undefined) return known;
    const at = locateNode(level, index);
    if (at.count > 1) {
      const inner = await this.#innerNodes(at.tileLevel, at.tileIndex);
      const r = level - at.tileLevel * 8;
      if (inner !== null) return hashAt(inner, innerIndex(r, at.from / at.count));
    }
    const tile = await this.#fullTile(at.tileLevel, at.tileIndex);
    return this.#inTile(tile, level, index, at.count);
  }

  /** Node (level, index) from its full tile, covering `count` of its hashes; inner nodes are memoised (bounded). */
  #inTile(tile: Buffer, level: number, index: number, count: number): Hash {
    if (count === 1) return hashAt(tile, index % TILE_WIDTH);
    const key = `${level}/${index}`;
    let hash = this.#nodes.get(key);
    if (hash === undefined) {
      const half = count / 2;
      hash = nodeHash(
        this.#inTile(tile, level - 1, index * 2, half),
        this.#inTile(tile, level - 1, index * 2 + 1, half),
      );
      if (this.#nodes.size >= 1 << 18) this.#nodes.clear();
      this.#nodes.set(key, hash);
    }
    return hash;
  }

  /** A full tile's hashes, or its inner nodes, if memory holds them: built here, not yet written, or cached. */
  #inMemory(level: number, index: number, part: 'hashes' | 'inner'): Buffer | undefined {
    const key = part === 'inner' ? `inner/${level}/${index}` : `${level}/${index}`;
    return this.#memoryTiles.get(key) ?? this.#unwritten.get(`${level}/${index}`)?.[part] ?? this.#fullTiles.get(key);
  }

  async #fullTile(level: number, index: number): Promise<Buffer> {
    const key = `${level}/${index}`;
    let tile = this.#inMemory(level, index, 'hashes');
    if (tile === undefined) {
      await this.#writing; // it may be on its way to disk
      tile = await this.#readTile(level, index, TILE_WIDTH);
      this.#cacheFullTile(key, tile);
    }
    return tile;
  }

  /** A full tile's 255 inner nodes from the tile-inner cache, or null when it has none (then they are hashed). */
  async #innerNodes(level: number, index: number): Promise<Buffer | null> {
    const key = `inner/${level}/${index}`;
    const cached = this.#inMemory(level, index, 'inner');
    if (cached !== undefined) return cached;
    if (this.#readOnly && this.#memoryTiles.size > 0) return null;
    await this.#writing;
    const fd = await this.#innerFd(level);
    if (fd === null) return null; // no cache: the caller hashes
    const bytes = Buffer.alloc(INNER_BYTES);
    const read = await readFully(this.#files, fd, bytes, INNER_BYTES, index * INNER_BYTES);
    // Past the end, or a hole (a tile not written yet): no cache for it.
    if (read < INNER_BYTES || isZero(bytes.subarray(0, HASH_SIZE)) || isZero(bytes.subarray(-HASH_SIZE))) return null;
    this.#cacheFullTile(key, bytes);
    return bytes;
  }

  /** The tile-inner file of a tile level, opened once (created, unless the tree is read-only: then null if missing). */
  async #innerFd(level: number): Promise<number | null> {
    const known = this.#innerFds.get(level);
    if (known !== undefined) return known;
    const path = join(this.#dir, INNER_DIR, `${level}.nodes`);
    let fd: number | null;
    if (!this.#readOnly) {
      await this.#makeDir(dirname(path));
      fd = await this.#files.open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    } else {
      fd = await this.#files.open(path, constants.O_RDONLY).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
    }
    this.#innerFds.set(level, fd);
    return fd;
  }

  async #closeInner(): Promise<void> {
    const fds = [...this.#innerFds.values()].filter((fd) => fd !== null);
    this.#innerFds.clear();
    for (const fd of fds) await this.#files.close(fd);
  }

  /** Closes the files the tree keeps open. */
  async close(): Promise<void> {
    await this.#writing;
    await this.#closeInner();
  }

  #cacheFullTile(key: string, tile: Buffer): void {
    if (this.#fullTiles.size >= 256) this.#fullTiles.delete(this.#fullTiles.keys().next().value as string);
    this.#fullTiles.set(key, tile);
  }

  async #loadEdge(size: number): Promise<TreeEdge> {
    const tiles: Buffer[] = [];
    for (const { level, index, width } of TreeEdge.partialTiles(size)) {
      tiles[level] = width === 0 ? Buffer.alloc(0) : await this.#readTile(level, index, width);
    }
    return new TreeEdge(size, tiles, pairHasher);
  }

  async #readTile(level: number, index: number, width: number): Promise<Buffer> {
    const name = tilePath(level, index, width);
    const bytes = await readWholeFile(this.#files, join(this.#dir, name), width * HASH_SIZE);
    if (bytes === null) throw new LogCorruptError(`tile ${name} is missing`);
    if (bytes.length !== width * HASH_SIZE) throw new LogCorruptError(`tile ${name} is ${bytes.length} bytes`);
    return bytes;
  }

  async #writeTile(tile: TileWrite): Promise<void> {
    const width = tile.hashes.length / HASH_SIZE;
    const path = join(this.#dir, tilePath(tile.level, tile.index, width));
    if (width < TILE_WIDTH) return this.#writeFileAtomic(path, tile.hashes);
    // A full tile never changes: written in place, once. If it exists, another writer wrote the same bytes.
    await this.#makeDir(dirname(path));
    try {
      await this.#files.writeFile(path, tile.hashes);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (tile.inner !== undefined) {
      const fd = (await this.#innerFd(tile.level)) as number;
      await this.#files.writeAt(fd, tile.inner, tile.index * INNER_BYTES);
    }
    // It supersedes the partial versions written while it filled.
    if ((await this.#files.stat(`${path}.p`)) !== null) await this.#files.remove(`${path}.p`);
  }

  async #readStoredSize(): Promise<number> {
    const text = (await readWholeFile(this.#files, join(this.#dir, TREE_SIZE_FILE), 32))?.toString('latin1').trim();
    return text !== undefined && /^\d+$/.test(text) ? Number(text) : 0;
  }

  /** Writes a whole file under a temporary name, then renames it into place: readers see old or new, never half. */
  async #writeFileAtomic(path: string, data: Buffer): Promise<void> {
    await this.#makeDir(dirname(path));
    await this.#files.replaceFile(path, data);
  }

  async #makeDir(dir: string): Promise<void> {
    if (this.#dirsMade.has(dir)) return;
    await this.#files.mkdir(dir);
    this.#dirsMade.add(dir);
  }
}

/** Hash k of concatenated hashes, as a view. */
function hashAt(hashes: Buffer, k: number): Hash {
  return hashes.subarray(k * HASH_SIZE, (k + 1) * HASH_SIZE);
}

function isZero(bytes: Buffer): boolean {
  return bytes.every((b) => b === 0);
}
