/**
 * Integrate and publish: what happens to a signing log's entries after the
 * commit that made them durable (sequence → integrate → publish).
 *
 * The tree head is kept by the commits themselves: under the append lock,
 * each brings the edge file (edge-file.ts, a compact range of the whole log)
 * forward by its own batch, so the tree of every entry now in the log is
 * known to whoever holds that lock without reading anyone's entries. A
 * checkpoint is signed from it, after the commit, under the checkpoint lock,
 * while the next commit is already syncing. Commits that land while one
 * checkpoint is being signed are covered by the next one.
 *
 * One writer process at a time is the *integrator*: it holds a lease (flock
 * on <dir>/integrator) and signs for everyone — after its own commits, and
 * for the others' when it notices the log grew (every few milliseconds),
 * from the edge it reads under the append lock. It also keeps the tiles
 * (tree.ts), which proofs read: about once a second it takes in every entry
 * since the last time, its own from memory and the others' from the log,
 * and checks the tree against the edge and the checkpoint it signed. The
 * other writers only commit; one of them takes the lease over when its
 * holder closes or dies. The checkpoint lock guards the checkpoint and the
 * tree's files. Lock order: the checkpoint lock, then the append lock; never
 * the reverse.
 */
import { LogCorruptError } from '../../errors.js';
import type { CompactRange } from '../../merkle/compact.js';
import type { Hash } from '../../merkle/hash.js';
import type { Checkpointer, TreeView } from './checkpointer.js';
import type { LogEdge } from './edge-file.js';
import type { PathLock } from './path-lock.js';
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
  /** The log's tree once they were appended, as the commit wrote it to the edge file; null if it could not. */
  edge: LogEdge | null;
}

/** The log's durable head, read under the append lock. */
export interface DurableHead {
  /** Entries in the log, all durable. */
  size: number;
  /** Where the last one's line ends. */
  end: number;
  /** The edge file, if it holds the tree of exactly these entries (else null: it needs writing anew). */
  edge: LogEdge | null;
}

/** What the publisher reads from the log (its prefix is immutable once durable, so reading needs no lock). */
export interface LogSource {
  /** Leaf hashes of entries [from, to), found by seq. */
  readLeaves: LeafReader;
  /**
   * Leaf hashes of the whole lines in bytes [start, min(limit, start + maxBytes)), the `prev` of the first,
   * and where the last ends; null if those bytes are not lines that chain.
   */
  readLeavesUpTo(
    start: number,
    limit: number,
    maxBytes: number,
  ): Promise<{ leaves: Hash[]; prev: Hash | null; end: number } | null>;
  /** Leaf hashes of the `count` entries whose lines are bytes [start, end); null if those bytes are not that. */
  readLeavesAt(count: number, start: number, end: number): Promise<{ leaves: Hash[]; prev: Hash | null } | null>;
  /** The durable head (takes the append lock). */
  head(): Promise<DurableHead>;
  /** head(), if the append lock is free right now (no commit of any writer under way); else null, at once. */
  tryHead(): Promise<DurableHead | null>;
  /** Under the append lock: writes the edge file anew, with the tree `build` gives for the durable head. */
  writeEdge(build: (head: { size: number; end: number }) => Promise<CompactRange>): Promise<LogEdge>;
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
/** How often the integrator takes new entries into the tiles. */
const TREE_EVERY_MS = 1000;
/** Entries taken into the tiles in one stretch of the event loop (a tree pass yields between them). */
const TREE_CHUNK = 2048;
/** Bytes of others' lines taken into the tiles in one stretch (about 2,500 entries of 400 bytes). */
const CHUNK_BYTES = 1 << 20;
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
/** Own commits kept in memory for the tiles, at most (beyond, the tree pass reads them back from the log). */
const MAX_SEGMENTS = 65_536;

export class Publisher {
  readonly #tree: FileTree;
  readonly #checkpointer: Checkpointer;
  readonly #source: LogSource;
  readonly #onError: (error: unknown) => void;
  /** The integrator's commits not yet in the tiles, in order. */
  #segments: Segment[] = [];
  /** The log's size after this process's latest commit: a checkpoint covers at least this much. */
  #committed = 0;
  /** The newest durable tree this process knows (its own commit, or the edge read under the lock): what it signs. */
  #latest: LogEdge | null = null;
  /** The edge file was found not to be the log's tree, or a commit could not write it: write it anew from the tiles. */
  #unlinked = false;
  /** Where the tree's last leaf's line ends in the log, when known: others' entries start there. */
  #treeEnd: { size: number; end: number } | null = null;
  /** One step at a time: the tail of the chain of steps. */
  #turn: Promise<unknown> = Promise.resolve();
  #running = false;
  /** A commit of this process is waiting to be signed. */
  #pending = false;
  #closed = false;
  readonly #lease: PathLock;
  /** Whether this process holds the integrator lease. */
  #integrator = false;
  #claiming: Promise<boolean> | null = null;
  #poller: NodeJS.Timeout | null = null;
  #treeTimer: NodeJS.Timeout | null = null;
  #treeRunning = false;
  /** When a step last failed: the poller waits a second before trying again (a commit does not). */
  #failedAt = 0;
  /** When this process last committed: meanwhile its own steps take in others' entries too (those before each commit). */
  #committedAt = 0;
  /** With a checkpoint interval: a step once the next checkpoint is due, for entries a step did not sign. */
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
        this.#treeTimer = setInterval(() => this.#treePass(), TREE_EVERY_MS);
        this.#treeTimer.unref();
        return true;
      })
      .finally(() => {
        this.#claiming = null;
      });
    return this.#claiming;
  }

  /** The integrator's look for others' entries: a step when the log has bytes the latest tree does not. */
  #poll(): void {
    const now = Date.now();
    if (this.#running || this.#closed || now - this.#failedAt < 1000 || now - this.#committedAt < 2 * POLL_MS) return;
    this.#source.bytes().then(
      (bytes) => {
        if (this.#running || this.#closed || bytes <= (this.#latest?.end ?? 0)) return;
        this.#running = true;
        void this.#run(true);
      },
      (error: unknown) => this.#onError(error),
    );
  }

  /** The integrator's periodic pass over the tiles, when they are behind. */
  #treePass(): void {
    if (this.#treeRunning || this.#closed || Date.now() - this.#failedAt < 1000) return;
    if (this.#segments.length === 0 && (this.#latest?.range.size ?? 0) <= this.#tree.size) return;
    this.#treeRunning = true;
    this.#integrateInChunks()
      .catch((error: unknown) => {
        this.#failedAt = Date.now();
        this.#onError(error);
      })
      .finally(() => {
        this.#treeRunning = false;
      });
  }

  /**
   * Brings the tree to the log's `size` entries and checks the checkpoint on
   * disk against it: LogCorruptError if the log lost entries it covers or no
   * longer hashes to its root (after rebuilding the tree from the log, in case
   * only the tiles were wrong). Then makes sure the edge file is this log's.
   */
  open(size: number): Promise<void> {
    return this.#exclusive(() =>
      this.#checkpointer.locked(async () => {
        const tree = this.#tree;
        await tree.sync(size, this.#source.readLeaves);
        const last = await this.#checkpointer.read();
        if (last !== null) {
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
        }
        const head = await this.#source.head();
        if (head.edge === null) await this.#repair();
        else this.#latest = head.edge;
        await tree.persistIfDue();
      }),
    ).then(async () => {
      await this.#claim();
    });
  }

  /** A commit of this process made `segment` durable: publish a checkpoint of it, soon. */
  committed(segment: Segment): void {
    this.#committed = Math.max(this.#committed, segment.from + segment.leaves.length);
    this.#committedAt = Date.now();
    if (segment.edge === null) this.#unlinked = true;
    else if (segment.edge.range.size > (this.#latest?.range.size ?? -1)) this.#latest = segment.edge;
    if (!this.#integrator) {
      void this.#claim(); // the integrator may have gone: then this process takes over
      return;
    }
    this.#segments.push(segment);
    if (this.#segments.length > MAX_SEGMENTS) this.#segments.shift();
    this.#pending = true;
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
      if (await this.#claim()) return this.#exclusive(() => this.#sign(false, false));
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
      await this.#checkpointer.locked(() => this.#integrateChecked(size, false));
      return work();
    });
  }

  /**
   * The integrator signs a checkpoint of the whole log (if the one on disk
   * is smaller), brings the tiles up to it and gives up the lease. Another
   * writer makes sure a checkpoint covers its commits first.
   */
  async close(): Promise<void> {
    if (!this.#integrator)
      await this.settled(Date.now() + CLOSE_WAIT_MS).catch((error: unknown) => this.#onError(error));
    this.#closed = true; // the background loops stop queueing steps; these are the last
    if (this.#poller !== null) clearInterval(this.#poller);
    if (this.#treeTimer !== null) clearInterval(this.#treeTimer);
    if (this.#later !== null) clearTimeout(this.#later);
    try {
      if (this.#integrator) {
        await this.#exclusive(() => this.#sign(true, true));
        await this.#exclusive(() => this.#checkpointer.locked(() => this.#integrateChecked(0, true)));
      }
    } finally {
      this.#integrator = false;
      await this.#lease.close(); // gives the lease up (closing the descriptor releases its flock)
    }
  }

  /**
   * Signs until no commit is waiting. A failed step is reported and ends the
   * run: the next commit starts another. Between steps the event loop gets a
   * turn (a commit waiting for its sync's callback may be holding the append
   * lock meanwhile).
   */
  async #run(others: boolean): Promise<void> {
    try {
      while ((this.#pending || others || this.#due) && !this.#closed) {
        const everyone = others;
        others = false;
        this.#pending = false;
        this.#due = false;
        if (this.#later !== null) clearTimeout(this.#later); // this step signs if one is due, or sets it again
        this.#later = null;
        await this.#ownTurn();
        await this.#exclusive(() => this.#sign(everyone, false));
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
   * One signing step, under the checkpoint lock: learns the log's tree from
   * the edge file if asked to take in others' entries (`everyone`) or if this
   * process's own commits are not all in what it knows, then signs a
   * checkpoint of it if one is due (or `final`).
   */
  async #sign(everyone: boolean, final: boolean): Promise<void> {
    try {
      await this.#checkpointer.locked(async () => {
        const behind = (this.#latest?.range.size ?? 0) < this.#committed;
        if (everyone || behind || final) {
          const head = await this.#headOfLog(final || behind); // null: writers are busy, look again soon
          if (head !== null) this.#learn(head);
        }
        if (this.#unlinked) await this.#repair();
        const latest = this.#latest;
        if (latest === null) return;
        await this.#source.sync();
        const signed = await this.#checkpointer.publish(this.#viewOf(latest), final);
        if (signed < latest.range.size && this.#integrator) this.#stepLater(this.#checkpointer.dueInMs()); // not due yet
      });
    } catch (error) {
      this.#forget();
      throw error;
    }
  }

  /** What a durable head says: the newest tree, or that the edge file must be written anew. */
  #learn(head: DurableHead): void {
    if (head.edge === null)
      this.#unlinked = true; // neither the file nor our own last edge is the log's tree
    else if (head.edge.range.size >= (this.#latest?.range.size ?? -1)) this.#latest = head.edge;
  }

  /**
   * The edge file is not the log's tree (missing, damaged, replaced, or a
   * commit could not write it): the tiles are brought to the log's head
   * from the log, checked against the signed checkpoint, and the edge file
   * is written from them — all under the append lock, so no commit lands
   * meanwhile. Under the checkpoint lock.
   */
  async #repair(): Promise<void> {
    const edge = await this.#source.writeEdge(async (head) => {
      await this.#integrate(head.size, head);
      if (this.#tree.size !== head.size)
        throw new LogCorruptError(`the tree has more entries than the log's ${head.size}`);
      await this.#checkTree(head.size, true);
      return this.#tree.compactRange();
    });
    this.#latest = edge;
    this.#unlinked = false;
  }

  /** The checkpointer's view of a tree known by its edge: roots of smaller sizes come from the tiles. */
  #viewOf(edge: LogEdge): TreeView {
    const size = edge.range.size;
    return {
      size,
      root: () => edge.range.root(),
      rootAt: async (at) => {
        if (at === size) return edge.range.root();
        await this.#integrate(at);
        return this.#tree.rootAt(at);
      },
    };
  }

  /**
   * The tiles take in everything this process knows of, a stretch at a
   * time (TREE_CHUNK of its own entries, or CHUNK_BYTES of others' lines)
   * with a turn of the event loop between, each begun while this process's
   * own commit (if one waits for the lock) syncs.
   */
  async #integrateInChunks(): Promise<void> {
    for (;;) {
      const latest = this.#latest;
      if (this.#closed || latest === null) return;
      if (this.#tree.size >= latest.range.size && this.#segments.length === 0) return;
      await this.#ownTurn();
      await this.#exclusive(() => this.#checkpointer.locked(() => this.#integrateSome(latest)));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** One stretch of #integrateInChunks, under the checkpoint lock. */
  async #integrateSome(latest: LogEdge): Promise<void> {
    const tree = this.#tree;
    try {
      const start = tree.size;
      while (this.#segments.length > 0 && tree.size - start < TREE_CHUNK) {
        const segment = this.#segments[0] as Segment;
        if (segment.from > tree.size) break; // others' entries come first
        this.#segments.shift();
        await this.#take(segment);
      }
      const known = this.#treeEnd;
      if (tree.size === start && tree.size < latest.range.size) {
        const next = this.#segments[0];
        const limit = next !== undefined && next.from > tree.size ? next.start : latest.end;
        const read =
          known !== null && known.size === tree.size && limit > known.end
            ? await this.#source.readLeavesUpTo(known.end, limit, CHUNK_BYTES)
            : null;
        if (read === null) {
          await this.#integrate(latest.range.size, { size: latest.range.size, end: latest.end });
        } else {
          this.#treeEnd = null;
          await tree.sync(tree.size + read.leaves.length, async () => read);
          this.#treeEnd = { size: tree.size, end: read.end };
        }
      }
      await this.#checkTree(tree.size);
      await tree.persistIfDue();
    } catch (error) {
      this.#forget();
      throw error;
    }
  }

  /**
   * Under the checkpoint lock: the tiles brought to at least `size` entries
   * and past this process's commits, then checked against the signed
   * checkpoint and the latest edge. Persisted if due (`final`: now).
   */
  async #integrateChecked(size: number, final: boolean): Promise<void> {
    try {
      const latest = this.#latest;
      const target = Math.max(size, this.#committed, latest?.range.size ?? 0);
      const head = latest !== null && latest.range.size === target ? { size: target, end: latest.end } : null;
      await this.#integrate(target, head);
      await this.#checkTree(this.#tree.size);
      await (final ? this.#tree.persist() : this.#tree.persistIfDue());
    } catch (error) {
      this.#forget();
      throw error;
    }
  }

  /**
   * LogCorruptError unless the tiles (of `size` leaves) agree with what was
   * signed and with the edge the commits keep: the checkpoint on disk's root,
   * and the latest edge's root, at their sizes. With `whole` (the tiles hold
   * the entire log, and the edge is about to be written anew from them), a
   * checkpoint larger than the tree means entries were removed, and the edge
   * is not compared.
   */
  async #checkTree(size: number, whole = false): Promise<void> {
    const last = await this.#checkpointer.read();
    if (last !== null) {
      if (whole && last.size > size) {
        throw new LogCorruptError(
          `the log has ${size} entries but its signed checkpoint has ${last.size}: entries were removed`,
        );
      }
      if (last.size <= size) await this.#checkpointer.compare(this.#tree, last);
    }
    const latest = this.#latest;
    if (!whole && latest !== null && latest.range.size <= size && !this.#unlinked) {
      const root = await this.#tree.rootAt(latest.range.size);
      if (!root.equals(latest.range.root())) {
        this.#unlinked = true;
        throw new LogCorruptError(
          `the tree edge file disagrees with the log's first ${latest.range.size} entries; it is written anew`,
        );
      }
    }
  }

  /** After a failed step: the tree is derived, so forget it; the next step rebuilds what it needs from the log. */
  #forget(): void {
    this.#tree.reset();
    this.#checkpointer.forget();
    this.#treeEnd = null;
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
  async #headOfLog(wait: boolean): Promise<DurableHead | null> {
    const head =
      wait || Date.now() - this.#headReadAt > HEAD_WAIT_MS ? await this.#source.head() : await this.#source.tryHead();
    if (head !== null) this.#headReadAt = Date.now();
    return head;
  }

  /**
   * Brings the tiles to at least `size` entries and past this process's
   * commits: those from memory, others' entries from the log. `head`, when
   * given, says where the log's entry `head.size` ends.
   */
  async #integrate(size: number, head: { size: number; end: number } | null = null): Promise<void> {
    const tree = this.#tree;
    for (const segment of this.#segments.splice(0)) await this.#take(segment);
    if (tree.size < size) await this.#catchUp(size, head);
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
    if (head !== null && tree.size === head.size) this.#treeEnd = { size: head.size, end: head.end };
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
