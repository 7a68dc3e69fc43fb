/**
 * Sequencing: the queue in front of a store, and group commit.
 *
 * Appends queue up while a commit is in flight; the next commit takes
 * everything queued (whole requests, up to maxBatch entries) under one
 * exclusive append, one write and one sync, and each caller's promise
 * resolves only once that commit is durable. Validation and encoding happen
 * in the caller, before the queue, so a bad entry never reaches a batch.
 * Background `record()` events ride the same queue; their failures are kept
 * for the next flush() and reported through `onRecordFailed`.
 */
import { Batch } from '../batch.js';
import type { Entry, PreparedEntry } from '../entry.js';
import { RecordFailedError } from '../errors.js';
import type { CommittedBatch } from '../store/store.js';

interface Pending {
  prepared: PreparedEntry[];
  /** Given the commit and where this request's entries begin in it. Absent for background `record()` events. */
  resolve?: (committed: CommittedBatch, batch: Batch, at: number) => void;
  reject?: (error: unknown) => void;
}

/** What a bulk append appended: how many entries, and the first and last seq (null when none). */
export interface Appended {
  appended: number;
  first: number | null;
  last: number | null;
}

export interface SequencerOptions {
  /** Most entries in one commit. */
  maxBatch: number;
  /** Runs before the first commit (opening the store); a failure fails everything queued. */
  ready: () => Promise<void>;
  /** Commits one batch: resolves once its entries are durable. */
  commit: (batch: Batch) => Promise<CommittedBatch>;
  /** Background events could not be committed. */
  onRecordFailed: (failure: RecordFailedError) => void;
}

export class Sequencer {
  readonly #options: SequencerOptions;
  #queue: Pending[] = [];
  /** Background events queued or in flight. */
  #recorded = 0;
  #draining = false;
  #idle: (() => void)[] = [];
  #recordError: RecordFailedError | null = null;

  constructor(options: SequencerOptions) {
    this.#options = options;
  }

  /** Background events queued or being committed. */
  get recorded(): number {
    return this.#recorded;
  }

  /** Queues entries for one commit; resolves with them once durable. */
  append(prepared: PreparedEntry[]): Promise<Entry[]> {
    return new Promise<Entry[]>((resolve, reject) =>
      this.#enqueue({
        prepared,
        resolve: (committed, batch, at) => resolve(batch.entries(committed, at, prepared.length)),
        reject,
      }),
    );
  }

  /** append(), resolving with where the entries went instead of the entries: nothing is built back. */
  appendBulk(prepared: PreparedEntry[]): Promise<Appended> {
    return new Promise<Appended>((resolve, reject) =>
      this.#enqueue({
        prepared,
        resolve: (committed, batch, at) => {
          const first = committed.head.size - batch.count + at;
          resolve({ appended: prepared.length, first, last: first + prepared.length - 1 });
        },
        reject,
      }),
    );
  }

  /** Queues one background event. */
  record(prepared: PreparedEntry): void {
    this.#recorded++;
    this.#enqueue({ prepared: [prepared] });
  }

  /** Resolves when everything queued so far is durable; rejects with the background failures since the last flush. */
  async flush(): Promise<void> {
    while (this.#draining || this.#queue.length > 0) await new Promise<void>((done) => this.#idle.push(done));
    const failed = this.#recordError;
    this.#recordError = null;
    if (failed !== null) throw failed;
  }

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    if (!this.#draining) {
      this.#draining = true;
      // A microtask later, so every append made in this tick joins the first batch.
      queueMicrotask(() => void this.#drain());
    }
  }

  /** Commits queued entries batch after batch until the queue is empty. */
  async #drain(): Promise<void> {
    try {
      await this.#options.ready();
    } catch (error) {
      this.#fail(this.#queue.splice(0), error);
    }
    while (this.#queue.length > 0) {
      const batch = this.#takeBatch();
      try {
        const atomic = batch.some((pending) => pending.prepared.length > 1);
        const unsealed = new Batch(
          batch.flatMap((pending) => pending.prepared),
          undefined,
          atomic,
        );
        const committed = await this.#options.commit(unsealed);
        let at = 0;
        for (const pending of batch) {
          if (pending.resolve) pending.resolve(committed, unsealed, at);
          else this.#recorded--;
          at += pending.prepared.length;
        }
      } catch (error) {
        this.#fail(batch, error);
      }
    }
    this.#draining = false;
    for (const done of this.#idle.splice(0)) done();
  }

  /** Takes whole requests from the queue up to maxBatch entries (always at least one request). */
  #takeBatch(): Pending[] {
    let count = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const size = (this.#queue[n] as Pending).prepared.length;
      if (n > 0 && count + size > this.#options.maxBatch) break;
      count += size;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  #fail(batch: Pending[], error: unknown): void {
    const recorded: unknown[] = [];
    for (const pending of batch) {
      if (pending.reject) pending.reject(error);
      else {
        this.#recorded--;
        recorded.push(...pending.prepared.map((p) => p.input));
      }
    }
    if (recorded.length === 0) return;
    // flush() and close() reject with every failed event since the last flush.
    const earlier = this.#recordError?.inputs ?? [];
    this.#recordError = new RecordFailedError([...earlier, ...recorded], error);
    this.#options.onRecordFailed(new RecordFailedError(recorded, error));
  }
}
