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
 * State: <dir>/<origin's SHA-256, hex>/<generation>, each file the JSON
 * {"origin","size","root"} of one checkpoint cosigned. A cosignature is
 * given only once its generation file is created, and a generation is
 * created at most once (link(2) of a synced file fails if the name exists):
 * two witness processes sharing a state can never both advance from the same
 * checkpoint, so they never cosign two diverging ones. No lock, no native
 * code.
 */
import { hash, randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { EvidentError, ProofError, WitnessError } from './errors.js';
import { emptyRoot, type Hash } from './merkle/hash.js';
import { verifyConsistency } from './merkle/verify.js';
import type { Checkpoint } from './note/checkpoint.js';
import { ALG_COSIGNATURE_V1, type PrivateNoteKey, type PublicNoteKey, parseSignerKey } from './note/keys.js';
import { cosigner, openNote, signNote } from './note/note.js';
import { trustCheckpoint } from './note/trust.js';

export interface WitnessOptions {
  /** The witness's signer key, parsed or as its text: algorithm 0x04 (evident keygen --witness). */
  key: PrivateNoteKey | string;
  /** Where the witness keeps what it has cosigned. */
  dir: string;
  /** The current POSIX time in seconds, for cosignatures. */
  now?: () => number;
}

/** The last checkpoint a witness cosigned for an origin. */
export interface Seen {
  size: number;
  /** Base64. */
  root: string;
}

const GENERATION = /^[0-9]{16}$/;

export class Witness {
  readonly #key: PrivateNoteKey;
  readonly #dir: string;
  readonly #now: (() => number) | undefined;

  constructor(options: WitnessOptions) {
    const key = typeof options.key === 'string' ? parseSignerKey(options.key) : options.key;
    if (key?.alg !== ALG_COSIGNATURE_V1) {
      throw new EvidentError(
        'EVIDENT_BAD_KEY',
        `${key?.name} is not a witness key (make one with evident keygen --witness)`,
      );
    }
    this.#key = key;
    this.#dir = options.dir;
    this.#now = options.now;
  }

  /** This witness's public key, which its cosignatures verify under. */
  get verifierKey(): PublicNoteKey {
    const { name, alg, keyHash, publicKey, key } = this.#key;
    return { name, alg, keyHash, publicKey, key };
  }

  /** Makes the state directory (0700) if missing, and checks that it is a directory this process can write. */
  checkState(): void {
    try {
      makeDirectory(this.#dir);
      if (!statSync(this.#dir).isDirectory()) throw new Error('it is not a directory');
      accessSync(this.#dir, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw stateError(this.#dir, error);
    }
  }

  /** The last checkpoint this witness cosigned for `origin`, if any. */
  lastSeen(origin: string): Seen | null {
    return this.#latest(origin).seen;
  }

  /**
   * Checks `note` (a checkpoint signed by `logKey`) against the last one
   * cosigned for its origin, using `proof` (the RFC 9162 consistency proof
   * from the last size to the new one; empty on first sight or at equal
   * size), records it, and returns the note with this witness's cosignature
   * added.
   */
  async cosign(note: string, logKey: PublicNoteKey, proof: readonly Hash[]): Promise<string> {
    const checkpoint = trustCheckpoint(note, { log: logKey });
    const origin = checkpoint.origin;
    emptyTreeAtSizeZero(checkpoint);
    this.#advance(checkpoint, (last) => {
      if (last === null) return;
      if (checkpoint.size < last.size) {
        throw new WitnessError(
          'EVIDENT_WITNESS_ROLLBACK',
          `${origin} went back from ${last.size} to ${checkpoint.size} entries`,
        );
      }
      sameTreeAtSize(origin, last, checkpoint);
      if (checkpoint.size > last.size && last.size > 0) {
        if (proof.length === 0) {
          throw new EvidentError(
            'EVIDENT_BAD_PROOF',
            `no consistency proof was given from size ${last.size}, the last cosigned for ${origin}, ` +
              `to ${checkpoint.size} (evident proof consistency --from ${last.size} --to ${checkpoint.size})`,
          );
        }
        try {
          verifyConsistency(last.size, checkpoint.size, proof, Buffer.from(last.root, 'base64'), checkpoint.root);
        } catch (error) {
          // A proof that fails cannot say whether the log forked or the proof is for other sizes (C2SP
          // tlog-witness answers 422 either way); one made from the log itself can (the CLI's --log).
          if (!(error instanceof ProofError)) throw error;
          throw new ProofError(
            `the proof does not show ${origin} at ${checkpoint.size} extends what was cosigned at ${last.size} ` +
              `(a fork, or a proof for other sizes): ${error.message}`,
          );
        }
      }
    });
    const opened = openNote(note, [logKey]);
    return signNote(opened.text, [cosigner(this.#key, this.#now)], [...opened.sigs, ...opened.unverified]);
  }

  /**
   * C2SP tlog-witness add-checkpoint: `old` must be the size this witness
   * last cosigned for the checkpoint's origin (0 if none), else
   * EVIDENT_WITNESS_CONFLICT carrying that size (409); `proof` is the
   * consistency proof from it (empty from 0; a bad one is EVIDENT_BAD_PROOF,
   * 422); at equal size the roots must match (EVIDENT_WITNESS_FORK, 409). The
   * checkpoint must be signed by `logKey` (the caller found it by origin).
   * Returns this witness's cosignature line, once the new state is durable;
   * the check and the record are one step (a generation created once).
   */
  async addCheckpoint(old: number, proof: readonly Hash[], note: string, logKey: PublicNoteKey): Promise<string> {
    const checkpoint = trustCheckpoint(note, { log: logKey });
    const origin = checkpoint.origin;
    if (old > checkpoint.size) {
      throw new EvidentError(
        'EVIDENT_BAD_REQUEST',
        `old size ${old} is larger than the checkpoint's ${checkpoint.size}`,
      );
    }
    emptyTreeAtSizeZero(checkpoint);
    this.#advance(checkpoint, (last) => {
      const lastSize = last?.size ?? 0;
      if (old !== lastSize) {
        throw new WitnessError(
          'EVIDENT_WITNESS_CONFLICT',
          `this witness last cosigned ${origin} at size ${lastSize}, not ${old}`,
          lastSize,
        );
      }
      // From 0, or between equal sizes, there is nothing to prove: a proof given is not one (422, as any
      // proof that does not verify), checked once the client is known to start from the right size.
      if ((old === 0 || old === checkpoint.size) && proof.length > 0) {
        throw new ProofError(
          `a consistency proof from size ${old} to ${checkpoint.size} is empty, not ${proof.length} hashes`,
        );
      }
      if (last === null) return;
      sameTreeAtSize(origin, last, checkpoint);
      if (checkpoint.size > last.size && last.size > 0) {
        verifyConsistency(last.size, checkpoint.size, proof, Buffer.from(last.root, 'base64'), checkpoint.root);
      }
    });
    const cosigned = signNote(openNote(note, [logKey]).text, [cosigner(this.#key, this.#now)]);
    return cosigned.slice(cosigned.lastIndexOf('\n\n') + 2);
  }

  /**
   * Records `checkpoint` as the next generation for its origin once `judge`
   * (which throws to refuse) accepts it against the last record; if another
   * process recorded that generation first, it is judged again against that.
   */
  #advance(checkpoint: Checkpoint, judge: (last: Seen | null) => void): void {
    const { origin } = checkpoint;
    for (;;) {
      const { seen, generation } = this.#latest(origin);
      judge(seen);
      if (
        this.#record(origin, generation + 1, {
          origin,
          size: checkpoint.size,
          root: checkpoint.root.toString('base64'),
        })
      )
        return;
    }
  }

  #originDir(origin: string): string {
    return join(this.#dir, hash('sha256', origin, 'hex'));
  }

  /** The newest record for `origin` and its generation (0 and null before any). */
  #latest(origin: string): { seen: Seen | null; generation: number } {
    const dir = this.#originDir(origin);
    let names: string[];
    try {
      names = readdirSync(dir).filter((name) => GENERATION.test(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { seen: null, generation: 0 };
      throw stateError(dir, error);
    }
    if (names.length === 0) return { seen: null, generation: 0 };
    const name = names.sort().at(-1) as string;
    const file = join(dir, name);
    let value: { origin?: unknown; size?: unknown; root?: unknown };
    try {
      value = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw stateError(file, error);
    }
    if (value.origin !== origin || !Number.isSafeInteger(value.size) || typeof value.root !== 'string') {
      throw stateError(file, new Error(`it is not a record of a checkpoint of ${origin}`));
    }
    return { seen: { size: value.size as number, root: value.root }, generation: Number(name) };
  }

  /** Creates generation `generation`'s record, synced; false if it exists already. Older ones beyond two go. */
  #record(origin: string, generation: number, seen: Seen & { origin: string }): boolean {
    try {
      return this.#create(origin, generation, seen);
    } catch (error) {
      if (error instanceof EvidentError) throw error;
      throw stateError(this.#originDir(origin), error);
    }
  }

  #create(origin: string, generation: number, seen: Seen & { origin: string }): boolean {
    const dir = this.#originDir(origin);
    makeDirectory(dir);
    const temporary = join(dir, `.${randomBytes(8).toString('hex')}.tmp`);
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(seen)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temporary, join(dir, String(generation).padStart(16, '0')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw stateError(dir, error);
    } finally {
      unlinkSync(temporary);
    }
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    for (const name of readdirSync(dir)) {
      if (GENERATION.test(name) && Number(name) < generation - 2) unlinkSync(join(dir, name));
    }
    return true;
  }
}

/**
 * mkdir -p, mode 0700, one component at a time: Node's recursive mkdirSync
 * spins forever on a path it cannot create under /proc.
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error;
    makeDirectory(dirname(dir));
    mkdirSync(dir, { mode: 0o700 });
  }
}

/** A checkpoint of size 0 must have the empty tree's root (C2SP tlog-witness: else 422), or it vouches for a tree no log has. */
function emptyTreeAtSizeZero(checkpoint: Checkpoint): void {
  if (checkpoint.size === 0 && !checkpoint.root.equals(emptyRoot())) {
    throw new ProofError(`${checkpoint.origin} at size 0 has a root that is not the empty tree's`);
  }
}

/** Refuses a checkpoint of the size last cosigned with another root: a fork (409 over HTTP, with that size). */
function sameTreeAtSize(origin: string, last: Seen, checkpoint: Checkpoint): void {
  if (checkpoint.size === last.size && !checkpoint.root.equals(Buffer.from(last.root, 'base64'))) {
    throw new WitnessError(
      'EVIDENT_WITNESS_FORK',
      `${origin} has two different trees of ${last.size} entries`,
      last.size,
    );
  }
}

function stateError(file: string, cause: unknown): EvidentError {
  return new EvidentError(
    'EVIDENT_WITNESS_STATE',
    `the witness state ${file} cannot be used: ${(cause as Error).message}`,
    { cause },
  );
}
