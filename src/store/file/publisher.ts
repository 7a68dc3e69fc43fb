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
 * time. Across processes, one writer at a time is the *integrator*: it holds
 * a lease (flock on <dir>/integrator), integrates everyone's entries and
 * signs for all of them, noticing others' appends by the log's size (every
 * few milliseconds). The other writers only commit — integrating every entry
 * in every process would have each compete for the CPU with whoever holds the
 * append lock — and one of them takes the lease over when its holder closes
 * or dies. The checkpoint lock guards the checkpoint and the tree's files.
 * Lock order: the checkpoint lock, then the append lock; never the reverse.
 */
import { LogCorruptError } from '../../errors.js';
import { HASH_SIZE, type Hash } from '../../merkle/hash.js';
import type { Checkpointer } from './checkpointer.js';
import type { PathLock } from './path-lock.js';
import type { FileTree, LeafReader } from './tree.js';

/** Entries one commit of this process appended. */
export interface Segment {
  /** Seq of the first entry. */
  from: number;
  /** The entries' leaf hashes (their `hash`), 32 bytes each, in order. */
  leaves: Buffer;
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
  readLeavesAt(count: number, start: number, end: number): Promise<{ leaves: Buffer; prev: Hash | null } | null>;
  /** The log's entries now, and where the last one ends (takes the append lock, so they are durable). */
  head(): Promise<{ size: number; end: number }>;
  /** head(), if the append lock is free right now (no commit of any writer under way); else null, at once. */
  tryHead(): Promise<{ size: number; end: number } | null>;
  /** The log file's size in bytes now (no lock: only a hint that others appended). */
  bytes(): Promise<number>;
  /** Makes the log's content durable before a checkpoint covers it (a no-op when every commit syncs). */
  sync(): Promise<void>;
  /**
   * Null unless a commit of this process is waiting for another writer to
   * release the append lock; then settles once it has the lock.
   */
  lockWaiting(): Promise<void> | null;
}

/** How often the integrator looks for other writers' entries. */
const POLL_MS = 3;

/**
 * A look for others' entries (the poll) reads the log's head only when the
 * append lock is free, so as not to take a turn among busy writers — unless
 * it has not managed to for this long.
 */
const HEAD_WAIT_MS = 50;
/**
 * How long a step waits for a commit of this process that is waiting for
 * another writer's append lock (#ownTurn): under load a turn comes within a
 * few milliseconds; a writer that holds the lock longer must not stall
 * signing.
 */
const TURN_WAIT_MS = 50;
/** How long a closing writer waits for the integrator's checkpoint to cover its entries. */
const CLOSE_WAIT_MS = 5000;

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
  readonly #lease: PathLock;
  /** Whether this process holds the integrator lease. */
  #integrator = false;
  #claiming: Promise<boolean> | null = null;
  #poller: NodeJS.Timeout | null = null;
  /** When a step last failed: the poller waits a second before trying again (a commit does not). */
  #failedAt = 0;
  /** When this process last committed: meanwhile its own steps take in others' entries too (those before each commit). */
  #committedAt = 0;
  /** With a checkpoint interval: a step once the next checkpoint is due, for entries a step integrated but did not sign. */
  #later: NodeJS.Timeout | null = null;
  /** A step is wanted even with no commit waiting (#later fired). */
  #due = false;
  /** When a step last read the log's durable head. */
  #headReadAt = 0;

  constructor(
    tree: FileTree,
    checkpointer: Checkpointer,
    lease: PathLock,
    source: LogSource,
    onError: (error: unknown) => void,
  ) {
    this.#tree = tree;
    this.#checkpointer = checkpointer;
    this.#lease = lease;
    this.#source = source;
    this.#onError = onError;
  }

  /** Whether this process holds the integrator lease: then a step follows each of its commits. */
  get integrator(): boolean {
    return this.#integrator;
  }

  /** Takes the integrator lease if no writer holds it; true if this process holds it (now or already). */
  #claim(): Promise<boolean> {
    if (this.#integrator || this.#closed) return Promise.resolve(this.#integrator);
    if (this.#claiming !== null) return this.#claiming;
    this.#claiming = this.#lease
      .tryAcquire()
      .then((fd) => {
        if (fd === null || this.#closed) {
          if (fd !== null) this.#lease.release();
          return false;
        }
        this.#integrator = true;
        this.#poller = setInterval(() => this.#poll(), POLL_MS);
        this.#poller.unref();
        return true;
      })
      .finally(() => {
        this.#claiming = null;
      });
    return this.#claiming;
  }

  /** The integrator's look for others' entries: a step when the log has bytes the tree does not. */
  #poll(): void {
    const now = Date.now();
    if (this.#running || this.#closed || now - this.#failedAt < 1000 || now - this.#committedAt < 2 * POLL_MS) return;
    this.#source.bytes().then(
      (bytes) => {
        if (this.#running || this.#closed || bytes <= (this.#treeEnd?.end ?? 0)) return;
        this.#running = true;
        void this.#run(true);
      },
      (error: unknown) => this.#onError(error),
    );
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
          const now = (await this.#source.head()).size;
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
    ).then(async () => {
      await this.#claim();
    });
  }

  /** A commit of this process made `segment` durable: integrate it and publish, soon. */
  committed(segment: Segment): void {
    this.#committed = Math.max(this.#committed, segment.from + segment.leaves.length / HASH_SIZE);
    this.#committedAt = Date.now();
    if (!this.#integrator) {
      void this.#claim(); // the integrator may have gone: then this process takes over
      return;
    }
    this.#segments.push(segment);
    if (!this.#running) {
      this.#running = true;
      // After the callers this commit releases have queued their next batch and its sync has started:
      // the step then runs while that sync is in flight, instead of before it.
      setImmediate(() => void this.#run(false));
    }
  }

  /**
   * Resolves once a checkpoint covers every entry this process committed so
   * far (the integrator signs it if one is due; another writer waits for the
   * integrator's, or takes the lease over if it is gone).
   */
  async settled(deadline = Number.POSITIVE_INFINITY): Promise<void> {
    for (;;) {
      if (await this.#claim()) return this.#exclusive(() => this.#step(0, false));
      if (this.#checkpointer.intervalMs > 0) return; // the integrator signs when one is due
      const last = await this.#checkpointer.locked(() => this.#checkpointer.read());
      if ((last?.size ?? 0) >= this.#committed) return;
      if (Date.now() > deadline) {
        throw new Error(
          `no checkpoint covers this process's ${this.#committed} entries yet; the integrator signs them`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Runs `work` on the tree brought up to at least `size` entries, with no step running meanwhile. */
  withTree<T>(size: number, work: () => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      await this.#step(size, false);
      return work();
    });
  }

  /**
   * The integrator integrates what is left, signs a checkpoint of the whole
   * log (if the one on disk is smaller), persists the tree and gives up the
   * lease. Another writer makes sure a checkpoint covers its commits first.
   */
  async close(): Promise<void> {
    if (!this.#integrator)
      await this.settled(Date.now() + CLOSE_WAIT_MS).catch((error: unknown) => this.#onError(error));
    this.#closed = true; // the background loop stops queueing steps; this one is the last
    if (this.#poller !== null) clearInterval(this.#poller);
    if (this.#later !== null) clearTimeout(this.#later);
    try {
      if (this.#integrator) await this.#exclusive(() => this.#step(0, true, true));
    } finally {
      this.#integrator = false;
      await this.#lease.close(); // gives the lease up (closing the descriptor releases its flock)
    }
  }

  /**
   * Steps until no commit is waiting. A failed step is reported and ends the
   * run: the next commit starts another, from the log. Between steps the
   * event loop gets a turn — a step's file calls are synchronous, so a loop
   * of steps that never waited would starve it (and a commit waiting for its
   * sync's callback would hold the append lock meanwhile).
   */
  async #run(others: boolean): Promise<void> {
    try {
      while ((this.#segments.length > 0 || others || this.#due) && !this.#closed) {
        const everyone = others;
        others = false;
        this.#due = false;
        if (this.#later !== null) clearTimeout(this.#later); // this step signs if one is due, or sets it again
        this.#later = null;
        await this.#ownTurn();
        await this.#exclusive(() => this.#step(0, false, everyone));
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.#failedAt = Date.now();
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
  async #step(size: number, final: boolean, everyone = false): Promise<void> {
    const tree = this.#tree;
    try {
      await this.#checkpointer.locked(async () => {
        const before = tree.size;
        for (const segment of this.#segments.splice(0)) await this.#take(segment);
        const head = everyone ? await this.#headOfLog(final) : null;
        if (everyone && head === null && tree.size === before && size === 0) return; // busy writers: look again soon
        const target = Math.max(size, this.#committed, head?.size ?? 0);
        if (tree.size < target) await this.#catchUp(target, head);
        if (head !== null && tree.size === head.size) this.#treeEnd = { size: head.size, end: head.end };
        await this.#source.sync();
        const signed = await this.#checkpointer.publish(tree, final);
        if (signed < tree.size && this.#integrator) this.#stepLater(this.#checkpointer.dueInMs()); // not due yet
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

  /**
   * If a commit of this process is waiting for another writer's append lock,
   * waits until it has the lock and has started its sync (at most
   * TURN_WAIT_MS). A step's CPU work runs in one stretch of the event loop:
   * begun while the commit waits, the lock could be granted meanwhile and
   * stay idle until the step ends, with every writer waiting; begun during
   * the commit's sync, it overlaps time the lock is held anyway (the sync's
   * thread releases it, not the event loop).
   */
  async #ownTurn(): Promise<void> {
    const waiting = this.#source.lockWaiting();
    if (waiting === null) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), TURN_WAIT_MS);
    });
    const timedOut = await Promise.race([waiting.then(() => false), late]);
    clearTimeout(timer);
    if (!timedOut) await new Promise((resolve) => setImmediate(resolve)); // the commit's write and sync are issued by then
  }

  /** A step in `ms` (unless one is already set), which runs even if no commit comes meanwhile. */
  #stepLater(ms: number): void {
    if (this.#later !== null || this.#closed) return;
    this.#later = setTimeout(() => {
      this.#later = null;
      this.#due = true;
      if (!this.#running && !this.#closed) {
        this.#running = true;
        void this.#run(false);
      }
    }, ms);
    this.#later.unref(); // close() takes what is left; an open log alone does not keep the process alive
  }

  /** The durable head, for a step that takes in everyone's entries: null when the lock is busy and one was read lately. */
  async #headOfLog(wait: boolean): Promise<{ size: number; end: number } | null> {
    const head =
      wait || Date.now() - this.#headReadAt > HEAD_WAIT_MS ? await this.#source.head() : await this.#source.tryHead();
    if (head !== null) this.#headReadAt = Date.now();
    return head;
  }

  /** Brings the tree to `target` entries from the log: the bytes after the tree's end when they are known. */
  async #catchUp(target: number, head: { size: number; end: number } | null): Promise<void> {
    const tree = this.#tree;
    const known = this.#treeEnd;
    const from = tree.size;
    const fast =
      head !== null && target === head.size && known !== null && known.size === from
        ? await this.#source.readLeavesAt(target - from, known.end, head.end)
        : null;
    this.#treeEnd = null;
    await tree.sync(target, (start, end) =>
      fast !== null && start === from ? Promise.resolve(fast) : this.#source.readLeaves(start, end),
    );
  }

  /** Takes one commit's leaves into the tree, reading first what other writers appended before it. */
  async #take(segment: Segment): Promise<void> {
    const tree = this.#tree;
    const end = segment.from + segment.leaves.length / HASH_SIZE;
    if (end <= tree.size) return; // already read from the log (a proof brought the tree further)
    await tree.sync(end, async (from) => {
      if (from >= segment.from) {
        const skip = from - segment.from;
        return {
          leaves: segment.leaves.subarray(skip * HASH_SIZE),
          prev: skip === 0 ? segment.prev : segment.leaves.subarray((skip - 1) * HASH_SIZE, skip * HASH_SIZE),
        };
      }
      const known = this.#treeEnd;
      const others =
        (known !== null && known.size === from
          ? await this.#source.readLeavesAt(segment.from - from, known.end, segment.start)
          : null) ?? (await this.#source.readLeaves(from, segment.from));
      const lastOther = others.leaves.subarray(-HASH_SIZE);
      if (lastOther.length > 0 && !lastOther.equals(segment.prev)) {
        throw new LogCorruptError(`entry ${segment.from} does not follow the entries before it: the log was rewritten`);
      }
      return { leaves: Buffer.concat([others.leaves, segment.leaves]), prev: others.prev ?? segment.prev };
    });
    this.#treeEnd = { size: end, end: segment.end };
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(work);
    this.#turn = result.catch(() => undefined);
    return result;
  }
}
