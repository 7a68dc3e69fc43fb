/**
 * A directory log's tiles (C2SP tlog-tiles), kept as one file per tile
 * level: <dir>/tree/<L> holds the hashes of tile level L in order, 32 bytes
 * each, so tile N of width W is the bytes [N·8192, N·8192 + 32·W). The tree
 * only grows and its hashes never change, so a partial tile is a prefix of
 * the full tile it becomes, and storing a tile is one write at its place: no
 * file to create per tile. <dir>/tree/size says how many leaves the stored
 * tiles hold; it is written after them, and nothing past what it implies is
 * read. All of it is derived from log.jsonl and rebuilt from it when missing
 * or damaged, so nothing here is synced.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { HASH_SIZE } from '../../merkle/hash.js';
import { TILE_WIDTH, type TileWrite } from '../../merkle/tiles.js';
import type { TileStore } from '../store.js';
import { type Files, guarded, openOwn, ownDirectory } from './files.js';
import { readFully, readWholeFile } from './lines.js';

export const TREE_DIR = 'tree';
const SIZE_FILE = 'size';
const TILE_BYTES = TILE_WIDTH * HASH_SIZE;

export class FileTiles implements TileStore {
  readonly #dir: string;
  readonly #files: Files;
  /** Open descriptors of the level files, by level, and whether each was opened for writing. */
  readonly #fds = new Map<number, { fd: number; writable: boolean }>();
  #made = false;

  constructor(dir: string, files: Files) {
    this.#dir = join(dir, TREE_DIR);
    this.#files = files;
  }

  read(level: number, index: number, width: number): Promise<Buffer | null> {
    return guarded('read', async () => {
      const fd = await this.#fd(level, false);
      if (fd === null) return null;
      const bytes = Buffer.allocUnsafe(width * HASH_SIZE);
      const read = await readFully(this.#files, fd, bytes, bytes.length, index * TILE_BYTES);
      return read === bytes.length ? bytes : null;
    });
  }

  /** Each tile is written at its place in its level's file; then the size. */
  write(tiles: readonly TileWrite[], size: number): Promise<void> {
    return guarded('write', async () => {
      for (const tile of tiles) {
        const fd = (await this.#fd(tile.level, true)) as number;
        await this.#files.writeAt(fd, tile.hashes, tile.index * TILE_BYTES);
      }
      await this.#files.replaceFile(join(this.#dir, SIZE_FILE), Buffer.from(`${size}\n`));
    });
  }

  size(): Promise<number> {
    return guarded('read', async () => {
      const text = (await readWholeFile(this.#files, join(this.#dir, SIZE_FILE), 32))?.toString('latin1').trim();
      return text !== undefined && /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : 0;
    });
  }

  clear(): Promise<void> {
    return guarded('write', async () => {
      await this.close();
      await this.#files.remove(this.#dir);
      this.#made = false;
    });
  }

  /** The descriptor of level `level`'s file, opened once; null if it does not exist and `create` is false. */
  async #fd(level: number, create: boolean): Promise<number | null> {
    const known = this.#fds.get(level);
    if (known !== undefined && (known.writable || !create)) return known.fd;
    if (known !== undefined) {
      this.#fds.delete(level);
      await this.#files.close(known.fd);
    }
    if (create && !this.#made) {
      await ownDirectory(this.#files, this.#dir);
      this.#made = true;
    }
    const path = join(this.#dir, String(level));
    let fd: number;
    try {
      fd = await openOwn(this.#files, path, create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDONLY);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !create) return null;
      throw error;
    }
    this.#fds.set(level, { fd, writable: create });
    return fd;
  }

  async close(): Promise<void> {
    const fds = [...this.#fds.values()];
    this.#fds.clear();
    for (const { fd } of fds) await this.#files.close(fd);
  }
}
