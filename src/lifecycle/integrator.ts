/**
 * Integrate and publish: what happens to entries after the commit that made
 * them durable (sequence → integrate → publish), the same for every backend.
 *
 * One writer at a time holds the store's integrator lease. It takes every
 * writer's entries into the Merkle tree — its own commits' leaf hashes as
 * they are handed over, others' read back from the store — writes the tiles
 * and, for a signing log, signs a checkpoint at most every `intervalMs`, as
 * Tessera and Sunlight do. `checkpoint()` and `close()` sign at once. The
 * other writers only commit; one of them takes the lease when its holder
 * closes or dies (each tries once an interval).
 *
 * The rule: a log never signs a checkpoint inconsistent with the one it
 * signed before. Every writer checks, before its first append, that the log
 * still holds what the stored checkpoint covers (the entry at its size, in
 * its tree); the holder checks that each entry it integrates follows the one
 * before, and that the stored checkpoint is still the one it knows before
 * replacing it. A log that fails this stops appending and signing
 * (HistoryMismatchError) until an operator re-anchors it.
 *
 * A log that does not sign builds its tree only when a tree head or a proof
 * is asked for, extending it from where the tiles left it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Entry, type EntryInput, GENESIS_PREV } from '../entry.js';
import { EvidentError, HistoryMismatchError, LogCorruptError, NoteError } from '../errors.js';
import type { Hash } from '../merkle/hash.js';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from '../note/checkpoint.js';
import type { PrivateNoteKey } from '../note/keys.js';
import { ed25519Signer, openNote, signNote } from '../note/note.js';
import type { CommittedBatch, Store } from '../store/store.js';
import { reanchorEntry, type SigningIdentity } from './signing.js';
import { Tree } from './tree.js';

export interface IntegratorOptions {
  /** A signing log's identity (from its first entry), or null for a log that does not sign. */
  identity: SigningIdentity | null;
  /** The key that signs its checkpoints (null for a reader). */
  key: PrivateNoteKey | null;
  /** Sign at most this often (ms). */
  intervalMs: number;
  /** Never write tiles or checkpoints, never take the lease. */
  readOnly: boolean;
  /** Told of each checkpoint this process signs. */
  onCheckpoint: (checkpoint: Checkpoint, note: string) => void;
  /** Told of a background step that failed (it is tried again at the next interval). */
  onError: (error: unknown) => void;
}

/** The stored checkpoint as this process last read or wrote it, shown consistent with the tree. */
interface Known {
  note: string;
  checkpoint: Checkpoint;
}

const GENESIS = Buffer.from(GENESIS_PREV, 'hex');
/** Leaves the integrator hashes before it lets the event loop turn (about 5 ms of work). */
const YIELD_EVERY = 8192;
/** How long a writer that is not the integrator waits for a checkpoint covering its entries. */
const WAIT_MS = 30_000;

export class Integrator {
  readonly tree: Tree;
  readonly #store: Store;
  readonly #options: IntegratorOptions;
  /** Whether this process holds the integrator lease. */
  #holder = false;
  /**
   * How many of the tree's leaves came from stored tiles and are not yet
   * vouched for by a signed checkpoint (a mismatch may then be the tiles',
   * not the log's).
   */
  #fromTiles = 0;
  /** Whether the tree has been brought up from the store at all. */
  #loaded = false;
  /** This process's commits not yet in the tree (the holder's only), in order. */
  #pending: CommittedBatch[] = [];
  /** The log's size after this process's latest commit. */
  #committed = 0;
  #known: Known | null = null;
  /** Why this log must not append or sign, once found. */
  #broken: HistoryMismatchError | null = null;
  /** One tree operation at a time. */
  #turn: Promise<unknown> = Promise.resolve();
  /** The next interval's step (its timer does not keep the process alive). */
  #tick: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(store: Store, options: IntegratorOptions) {
    this.#store = store;
    this.#options = options;
    this.tree = new Tree(store.tiles);
  }

  get signs(): boolean {
    return this.#options.identity !== null;
  }

  /**
   * For a signing log that writes: checks the stored checkpoint against the
   * entries (HistoryMismatchError if they no longer match, unless `lenient`,
   * which only remembers it, for a re-anchor), then takes the lease if it is
   * free and starts the interval.
   */
  async open(size: number, lenient = false): Promise<void> {
    if (!this.signs || this.#options.readOnly) return;
    await this.#exclusive(async () => {
      await this.#load(size);
      try {
        await this.#judge(await this.#store.checkpoints.read(), size);
      } catch (error) {
        if (!(lenient && error instanceof HistoryMismatchError)) throw error;
        this.#broken = error;
      }
    });
    await this.#claim();
    this.#tickLater();
  }

  /** Throws why the log must not take appends, if it must not. */
  assertWritable(): void {
    if (this.#broken !== null) throw this.#broken;
  }

  /**
   * A commit of this process made `batch` durable. The integrator keeps its
   * leaf hashes for the next step, which then need not read them back.
   */
  committed(batch: CommittedBatch): void {
    this.#committed = Math.max(this.#committed, batch.head.size);
    if (this.signs && this.#holder) this.#pending.push(batch);
  }

  /**
   * The latest checkpoint covering every entry this process appended: signed
   * now by the integrator; another writer waits for the integrator's, taking
   * the lease over if it is free. Null for a log that does not sign.
   */
  async checkpoint(): Promise<string | null> {
    if (!this.signs) return null;
    return (await this.#covering(this.#committed)).note;
  }

  /** The latest checkpoint covering entry `seq`, as for checkpoint(), waiting at most `waitMs` for another's. */
  checkpointFor(seq: number, waitMs?: number): Promise<Known> {
    return this.#covering(seq + 1, waitMs);
  }

  /** Runs `work` with the tree brought up to the log's current entries (at least `size`). */
  withTree<T>(work: (tree: Tree) => Promise<T>, size = 0): Promise<T> {
    return this.#exclusive(async () => {
      const head = await this.#store.entries.head();
      await this.#bringUp(Math.max(size, head.size), head.size);
      try {
        return await work(this.tree);
      } catch (error) {
        if (!(error instanceof LogCorruptError)) throw error;
        // A stored tile that is not this tree's: build the tree from the entries and ask again.
        this.tree.reset(true);
        this.#fromTiles = 0;
        this.#pending = [];
        await this.#catchUp(Math.max(size, head.size));
        return work(this.tree);
      }
    });
  }

  /**
   * Re-anchors a signing log on the history it now holds: rebuilds the tree
   * from the entries, appends the re-anchor entry (through `append`), and
   * signs a checkpoint of the whole log in place of whatever is stored.
   */
  async reanchor(append: (input: EntryInput) => Promise<Entry>, actor: string, reason: string): Promise<string> {
    if (!this.signs || this.#options.key === null) {
      throw new EvidentError('EVIDENT_NO_KEY', 'only a signing log, opened with its key, can be re-anchored');
    }
    if (!(await this.#claim())) {
      throw new EvidentError(
        'EVIDENT_INVALID_OPTION',
        'another writer holds the integrator lease: stop the other writers of this log, then re-anchor',
      );
    }
    const previous = await this.#store.checkpoints.read();
    const tree = await this.#exclusive(async () => {
      this.tree.reset(true);
      this.#pending = [];
      await this.#catchUp((await this.#store.entries.head()).size);
      return { size: this.tree.size, root: this.tree.root() };
    });
    this.#broken = null;
    const entry = await append(reanchorEntry(actor, reason, previous, tree));
    return this.#exclusive(async () => {
      await this.#integrate(entry.seq + 1);
      await this.tree.flush();
      return (await this.#sign(previous)).note;
    });
  }

  /**
   * Stops the interval. The integrator integrates what is left, signs a
   * checkpoint of the whole log and gives up the lease; another writer signs
   * the same if the lease has become free, else leaves it to the integrator.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#tick !== null) clearTimeout(this.#tick);
    if (this.#broken !== null) {
      if (this.#holder) await this.#store.lease.release();
      this.#holder = false;
      throw this.#broken; // no checkpoint covers what this process appended since, nor will one
    }
    try {
      if (this.signs && !this.#options.readOnly && (await this.#claim())) {
        await this.#exclusive(() => this.#publish());
      } else if (!this.signs && this.#holder) {
        await this.#exclusive(() => this.tree.flush());
      }
    } finally {
      if (this.#holder) await this.#store.lease.release();
      this.#holder = false;
    }
  }

  /**
   * Takes the lease if it is free; true if this process holds it. A holder
   * asks again too: a lease can end without its holder letting go (a
   * database session killed), and then another writer integrates.
   */
  async #claim(): Promise<boolean> {
    if (this.#options.readOnly) return false;
    // The tree stays good without the lease: it holds the log's leaves, and catches up from the store.
    this.#holder = await this.#store.lease.tryAcquire();
    return this.#holder;
  }

  #tickLater(): void {
    if (this.#closed) return;
    this.#tick = setTimeout(() => void this.#step(), this.#options.intervalMs);
    this.#tick.unref();
  }

  /** Every interval: the holder publishes what is new; another writer looks whether the lease has become free. */
  async #step(): Promise<void> {
    try {
      if (this.#broken === null && (await this.#claim())) await this.#exclusive(() => this.#publish());
    } catch (error) {
      this.#failed(error);
    } finally {
      this.#tickLater();
    }
  }

  #failed(error: unknown): void {
    if (error instanceof HistoryMismatchError) this.#broken = error;
    else {
      // The tree is derived: forget it, and the next step rebuilds it from the store.
      this.tree.reset();
      this.#loaded = false;
      this.#pending = [];
    }
    this.#options.onError(error);
  }

  /**
   * Under the turn: brings the tree to the log's head, stores its tiles and
   * signs a checkpoint if it grew. A history found not to match stops the
   * log's appends too, whoever asked.
   */
  async #publish(): Promise<Known> {
    if (this.#broken !== null) throw this.#broken;
    try {
      return await this.#publishNow();
    } catch (error) {
      if (error instanceof HistoryMismatchError) this.#broken = error;
      throw error;
    }
  }

  async #publishNow(): Promise<Known> {
    const head = await this.#store.entries.head();
    await this.#integrate(head.size);
    await this.tree.flush();
    const stored = await this.#store.checkpoints.read();
    if (stored !== this.#known?.note || this.#known === null) await this.#judge(stored, this.tree.size);
    const known = this.#known as Known;
    if (known.checkpoint.size === this.tree.size) return known;
    return this.#sign(known.note);
  }

  /** Signs a checkpoint of the tree, replacing `expected` (the stored note) in the store. */
  async #sign(expected: string | null): Promise<Known> {
    const identity = this.#options.identity as SigningIdentity;
    const key = this.#options.key;
    if (key === null) throw new EvidentError('EVIDENT_NO_KEY', `the log signs as ${identity.origin}: give its key`);
    const checkpoint: Checkpoint = {
      origin: identity.origin,
      size: this.tree.size,
      root: this.tree.root(),
      extensions: [],
    };
    const note = signNote(formatCheckpoint(checkpoint), [ed25519Signer(key)]);
    if (!(await this.#store.checkpoints.replace(expected, note))) {
      throw new LogCorruptError(
        `the checkpoint in ${this.#store.location} changed while this process held the integrator lease`,
      );
    }
    this.#known = { note, checkpoint };
    this.#options.onCheckpoint(checkpoint, note);
    return this.#known;
  }

  /**
   * Under the turn: the stored checkpoint must be the log's, cover no more
   * entries than the log's `size`, and its root must be the tree's at its
   * size, with the entry at its end the tree's leaf there. Tiles that do not
   * bear this out are rebuilt from the entries before the log is judged.
   */
  async #judge(note: string | null, logSize: number): Promise<void> {
    let size = logSize;
    const identity = this.#options.identity as SigningIdentity;
    const where = this.#store.location;
    if (note === null) {
      throw new HistoryMismatchError(
        `the log in ${where} signs as ${identity.origin} (its first entry says so) but its checkpoint is gone; ` +
          'if the history it holds is the right one, re-anchor it (evident reanchor)',
      );
    }
    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpoint(openNote(note, [identity.verifierKey]).text);
    } catch (error) {
      if (!(error instanceof NoteError)) throw error;
      throw new HistoryMismatchError(`the checkpoint in ${where} is not one this log signed: ${error.message}`);
    }
    if (checkpoint.origin !== identity.origin) {
      throw new HistoryMismatchError(`the checkpoint in ${where} is for ${checkpoint.origin}, not ${identity.origin}`);
    }
    if (size < checkpoint.size) {
      // `size` was read before the checkpoint: another writer may have committed and signed since. The log as it
      // is now, read after the checkpoint, decides (a log only grows, so a true cut still shows).
      size = (await this.#store.entries.head()).size;
      if (size < checkpoint.size) {
        throw new HistoryMismatchError(
          `the log in ${where} has ${entries(size)} but its signed checkpoint covers ${checkpoint.size}: entries were removed`,
        );
      }
    }
    if (checkpoint.size > 0) {
      for (let attempt = 0; ; attempt++) {
        const held = await this.#holds(checkpoint).catch((error: unknown) => {
          if (attempt > 0 || !(error instanceof LogCorruptError || error instanceof HistoryMismatchError)) throw error;
          return false;
        });
        if (held) break;
        if (attempt > 0 || this.#fromTiles === 0) {
          throw new HistoryMismatchError(
            `the first ${checkpoint.size} entries of the log in ${where} do not hash to its signed checkpoint's root: ` +
              'that history was rewritten',
          );
        }
        this.tree.reset(true); // perhaps only the tiles are wrong: judge the entries themselves
        this.#fromTiles = 0;
        await this.#catchUp(checkpoint.size);
      }
    }
    if (this.#fromTiles > checkpoint.size) {
      // Tiles past the checkpoint vouch for nothing: what follows it is taken from the entries.
      await this.tree.truncate(checkpoint.size);
      await this.#catchUp(size);
    }
    this.#fromTiles = 0;
    this.#known = { note, checkpoint };
  }

  /** Whether the tree, brought to at least the checkpoint's size, has its root there, and the log its last leaf. */
  async #holds(checkpoint: Checkpoint): Promise<boolean> {
    if (this.tree.size < checkpoint.size) await this.#catchUp(checkpoint.size);
    if (!(await this.tree.rootAt(checkpoint.size)).equals(checkpoint.root)) return false;
    const { leaves } = await this.#store.entries.leaves(checkpoint.size - 1, checkpoint.size);
    return leaves.equals(await this.tree.leaf(checkpoint.size - 1));
  }

  /**
   * Under the turn: brings the tree to at least `size` entries, taking this
   * process's pending commits and reading the rest from the store.
   */
  async #integrate(size: number): Promise<void> {
    await this.#load(size);
    let hashed = 0;
    for (const batch of this.#pending.splice(0)) {
      if (batch.head.size <= this.tree.size) continue;
      await this.#catchUp(batch.after.size);
      if (batch.after.size !== this.tree.size) continue;
      this.#follows(batch.after.size, Buffer.from(batch.after.hash, 'hex'), await this.#lastLeaf());
      this.tree.extend(batch.leaves);
      hashed += batch.head.size - batch.after.size;
      if (hashed >= YIELD_EVERY) {
        hashed = 0;
        await new Promise((resolve) => setImmediate(resolve)); // commits go on between stretches of hashing
      }
    }
    await this.#catchUp(size);
  }

  /** Under the turn, for proofs and tree heads: the tree at `size` entries, the tiles repaired if they are not the log's. */
  async #bringUp(size: number, logSize: number): Promise<void> {
    if (this.signs && this.#holder) return this.#integrate(size);
    await this.#load(logSize);
    try {
      await this.#catchUp(size);
    } catch (error) {
      if (!(error instanceof HistoryMismatchError) || this.signs) throw error;
      // A log that does not sign keeps its tiles only as a cache: one that is not this log's is rebuilt.
      this.tree.reset(true);
      this.#fromTiles = 0;
      await this.#catchUp(size);
    }
    if (!this.signs && !this.#options.readOnly && (await this.#claim())) await this.tree.flush();
  }

  /**
   * Loads the tree from the stored tiles the first time. Tiles that cannot be
   * read, or that hold more than the log's `size` entries (another history's,
   * or entries since removed, which the checkpoint judges), give way to an
   * empty tree, built again from the entries.
   */
  async #load(size: number): Promise<void> {
    if (this.#loaded) return;
    try {
      await this.tree.load();
      const loaded = this.tree.size;
      if (loaded > size) this.tree.reset(true);
      else if (loaded > 0) {
        const { leaves } = await this.#store.entries.leaves(loaded - 1, loaded);
        if (!leaves.equals(await this.tree.leaf(loaded - 1))) this.tree.reset(true);
      }
    } catch (error) {
      if (!(error instanceof LogCorruptError)) throw error;
      this.tree.reset(true);
    }
    this.#fromTiles = this.tree.size;
    this.#loaded = true;
  }

  /** Reads entries [tree size, size) from the store into the tree; they must follow its last leaf. */
  async #catchUp(size: number): Promise<void> {
    const from = this.tree.size;
    if (size <= from) return;
    const { leaves, prev } = await this.#store.entries.leaves(from, size);
    this.#follows(from, prev, await this.#lastLeaf());
    this.tree.extend(leaves);
  }

  async #lastLeaf(): Promise<Hash> {
    return this.tree.size === 0 ? GENESIS : this.tree.leaf(this.tree.size - 1);
  }

  /** Throws HistoryMismatchError unless entry `seq`, whose prev is `prev`, follows the tree's last leaf. */
  #follows(seq: number, prev: Hash, last: Hash): void {
    if (prev.equals(last)) return;
    throw new HistoryMismatchError(
      `entry ${seq} of the log in ${this.#store.location} does not follow the entries before it as its tree holds them: the log was rewritten`,
    );
  }

  /** The latest checkpoint covering `size` entries: signed now if this process integrates, else waited for. */
  async #covering(size: number, waitMs = Math.max(WAIT_MS, 3 * this.#options.intervalMs)): Promise<Known> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (await this.#claim()) return this.#exclusive(() => this.#publish());
      const note = await this.#store.checkpoints.read();
      if (note !== null) {
        const identity = this.#options.identity as SigningIdentity;
        const checkpoint = parseCheckpoint(openNote(note, [identity.verifierKey]).text);
        if (checkpoint.size >= size) return { note, checkpoint };
      }
      if (Date.now() >= deadline) {
        throw new EvidentError(
          'EVIDENT_NOT_YET',
          `no checkpoint in ${this.#store.location} covers ${entries(size)} yet: ` +
            (this.#options.readOnly
              ? 'a writer of the log signs one when it runs (this reader signs nothing; --wait waits for one)'
              : 'the writer that holds the integrator lease signs one within its interval'),
        );
      }
      await sleep(Math.min(100, this.#options.intervalMs)); // a caller awaits this: the timer keeps the process up
    }
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(work);
    this.#turn = result.catch(() => undefined);
    return result;
  }
}

const entries = (n: number) => (n === 1 ? '1 entry' : `${n} entries`);
