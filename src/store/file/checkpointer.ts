/**
 * Signed checkpoints for a file log: <dir>/checkpoint holds the latest, as a
 * signed note (C2SP tlog-checkpoint). Writers read and replace it under the
 * checkpoint lock (flock on <dir>/checkpoint.lock), separate from the append
 * lock, so signing never holds up a commit. A new note is written beside it
 * and renamed over it, so anyone who reads the file without the lock (a
 * witness, `cat`, a web server) sees one whole note, old or new: written in
 * place, a concurrent reader could see a mix of both.
 *
 * The one rule: never sign a checkpoint inconsistent with one already
 * signed. Before signing, the checkpoint on disk (whoever wrote it) is opened
 * with the log's key and its root compared with our tree's root at its size;
 * a mismatch means the log is not the history that was signed, and nothing
 * is signed. A checkpoint never moves backwards: one larger than our tree
 * (another process is ahead) is left as it is.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { LogCorruptError } from '../../errors.js';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from '../../note/checkpoint.js';
import type { PrivateNoteKey } from '../../note/keys.js';
import { ed25519Signer, openNote, signNote } from '../../note/note.js';
import type { FileStat, Files } from './files.js';
import { readWholeFile } from './lines.js';
import { PathLock } from './path-lock.js';

export const CHECKPOINT_FILE = 'checkpoint';
/** Empty; flock(2) on it is the checkpoint lock. */
export const CHECKPOINT_LOCK_FILE = 'checkpoint.lock';
/** A checkpoint note is a few hundred bytes; with many extension lines, still far below this. */
const MAX_NOTE_BYTES = 16 * 1024;

export interface CheckpointerOptions {
  key: PrivateNoteKey;
  /** Sign at most this often, in milliseconds; 0 (default) signs whenever the tree has grown. */
  intervalMs?: number | undefined;
}

/** What the checkpointer needs from the tree: its size, its root, and its root at any smaller size. */
export interface TreeView {
  size: number;
  root(): Buffer;
  rootAt(size: number): Promise<Buffer>;
}

export class Checkpointer {
  readonly #files: Files;
  readonly #key: PrivateNoteKey;
  /** Sign at most this often (ms); 0: whenever the tree has grown. */
  readonly intervalMs: number;
  readonly #lock: PathLock;
  readonly #path: string;
  /** The checkpoint file as we last read or wrote it: which file it was, its bytes and what they say. */
  #known: { file: FileStat; checkpoint: Checkpoint; note: Buffer } | null = null;
  /** The largest size whose root we have compared with our tree (checkpoints only grow, so smaller ones were too). */
  #checkedSize = -1;
  #signedAt = 0;

  constructor(dir: string, files: Files, options: CheckpointerOptions) {
    this.#files = files;
    this.#key = options.key;
    this.intervalMs = options.intervalMs ?? 0;
    this.#path = join(dir, CHECKPOINT_FILE);
    this.#lock = new PathLock(files, join(dir, CHECKPOINT_LOCK_FILE), constants.O_WRONLY);
  }

  /** Runs `work` holding the checkpoint lock. */
  locked<T>(work: () => Promise<T>): Promise<T> {
    return this.#lock.hold(work);
  }

  /**
   * Under the checkpoint lock: the checkpoint on disk, opened with the log's
   * key (null if none was signed yet). Read again only when the file is
   * another one than we last read or wrote (writers replace it, never write
   * into it) or was changed in place (a restore), by size or mtime.
   */
  async read(): Promise<Checkpoint | null> {
    const file = await this.#files.stat(this.#path);
    if (file === null || file.size === 0) return null;
    const known = this.#known;
    if (known !== null && sameVersion(known.file, file)) return known.checkpoint;
    const note = await readWholeFile(this.#files, this.#path, MAX_NOTE_BYTES);
    if (note === null || note.length === 0) return null;
    if (note.length > MAX_NOTE_BYTES) throw new LogCorruptError(`${this.#path} is larger than a checkpoint can be`);
    if (known?.note.equals(note)) {
      this.#known = { ...known, file };
      return known.checkpoint;
    }
    const checkpoint = parseCheckpoint(openNote(note.toString('utf8'), [this.#key]).text);
    if (checkpoint.origin !== this.#key.name) {
      throw new LogCorruptError(`${this.#path} is for ${checkpoint.origin}, not ${this.#key.name}`);
    }
    this.#known = { file, checkpoint, note };
    return checkpoint;
  }

  /** Throws LogCorruptError unless the tree's first `checkpoint.size` leaves hash to its root. */
  async compare(tree: TreeView, checkpoint: Checkpoint): Promise<void> {
    if (checkpoint.size <= this.#checkedSize) return;
    if (checkpoint.size > tree.size) throw new RangeError(`the tree has ${tree.size} leaves, not ${checkpoint.size}`);
    if (!(await tree.rootAt(checkpoint.size)).equals(checkpoint.root)) {
      throw new LogCorruptError(
        `the log's first ${checkpoint.size} entries do not match its signed checkpoint: the history was rewritten`,
      );
    }
    this.#checkedSize = checkpoint.size;
  }

  /** How long until a checkpoint is due: 0 without an interval or once it has passed. */
  dueInMs(): number {
    return this.intervalMs > 0 ? Math.max(0, this.#signedAt + this.intervalMs - Date.now()) : 0;
  }

  /** Forgets which sizes were compared (the tree was rebuilt). */
  forget(): void {
    this.#checkedSize = -1;
  }

  /**
   * Under the checkpoint lock: signs a checkpoint of the tree if it is larger
   * than the one on disk and one is due (or `force`), after checking the tree
   * extends the one on disk. The note replaces the file whole (written
   * beside it, renamed over it). Returns the size the checkpoint on disk now
   * covers.
   */
  async publish(tree: TreeView, force = false): Promise<number> {
    const last = await this.read();
    if (last !== null && last.size >= tree.size) {
      if (last.size === tree.size) await this.compare(tree, last);
      return last.size;
    }
    if (last !== null) await this.compare(tree, last);
    if (!force && this.dueInMs() > 0) return last?.size ?? 0;
    const checkpoint: Checkpoint = { origin: this.#key.name, size: tree.size, root: tree.root(), extensions: [] };
    const note = Buffer.from(signNote(formatCheckpoint(checkpoint), [ed25519Signer(this.#key)]), 'utf8');
    await this.#files.replaceFile(this.#path, note);
    const file = await this.#files.stat(this.#path);
    if (file === null) throw new LogCorruptError(`${this.#path} was removed as it was written`);
    this.#known = { file, checkpoint, note };
    this.#checkedSize = checkpoint.size;
    this.#signedAt = Date.now();
    return checkpoint.size;
  }

  async close(): Promise<void> {
    await this.#lock.close();
  }
}

/** Whether two stats are of one version of a file: the same file, not changed in place since. */
function sameVersion(a: FileStat, b: FileStat): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
