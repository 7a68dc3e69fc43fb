/**
 * The embedded backend: a directory holding one JSONL file.
 *
 *   <dir>/log.jsonl        the record (entries.ts); <dir>/lock: flock(2) on it is the right to append
 *   <dir>/quarantine/      torn last lines moved aside after a crash
 *   <dir>/tree/           the Merkle tree's C2SP tiles, one file of hashes per tile level (tiles.ts)
 *   <dir>/checkpoint       a signing log's latest checkpoint (checkpoint.ts)
 *   <dir>/lease            flock(2) on it is the integrator lease
 *   <dir>/cosignatures/    checkpoints as witnesses cosigned them
 *   <dir>/config.json      where a signing log's key file is: {"keyFile": path}, relative to <dir> when inside it
 *
 * Only log.jsonl is the record; the rest is derived from it, or belongs to
 * the log's signing.
 */
import { constants } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { EvidentError, InvalidOptionError, LogNotFoundError } from '../../errors.js';
import type { CosignatureStore, KeptNote, Lease, OpenOptions, Store } from '../store.js';
import { FileCheckpoints } from './checkpoint.js';
import { type Durability, FileEntries, LOG_FILE } from './entries.js';
import { type Files, guarded, nodeFiles, ownDirectory, storeError } from './files.js';
import { readWholeFile } from './lines.js';
import { PathLock } from './lock.js';
import { FileTiles } from './tiles.js';

export const LEASE_FILE = 'lease';
export const CONFIG_FILE = 'config.json';
export const COSIGNATURES_DIR = 'cosignatures';

export interface FileStoreOptions {
  /** 'fsync' (default): a commit returns once fdatasync says its lines are on stable storage. 'write': once the kernel has them. */
  durability?: Durability | undefined;
  /** The file layer; tests substitute one that fails or counts. */
  files?: Files | undefined;
}

export class FileStore implements Store {
  readonly dir: string;
  readonly location: string;
  readonly entries: FileEntries;
  readonly tiles: FileTiles;
  readonly checkpoints: FileCheckpoints;
  readonly lease: Lease;
  readonly cosignatures: CosignatureStore;
  readonly #files: Files;
  readonly #lease: PathLock;

  constructor(dir: string, options: FileStoreOptions = {}) {
    this.dir = resolve(dir);
    this.location = this.dir;
    const files = options.files ?? nodeFiles;
    this.#files = files;
    this.entries = new FileEntries(this.dir, files, options.durability ?? 'fsync');
    this.tiles = new FileTiles(this.dir, files);
    this.checkpoints = new FileCheckpoints(this.dir, files);
    this.#lease = new PathLock(files, join(this.dir, LEASE_FILE), constants.O_WRONLY);
    this.lease = {
      tryAcquire: () => guarded('write', async () => (await this.#lease.tryAcquire()) !== null),
      release: () => guarded('write', () => this.#lease.close()), // closing the descriptor releases its flock
    };
    this.cosignatures = new FileCosignatures(join(this.dir, COSIGNATURES_DIR), files);
  }

  async open(options: OpenOptions): Promise<void> {
    const writer = options.create && !options.readOnly;
    let created = false;
    try {
      created = writer && (await this.#files.stat(this.dir)) === null;
      if (writer) await this.#files.mkdir(this.dir);
      else if ((await this.#files.stat(join(this.dir, LOG_FILE))) === null) throw new LogNotFoundError(this.dir);
      await this.entries.open(options);
    } catch (error) {
      if (created) {
        await this.entries.close().catch(() => undefined);
        await this.#files.remove(this.dir).catch(() => undefined); // what this failed open created, and only that
      }
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') {
        throw new InvalidOptionError(`${this.dir} is not a log directory: it, or a directory above it, is a file`);
      }
      throw storeError(error, options.readOnly ? 'read' : 'write');
    }
  }

  async keyFile(): Promise<string | null> {
    const path = join(this.dir, CONFIG_FILE);
    const bytes = await guarded('read', () => readWholeFile(this.#files, path, 64 * 1024));
    if (bytes === null) return null;
    let keyFile: unknown;
    try {
      keyFile = (JSON.parse(bytes.toString('utf8')) as { keyFile?: unknown } | null)?.keyFile;
    } catch {
      throw new EvidentError('EVIDENT_BAD_CONFIG', `${path} is not JSON`);
    }
    if (keyFile === undefined) return null;
    if (typeof keyFile !== 'string' || keyFile === '') {
      throw new EvidentError('EVIDENT_BAD_CONFIG', `${path}: keyFile is not a path`);
    }
    return resolve(this.dir, keyFile);
  }

  async setKeyFile(path: string): Promise<void> {
    const absolute = resolve(path);
    const inside = relative(this.dir, absolute);
    const keyFile = inside.startsWith('..') || isAbsolute(inside) ? absolute : inside;
    const text = `${JSON.stringify({ keyFile }, null, 2)}\n`;
    await guarded('write', () => this.#files.replaceFile(join(this.dir, CONFIG_FILE), Buffer.from(text), true));
  }

  async close(): Promise<void> {
    await this.tiles.close();
    await this.#lease.close();
    await this.checkpoints.close();
    await this.entries.close();
  }
}

/** Cosigned checkpoints, one file each under <dir>/cosignatures/, named by their key. */
class FileCosignatures implements CosignatureStore {
  readonly #dir: string;
  readonly #files: Files;

  constructor(dir: string, files: Files) {
    this.#dir = dir;
    this.#files = files;
  }

  list(): Promise<KeptNote[]> {
    return guarded('read', () => this.#list());
  }

  async #list(): Promise<KeptNote[]> {
    const notes: KeptNote[] = [];
    for (const key of (await this.#files.list(this.#dir)).sort()) {
      if (!/^[0-9a-f]{64}$/.test(key)) continue; // a replacement being written
      const note = await this.get(key);
      if (note !== null) notes.push({ key, note });
    }
    return notes;
  }

  remove(key: string): Promise<void> {
    return guarded('write', () => this.#files.remove(join(this.#dir, key)));
  }

  put(key: string, note: string): Promise<void> {
    return guarded('write', async () => {
      await ownDirectory(this.#files, this.#dir);
      await this.#files.replaceFile(join(this.#dir, key), Buffer.from(note, 'utf8'));
    });
  }

  get(key: string): Promise<string | null> {
    return guarded('read', async () => {
      return (await readWholeFile(this.#files, join(this.#dir, key), 64 * 1024))?.toString('utf8') ?? null;
    });
  }
}
