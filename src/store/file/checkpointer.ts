/**
 * Publishing signed checkpoints for a file log: <dir>/checkpoint holds the
 * latest, as a signed note (C2SP tlog-checkpoint). Runs under the append lock.
 *
 * The one rule: never sign a checkpoint inconsistent with one already
 * signed. Before signing, the checkpoint on disk (whoever wrote it) is opened
 * with the log's key and its root compared with our tree's root at its size;
 * a mismatch means the log is not the history that was signed, and nothing
 * is signed.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { LogCorruptError } from '../../errors.js';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from '../../note/checkpoint.js';
import type { PrivateNoteKey } from '../../note/keys.js';
import { ed25519Signer, openNote, signNote } from '../../note/note.js';
import type { FileStat, Files } from './files.js';
import { readFully } from './lines.js';

export const CHECKPOINT_FILE = 'checkpoint';

export interface CheckpointerOptions {
  key: PrivateNoteKey;
  /** Sign at most this often, in milliseconds; 0 (default) signs after every commit. */
  intervalMs?: number | undefined;
}

/** What the checkpointer needs from the tree: its size, and its root at any size. */
export interface TreeView {
  size: number;
  rootAt(size: number): Promise<Buffer>;
}

export class Checkpointer {
  readonly #path: string;
  readonly #files: Files;
  readonly #key: PrivateNoteKey;
  readonly #intervalMs: number;
  #fd = -1;
  /** The checkpoint file's text as we last read or wrote it, what it says, and the file's state then. */
  #known: { note: string; checkpoint: Checkpoint; stat: FileStat } | null = null;
  #signedAt = 0;

  constructor(dir: string, files: Files, options: CheckpointerOptions) {
    this.#path = join(dir, CHECKPOINT_FILE);
    this.#files = files;
    this.#key = options.key;
    this.#intervalMs = options.intervalMs ?? 0;
  }

  /** Checks the checkpoint on disk against the tree; throws LogCorruptError if the tree does not extend it. */
  async check(tree: TreeView): Promise<Checkpoint | null> {
    const fd = await this.#open();
    const stat = await this.#files.fstat(fd);
    const known = this.#known;
    // Unchanged since we last read or wrote it (the common case): nothing to re-check.
    if (known !== null && stat.size === known.stat.size && stat.mtimeMs === known.stat.mtimeMs) return known.checkpoint;
    if (stat.size === 0) return null;
    const bytes = Buffer.alloc(stat.size);
    const note = bytes.toString('utf8', 0, await readFully(this.#files, fd, bytes, bytes.length, 0));
    const opened = openNote(note, [this.#key]);
    const checkpoint = parseCheckpoint(opened.text);
    if (checkpoint.origin !== this.#key.name) {
      throw new LogCorruptError(`${this.#path} is for ${checkpoint.origin}, not ${this.#key.name}`);
    }
    if (checkpoint.size > tree.size) {
      throw new LogCorruptError(
        `the log has ${tree.size} entries but its signed checkpoint has ${checkpoint.size}: entries were removed`,
      );
    }
    if (!(await tree.rootAt(checkpoint.size)).equals(checkpoint.root)) {
      throw new LogCorruptError(
        `the log's first ${checkpoint.size} entries do not match its signed checkpoint: the history was rewritten`,
      );
    }
    this.#known = { note, checkpoint, stat };
    return checkpoint;
  }

  /**
   * Signs a checkpoint for the tree if one is due (or `force`), after checking
   * the one on disk. The note is written in place: it is a few hundred bytes,
   * one sector, so the write is all or nothing, and it never gets shorter
   * (only the size's digits grow), so nothing is left of the old one.
   */
  async publish(tree: TreeView, root: Buffer, force = false): Promise<void> {
    const last = await this.check(tree);
    if (last !== null && last.size === tree.size) return;
    if (!force && this.#intervalMs > 0 && Date.now() - this.#signedAt < this.#intervalMs) return;
    const checkpoint: Checkpoint = { origin: this.#key.name, size: tree.size, root, extensions: [] };
    const note = signNote(formatCheckpoint(checkpoint), [ed25519Signer(this.#key)]);
    const fd = await this.#open();
    const bytes = Buffer.from(note, 'utf8');
    await this.#files.writeAt(fd, bytes, 0);
    const stat = await this.#files.fstat(fd);
    if (stat.size > bytes.length) await this.#files.ftruncate(fd, bytes.length);
    this.#known = { note, checkpoint, stat: await this.#files.fstat(fd) };
    this.#signedAt = Date.now();
  }

  async close(): Promise<void> {
    if (this.#fd >= 0) await this.#files.close(this.#fd);
    this.#fd = -1;
  }

  async #open(): Promise<number> {
    if (this.#fd < 0) this.#fd = await this.#files.open(this.#path, constants.O_RDWR | constants.O_CREAT, 0o644);
    return this.#fd;
  }
}
