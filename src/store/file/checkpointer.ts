/**
 * Signed checkpoints for a file log: <dir>/checkpoint holds the latest, as a
 * signed note (C2SP tlog-checkpoint). Every read and write of it happens
 * under a flock on the file itself — the checkpoint lock, separate from the
 * append lock, so signing never holds up a commit. A new note is written
 * over the old one in place (~2 µs; renaming a new file over it costs ~160
 * µs on ext4, which flushes the new file's data on such a rename): a reader
 * without the lock could catch a write half done, so readers take it too
 * (readCheckpointNote).
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
import { ed25519Key, ed25519Sign } from '../../native.js';
import { type Checkpoint, checkpointNoteMaker, parseCheckpoint } from '../../note/checkpoint.js';
import type { PrivateNoteKey } from '../../note/keys.js';
import { ed25519Signer, openNote } from '../../note/note.js';
import type { Files } from './files.js';
import { readFully } from './lines.js';
import { PathLock } from './path-lock.js';

export const CHECKPOINT_FILE = 'checkpoint';
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
  /** The checkpoint file as we last read or wrote it: its bytes and what they say. */
  #known: { checkpoint: Checkpoint; note: Buffer } | null = null;
  /** The largest size whose root we have compared with our tree (checkpoints only grow, so smaller ones were too). */
  #checkedSize = -1;
  #signedAt = 0;
  /** The checkpoint file's length as read() last found it. */
  #length = 0;
  readonly #buffer = Buffer.allocUnsafe(MAX_NOTE_BYTES + 1);
  /** Signed checkpoint notes, with the addon's signer (its context set up once, native/sign.c), else node:crypto's. */
  readonly #makeNote: (size: number, root: Buffer) => Buffer;
  /** The log's key in the addon, for writeCheckpoint (null without one), and the note's fixed parts. */
  readonly #nativeKey: object | null;
  readonly #noteHead: Buffer;
  readonly #signatureLine: Buffer;

  constructor(dir: string, files: Files, options: CheckpointerOptions) {
    this.#files = files;
    this.#key = options.key;
    this.intervalMs = options.intervalMs ?? 0;
    const key = options.key;
    const sign = ed25519Sign;
    const nativeKey = sign === undefined ? null : (ed25519Key?.(key.seed) ?? null);
    this.#nativeKey = nativeKey;
    const signer =
      nativeKey === null || sign === undefined
        ? ed25519Signer(key)
        : { name: key.name, keyHash: key.keyHash, sign: (text: Buffer) => sign(nativeKey, text) };
    this.#makeNote = checkpointNoteMaker(key.name, signer); // checks the name once, for #writeKnown's notes too
    this.#noteHead = Buffer.from(`${key.name}\n`, 'utf8');
    this.#signatureLine = Buffer.from(`\n— ${key.name} `, 'utf8');
    this.#lock = new PathLock(files, join(dir, CHECKPOINT_FILE), constants.O_RDWR);
  }

  /** Runs `work` holding the checkpoint lock. */
  locked<T>(work: () => Promise<T>): Promise<T> {
    return this.#lock.hold(work);
  }

  /**
   * Under the checkpoint lock: the checkpoint on disk, opened with the log's
   * key (null if none was signed yet). Its bytes are read every time (a few
   * hundred, from the page cache; a file's mtime is too coarse to tell two
   * writers apart) but its signature is checked only when they changed.
   */
  async read(): Promise<Checkpoint | null> {
    const bytes = this.#buffer;
    const length = await readNote(this.#files, await this.#lock.fd(), bytes, this.#lock.path);
    this.#length = length;
    if (length === 0) return null;
    const known = this.#known;
    if (known?.note.equals(bytes.subarray(0, length))) return known.checkpoint;
    const note = Buffer.from(bytes.subarray(0, length));
    const checkpoint = parseCheckpoint(openNote(note.toString('utf8'), [this.#key]).text);
    if (checkpoint.origin !== this.#key.name) {
      throw new LogCorruptError(`${this.#lock.path} is for ${checkpoint.origin}, not ${this.#key.name}`);
    }
    this.#known = { checkpoint, note };
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
   * extends the one on disk. The note is written in place: it is a few
   * hundred bytes, one sector, and it never gets shorter (only the size's
   * digits grow), so nothing is left of the old one. Returns the size the
   * checkpoint on disk now covers.
   */
  async publish(tree: TreeView, force = false): Promise<number> {
    const written = await this.#writeKnown(tree, force);
    if (written !== null) return written;
    const last = await this.read();
    if (last !== null && last.size >= tree.size) {
      if (last.size === tree.size) await this.compare(tree, last);
      return last.size;
    }
    if (last !== null) await this.compare(tree, last);
    if (!force && this.dueInMs() > 0) return last?.size ?? 0;
    const root = tree.root();
    const note = this.#makeNote(tree.size, root);
    const fd = await this.#lock.fd();
    await this.#files.writeAt(fd, note, 0);
    if (this.#length > note.length) await this.#files.ftruncate(fd, note.length); // read() just measured it
    return this.#wrote(tree.size, root, note);
  }

  /** The file now holds `note`, our checkpoint of `size` leaves with `root`: remember it. Returns `size`. */
  #wrote(size: number, root: Buffer, note: Buffer): number {
    this.#length = note.length;
    this.#known = { checkpoint: { origin: this.#key.name, size, root, extensions: [] }, note };
    this.#checkedSize = size;
    this.#signedAt = Date.now();
    return size;
  }

  /**
   * publish() in its common case, in one call into the addon (Files.
   * writeCheckpoint, native/checkpoint.c): the file still holds the note we
   * last read or wrote, whose root our tree was found to have, the tree has
   * grown past it and a checkpoint is due — then the new note is made and
   * written. Null when any of that is not so, or there is no such call; then
   * publish() reads and judges the file as usual.
   */
  async #writeKnown(tree: TreeView, force: boolean): Promise<number | null> {
    const write = this.#files.writeCheckpoint;
    const known = this.#known;
    const key = this.#nativeKey;
    if (write === undefined || key === null || known === null) return null;
    const size = tree.size;
    if (size <= known.checkpoint.size || known.checkpoint.size > this.#checkedSize) return null;
    if (!force && this.dueInMs() > 0) return null;
    const root = tree.root();
    const note = write({
      fd: await this.#lock.fd(),
      known: known.note,
      head: this.#noteHead,
      signatureLine: this.#signatureLine,
      keyHash: this.#key.keyHash,
      key,
      size,
      root,
    });
    if (note === null) return null; // someone else wrote the file: judge it
    return this.#wrote(size, root, note);
  }

  async close(): Promise<void> {
    await this.#lock.close();
  }
}

/** The checkpoint note in `dir`, read under the checkpoint lock (never half written); null if there is none. */
export async function readCheckpointNote(files: Files, dir: string): Promise<string | null> {
  const path = join(dir, CHECKPOINT_FILE);
  if ((await files.stat(path)) === null) return null;
  // A lock of our own (another open file description): it excludes this process's writers too.
  const lock = new PathLock(files, path, constants.O_RDONLY);
  try {
    return await lock.hold(async (fd) => {
      const bytes = Buffer.allocUnsafe(MAX_NOTE_BYTES + 1);
      return bytes.toString('utf8', 0, await readNote(files, fd, bytes, path));
    });
  } finally {
    await lock.close();
  }
}

/** Reads the note in the file `fd` into `buffer` (MAX_NOTE_BYTES + 1 long); returns its length. */
async function readNote(files: Files, fd: number, buffer: Buffer, path: string): Promise<number> {
  const length = await readFully(files, fd, buffer, buffer.length, 0);
  if (length > MAX_NOTE_BYTES) throw new LogCorruptError(`${path} is larger than a checkpoint can be`);
  return length;
}
