/**
 * A witness: an independent party that cosigns a log's checkpoints, but only
 * ever one consistent history per log. It remembers the last checkpoint it
 * cosigned for each origin, and accepts a new one only when
 *   - the log's key signed it,
 *   - it is not smaller than the last (no rollback),
 *   - at equal size it has the same root, and at a larger size a consistency
 *     proof from the last one verifies (no fork, no split view).
 * Then it adds a C2SP tlog-cosignature (cosignature/v1, timestamped).
 *
 * State lives in a directory: state.json (origin → size and root) and key
 * material kept by the caller. Updates hold a flock on <dir>/lock, so two
 * witness processes sharing a state never cosign diverging checkpoints.
 */
import { constants, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvidentError } from './errors.js';
import type { Hash } from './merkle/hash.js';
import { verifyConsistency } from './merkle/verify.js';
import type { PrivateNoteKey, PublicNoteKey } from './note/keys.js';
import { ALG_COSIGNATURE_V1 } from './note/keys.js';
import { cosigner, openNote, signNote } from './note/note.js';
import { trustCheckpoint } from './note/trust.js';
import { type Files, nodeFiles } from './store/file/files.js';

export type WitnessRefusal = 'EVIDENT_WITNESS_ROLLBACK' | 'EVIDENT_WITNESS_FORK';

/** The witness will not cosign: the checkpoint goes back in time, or does not extend what it cosigned before. */
export class WitnessError extends EvidentError {
  constructor(code: WitnessRefusal, message: string) {
    super(code, message);
  }
}

export interface WitnessOptions {
  /** The witness's signer key: algorithm 0x04 (evident keygen --witness). */
  key: PrivateNoteKey;
  /** Where the witness keeps what it has seen. */
  dir: string;
  /** The current POSIX time in seconds, for cosignatures (a seam for tests). */
  now?: () => number;
  files?: Files;
}

interface Seen {
  size: number;
  root: string;
}

const STATE_FILE = 'state.json';

export class Witness {
  readonly #key: PrivateNoteKey;
  readonly #dir: string;
  readonly #now: (() => number) | undefined;
  readonly #files: Files;

  constructor(options: WitnessOptions) {
    if (options.key.alg !== ALG_COSIGNATURE_V1) {
      throw new EvidentError(
        'EVIDENT_BAD_KEY',
        `${options.key.name} is not a witness key (make one with evident keygen --witness)`,
      );
    }
    this.#key = options.key;
    this.#dir = options.dir;
    this.#now = options.now;
    this.#files = options.files ?? nodeFiles;
    mkdirSync(this.#dir, { recursive: true });
  }

  /** The last checkpoint this witness cosigned for `origin`, if any. */
  lastSeen(origin: string): Seen | null {
    return this.#read()[origin] ?? null;
  }

  /**
   * Checks `note` (a checkpoint signed by `logKey`) against the last one seen
   * for its origin, using `proof` (RFC 9162 consistency proof from the last
   * size to the new one; empty on first sight or at equal size), records it,
   * and returns the note with this witness's cosignature added.
   */
  async cosign(note: string, logKey: PublicNoteKey, proof: readonly Hash[]): Promise<string> {
    const checkpoint = trustCheckpoint(note, { log: logKey });
    return this.#locked(async () => {
      const state = this.#read();
      const last = state[checkpoint.origin];
      if (last !== undefined) {
        const lastRoot = Buffer.from(last.root, 'base64');
        if (checkpoint.size < last.size) {
          throw new WitnessError(
            'EVIDENT_WITNESS_ROLLBACK',
            `${checkpoint.origin} went back from ${last.size} to ${checkpoint.size} entries`,
          );
        }
        if (checkpoint.size === last.size && !checkpoint.root.equals(lastRoot)) {
          throw new WitnessError(
            'EVIDENT_WITNESS_FORK',
            `${checkpoint.origin} has two different trees of ${last.size} entries`,
          );
        }
        if (checkpoint.size > last.size && last.size > 0) {
          try {
            verifyConsistency(last.size, checkpoint.size, proof, lastRoot, checkpoint.root);
          } catch (error) {
            throw new WitnessError(
              'EVIDENT_WITNESS_FORK',
              `${checkpoint.origin} at ${checkpoint.size} does not extend what was cosigned at ${last.size}: ${(error as Error).message}`,
            );
          }
        }
      }
      state[checkpoint.origin] = { size: checkpoint.size, root: checkpoint.root.toString('base64') };
      await this.#files.replaceFile(join(this.#dir, STATE_FILE), Buffer.from(`${JSON.stringify(state, null, 2)}\n`));
      const opened = openNote(note, [logKey]);
      return signNote(opened.text, [cosigner(this.#key, this.#now)], [...opened.sigs, ...opened.unverified]);
    });
  }

  #read(): Record<string, Seen> {
    try {
      return JSON.parse(readFileSync(join(this.#dir, STATE_FILE), 'utf8')) as Record<string, Seen>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
  }

  async #locked<T>(work: () => Promise<T>): Promise<T> {
    const fd = await this.#files.open(join(this.#dir, 'lock'), constants.O_WRONLY | constants.O_CREAT, 0o644);
    try {
      if (!this.#files.tryLock(fd)) await this.#files.lockWait(fd);
      return await work();
    } finally {
      await this.#files.close(fd); // closing the descriptor releases the lock
    }
  }
}
