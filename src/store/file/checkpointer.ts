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
import type { Files } from './files.js';
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
  /** The checkpoint file's text as we last read or wrote it, and what it says. */
  #known: { note: string; checkpoint: Checkpoint } | null = null;
  #signedAt = 0;

  constructor(dir: string, files: Files, options: CheckpointerOptions) {
    this.#path = join(dir, CHECKPOINT_FILE);
    this.#files = files;
    this.#key = options.key;
    this.#intervalMs = options.intervalMs ?? 0;
  }

  get origin(): string {
    return this.#key.name;
  }

  /** Checks the checkpoint on disk against the tree; throws LogCorruptError if the tree does not extend it. */
  async check(tree: TreeView): Promise<Checkpoint | null> {
    const note = await this.#read();
    if (note === null) return null;
    if (this.#known?.note === note) return this.#known.checkpoint;
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
    this.#known = { note, checkpoint };
    return checkpoint;
  }

  /** Signs a checkpoint for the tree if one is due (or `force`), after checking the one on disk. */
  async publish(tree: TreeView, root: Buffer, force = false): Promise<void> {
    const last = await this.check(tree);
    if (last !== null && last.size === tree.size) return;
    if (!force && this.#intervalMs > 0 && Date.now() - this.#signedAt < this.#intervalMs) return;
    const checkpoint: Checkpoint = { origin: this.#key.name, size: tree.size, root, extensions: [] };
    const note = signNote(formatCheckpoint(checkpoint), [ed25519Signer(this.#key)]);
    await this.#files.replaceFile(this.#path, Buffer.from(note, 'utf8'));
    this.#known = { note, checkpoint };
    this.#signedAt = Date.now();
  }

  async #read(): Promise<string | null> {
    if ((await this.#files.stat(this.#path)) === null) return null;
    const fd = await this.#files.open(this.#path, constants.O_RDONLY);
    try {
      const bytes = Buffer.alloc(64 * 1024);
      const n = await readFully(this.#files, fd, bytes, bytes.length, 0);
      return bytes.toString('utf8', 0, n);
    } finally {
      await this.#files.close(fd);
    }
  }
}
