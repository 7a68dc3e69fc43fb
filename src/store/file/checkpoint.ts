/**
 * A directory log's latest signed checkpoint: <dir>/checkpoint, a C2SP signed
 * note. It is replaced whole, by a synced temporary file renamed over it, so
 * a reader that takes no lock (cat, a web server) sees the old note or the
 * new one, never half of either. Compare-and-replace holds a flock on
 * <dir>/checkpoint.lock while it reads, compares and renames.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { LogCorruptError } from '../../errors.js';
import type { CheckpointStore } from '../store.js';
import { type Files, guarded } from './files.js';
import { readWholeFile } from './lines.js';
import { PathLock } from './lock.js';

export const CHECKPOINT_FILE = 'checkpoint';
/** A checkpoint note is a few hundred bytes; with many cosignatures, still far below this. */
const MAX_NOTE_BYTES = 16 * 1024;

export class FileCheckpoints implements CheckpointStore {
  readonly #path: string;
  readonly #files: Files;
  readonly #lock: PathLock;
  /** One replace at a time in this process: flock does not exclude our own descriptor. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(dir: string, files: Files) {
    this.#path = join(dir, CHECKPOINT_FILE);
    this.#files = files;
    this.#lock = new PathLock(files, join(dir, `${CHECKPOINT_FILE}.lock`), constants.O_WRONLY);
  }

  read(): Promise<string | null> {
    return guarded('read', () => this.#read());
  }

  async #read(): Promise<string | null> {
    const bytes = await readWholeFile(this.#files, this.#path, MAX_NOTE_BYTES);
    if (bytes === null) return null;
    if (bytes.length > MAX_NOTE_BYTES) throw new LogCorruptError(`${this.#path} is larger than a checkpoint can be`);
    return bytes.toString('utf8');
  }

  replace(expected: string | null, next: string): Promise<boolean> {
    const result = this.#turn.then(() =>
      guarded('write', () =>
        this.#lock.hold(async () => {
          if ((await this.#read()) !== expected) return false;
          await this.#files.replaceFile(this.#path, Buffer.from(next, 'utf8'), true);
          return true;
        }),
      ),
    );
    this.#turn = result.catch(() => undefined);
    return result;
  }

  close(): Promise<void> {
    return this.#lock.close();
  }
}
