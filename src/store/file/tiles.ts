/**
 * A directory log's tiles, in the C2SP tlog-tiles layout: <dir>/tile/<L>/<N>
 * for a full tile, <dir>/tile/<L>/<N>.p/<W> for a partial one, so the
 * directory can be served as it is. <dir>/tree-size says how many leaves the
 * stored tiles hold; it is written after them. All of it is derived from
 * log.jsonl and rebuilt from it when missing or damaged, so nothing here is
 * synced.
 */
import { dirname, join } from 'node:path';
import { TILE_WIDTH, type TileWrite, tilePath } from '../../merkle/tiles.js';
import type { TileStore } from '../store.js';
import type { Files } from './files.js';
import { readWholeFile } from './lines.js';

export const TREE_SIZE_FILE = 'tree-size';

export class FileTiles implements TileStore {
  readonly #dir: string;
  readonly #files: Files;
  /** Directories known to exist. */
  readonly #made = new Set<string>();

  constructor(dir: string, files: Files) {
    this.#dir = dir;
    this.#files = files;
  }

  read(level: number, index: number, width: number): Promise<Buffer | null> {
    return readWholeFile(this.#files, join(this.#dir, tilePath(level, index, width)), width * 32);
  }

  /**
   * Full tiles are created once and replace the partial versions written
   * while they filled; partial tiles are replaced whole. Then the size.
   */
  async write(tiles: readonly TileWrite[], size: number): Promise<void> {
    const full = tiles.filter((tile) => tile.hashes.length === TILE_WIDTH * 32);
    const partial = tiles.filter((tile) => tile.hashes.length < TILE_WIDTH * 32);
    await Promise.all(full.map((tile) => this.#writeFull(tile)));
    for (const tile of partial) {
      const path = join(this.#dir, tilePath(tile.level, tile.index, tile.hashes.length / 32));
      await this.#makeDir(dirname(path));
      await this.#files.replaceFile(path, tile.hashes);
    }
    await this.#files.replaceFile(join(this.#dir, TREE_SIZE_FILE), Buffer.from(`${size}\n`));
  }

  async #writeFull(tile: TileWrite): Promise<void> {
    const path = join(this.#dir, tilePath(tile.level, tile.index));
    await this.#makeDir(dirname(path));
    try {
      await this.#files.writeFile(path, tile.hashes);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Written before, by this or an earlier integrator; if it is not these bytes it was damaged: replace it.
      const stored = await readWholeFile(this.#files, path, tile.hashes.length);
      if (stored === null || !stored.equals(tile.hashes)) await this.#files.replaceFile(path, tile.hashes);
    }
    await this.#files.remove(`${path}.p`);
  }

  async size(): Promise<number> {
    const text = (await readWholeFile(this.#files, join(this.#dir, TREE_SIZE_FILE), 32))?.toString('latin1').trim();
    return text !== undefined && /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : 0;
  }

  async clear(): Promise<void> {
    await this.#files.remove(join(this.#dir, TREE_SIZE_FILE));
    await this.#files.remove(join(this.#dir, 'tile'));
    this.#made.clear();
  }

  async #makeDir(dir: string): Promise<void> {
    if (this.#made.has(dir)) return;
    await this.#files.mkdir(dir);
    this.#made.add(dir);
  }
}
