/**
 * Integrate and publish: what happens to a signing log's entries after the
 * commit that made them durable (sequence → integrate → publish).
 *
 * A commit appends and syncs under the append lock, hands its leaves here and
 * returns. The publisher takes them into the Merkle tree and signs a
 * checkpoint under the checkpoint lock, while the next commit is already
 * syncing: hashing and signing overlap the sync instead of lengthening the
 * append lock's hold. Commits that land while one checkpoint is being signed
 * are covered by the next one, so a checkpoint trails the newest entries by
 * at most the batches committed meanwhile; settled() waits for it.
 *
 * In one process, everything that changes the tree runs here, one step at a
 * time. Across processes, the checkpoint lock guards the checkpoint and the
 * tree's files; each process reads the entries others appended once, from
 * the bytes between its own commits. Lock order: the checkpoint lock, then
 * (only on open) the append lock; never the reverse.
 */
import { LogCorruptError } from '../../errors.js';
import type { Hash } from '../../merkle/hash.js';
import type { Checkpointer } from './checkpointer.js';
import type { FileTree, LeafReader } from './tree.js';

/** Entries one commit of this process appended. */
export interface Segment {
  /** Seq of the first entry. */
  from: number;
  /** The entries' leaf hashes (their `hash`), in order. */
  leaves: Hash[];
  /** The first entry's `prev`: the head it was chained to. */
  prev: Hash;
  /** Where their lines are in the log: bytes [start, end). */
  start: number;
  end: number;
}

/** What the publisher reads from the log (its prefix is immutable once durable, so no lock is needed). */
export interface LogSource {
  /** Leaf hashes of entries [from, to), found by seq. */
  readLeaves: LeafReader;
  /** Leaf hashes of the `count` entries whose lines are bytes [start, end); null if those bytes are not that. */
  readLeavesAt(count: number, start: number, end: number): Promise<{ leaves: Hash[]; prev: Hash | null } | null>;
  /** The number of entries in the log now (takes the append lock). */
  size(): Promise<number>;
  /** Makes the log's content durable before a checkpoint covers it (a no-op when every commit syncs). */
  sync(): Promise<void>;
}

export class Publisher {
  readonly #tree: FileTree;
  readonly #checkpointer: Checkpointer;
  readonly #source: LogSource;
  readonly #onError: (error: unknown) => void;
  /** Commits of this process not yet in the tree, in order. */
  #segments: Segment[] = [];
  /** The log's size after this process's latest commit: every step brings the tree at least this far. */
  #committed = 0;
  /** Where the tree's last leaf's line ends in the log, when known: others' entries start there. */
  #treeEnd: { size: number; end: number } | null = null;
  /** One step at a time: the tail of the chain of steps. */
  #turn: Promise<unknown> = Promise.resolve();
  #running = false;
  #closed = false;

  constructor(tree: FileTree, checkpointer: Checkpointer, source: LogSource, onError: (error: unknown) => void) {
    this.#tree = tree;
    this.#checkpointer = checkpointer;
    this.#source = source;
    this.#onError = onError;
  }

  /**
   * Brings the tree to the log's `size` entries and checks the checkpoint on
   * disk against it: LogCorruptError if the log lost entries it covers or no
   * longer hashes to its root (after rebuilding the tree from the log, in case
   * only the tiles were wrong).
   */
  open(size: number): Promise<void> {
    return this.#exclusive(() =>
      this.#checkpointer.locked(async () => {
        const tree = this.#tree;
        await tree.sync(size, this.#source.readLeaves);
        const last = await this.#checkpointer.read();
        if (last === null) return;
        if (last.size > tree.size) {
          // Signed after we read the size (another writer is ahead), or the log lost entries.
          const now = await this.#source.size();
          if (now < last.size) {
            throw new LogCorruptError(
              `the log has ${now} entries but its signed checkpoint has ${last.size}: entries were removed`,
            );
          }
          await tree.sync(now, this.#source.readLeaves);
        }
        try {
          await this.#checkpointer.compare(tree, last);
        } catch (error) {
          if (!(error instanceof LogCorruptError)) throw error;
          // Perhaps only the tiles are wrong: rebuild the tree from the log, then judge the log itself.
          await tree.rebuild(tree.size, this.#source.readLeaves);
          this.#checkpointer.forget();
          await this.#checkpointer.compare(tree, last);
        }
        await tree.persistIfDue();
      }),
    );
  }

  /** A commit of this process made `segment` durable: integrate it and publish, soon. */
  committed(segment: Segment): void {
    this.#segments.push(segment);
    this.#committed = Math.max(this.#committed, segment.from + segment.leaves.length);
    if (!this.#running) {
      this.#running = true;
      // After the callers this commit releases have queued their next batch and its sync has started:
      // the step then runs while that sync is in flight, instead of before it.
      setImmediate(() => void this.#run());
    }
  }

  /** Resolves once the tree holds every entry this process committed so far and a due checkpoint is signed. */
  settled(): Promise<void> {
    return this.#exclusive(() => this.#step(0, false));
  }

  /** Runs `work` on the tree brought up to at least `size` entries, with no step running meanwhile. */
  withTree<T>(size: number, work: () => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      await this.#step(size, false);
      return work();
    });
  }

  /** Integrates what is left, signs a checkpoint of everything (if the one on disk is smaller) and persists the tree. */
  close(): Promise<void> {
    this.#closed = true; // the background loop stops queueing steps; this one is the last
    return this.#exclusive(() => this.#step(0, true));
  }

  /**
   * Steps until no commit is waiting. A failed step is reported and ends the
   * run: the next commit starts another, from the log. Between steps the
   * event loop gets a turn — a step's file calls are synchronous, so a loop
   * of steps that never waited would starve it (and a commit waiting for its
   * sync's callback would hold the append lock meanwhile).
   */
  async #run(): Promise<void> {
    try {
      while (this.#segments.length > 0 && !this.#closed) {
        await this.#exclusive(() => this.#step(0, false));
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.#onError(error);
    } finally {
      this.#running = false;
    }
  }

  /**
   * One step, under the checkpoint lock: the tree takes the queued commits
   * (and whatever others appended between them), then is brought to at least
   * `size` and past every commit of this process (also those a failed step
   * dropped); a checkpoint is signed if one is due (or `final`).
   */
  async #step(size: number, final: boolean): Promise<void> {
    const tree = this.#tree;
    try {
      await this.#checkpointer.locked(async () => {
        for (const segment of this.#segments.splice(0)) await this.#take(segment);
        const target = Math.max(size, this.#committed);
        if (tree.size < target) {
          await tree.sync(target, this.#source.readLeaves);
          this.#treeEnd = null;
        }
        await this.#source.sync();
        await this.#checkpointer.publish(tree, final);
        await (final ? tree.persist() : tree.persistIfDue());
      });
    } catch (error) {
      // The tree is derived: forget it, and the next step rebuilds what it needs from the log.
      tree.reset();
      this.#checkpointer.forget();
      this.#treeEnd = null;
      throw error;
    }
  }

  /** Takes one commit's leaves into the tree, reading first what other writers appended before it. */
  async #take(segment: Segment): Promise<void> {
    const tree = this.#tree;
    const end = segment.from + segment.leaves.length;
    if (end <= tree.size) return; // already read from the log (a proof brought the tree further)
    await tree.sync(end, async (from) => {
      if (from >= segment.from) {
        const skip = from - segment.from;
        return {
          leaves: segment.leaves.slice(skip),
          prev: skip === 0 ? segment.prev : (segment.leaves[skip - 1] as Hash),
        };
      }
      const known = this.#treeEnd;
      const others =
        (known !== null && known.size === from
          ? await this.#source.readLeavesAt(segment.from - from, known.end, segment.start)
          : null) ?? (await this.#source.readLeaves(from, segment.from));
      const lastOther = others.leaves.at(-1);
      if (lastOther !== undefined && !lastOther.equals(segment.prev)) {
        throw new LogCorruptError(`entry ${segment.from} does not follow the entries before it: the log was rewritten`);
      }
      return { leaves: [...others.leaves, ...segment.leaves], prev: others.prev ?? segment.prev };
    });
    this.#treeEnd = { size: end, end: segment.end };
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(work);
    this.#turn = result.catch(() => undefined);
    return result;
  }
}
