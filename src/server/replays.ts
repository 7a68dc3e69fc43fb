/**
 * Idempotent appends: a request retried with the same Idempotency-Key (and
 * token) gets the entries the first one appended, not new ones. The key is
 * stored in each entry's `via`, covered by its hash, so the index is rebuilt
 * from the log's last 24 hours when the server starts: a retry after a
 * restart finds its entries too. Requests with one key in flight at once
 * wait for the first.
 *
 * The index is kept small, as a busy service holds a day of keys: each key is
 * a 16-byte digest of token and key, mapped to one number (first seq and
 * count), in one map per hour of first use; an hour's map is dropped whole
 * once all of it is older than the window.
 */
import { createHash } from 'node:crypto';
import { EvidentError } from '../errors.js';
import type { Log } from '../log.js';

/** The entries one idempotent request appended: seqs first … last. */
export interface SeqRange {
  first: number;
  last: number;
}

/** How long a key is honoured, at least. */
export const REPLAY_WINDOW_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
const KEY = /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/;

/** first · 2^20 + (last − first) is exact below 2^53: for first < 2^33 and batches under 2^20 entries. */
const SPAN = 2 ** 20;
const FIRST_LIMIT = 2 ** 33;

export class Replays {
  /** The keys first used in each hour (by hour number since the epoch), oldest first. */
  readonly #hours: { hour: number; keys: Map<string, number | SeqRange> }[] = [];
  readonly #running = new Map<string, Promise<SeqRange>>();
  readonly #now: () => number;

  /** `now`: the clock, in ms since the epoch (tests give their own). */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Keys held: one per request remembered. */
  get size(): number {
    let size = 0;
    for (const { keys } of this.#hours) size += keys.size;
    return size;
  }

  /** Indexes the keys of the entries appended within the window. */
  async load(log: Log): Promise<void> {
    const since = new Date(this.#now() - REPLAY_WINDOW_MS).toISOString();
    const commitOf = new Map<string, string>(); // each key's first request's time: one commit, one time
    for await (const entry of log.read({ since })) {
      const key = entry.via?.key;
      if (key === undefined) continue;
      const id = idOf(entry.via?.token as string, key);
      const known = this.#find(id);
      // A request's entries are consecutive and of one commit, so of one time: each one after the first moves
      // its last seq. A later entry with the same key that is not (the key used again through another server on
      // this log) is another request's: a retry gets the first request's entries, never others appended since.
      if (known === undefined) {
        this.#add(id, { first: entry.seq, last: entry.seq }, Date.parse(entry.ts));
        commitOf.set(id, entry.ts);
      } else if (entry.seq === known.appended.last + 1 && entry.ts === commitOf.get(id)) {
        known.keys.set(id, pack({ first: known.appended.first, last: entry.seq }));
      }
    }
  }

  /**
   * What the request with `key` from `token` appended before, or now, by
   * `append`; `replayed` says which. Keys outside the window are forgotten.
   */
  async once(token: string, key: string, append: () => Promise<SeqRange>): Promise<SeqRange & { replayed: boolean }> {
    if (!KEY.test(key)) {
      throw new EvidentError(
        'EVIDENT_BAD_REQUEST',
        'Idempotency-Key: 1 to 255 visible ASCII characters (no space, quote or backslash)',
      );
    }
    const id = idOf(token, key);
    const known = this.#find(id);
    if (known !== undefined) return { ...known.appended, replayed: true };
    const running = this.#running.get(id);
    if (running !== undefined) return { ...(await running), replayed: true };
    const work = append();
    this.#running.set(id, work);
    try {
      const appended = await work;
      this.#add(id, appended, this.#now());
      return { ...appended, replayed: false };
    } finally {
      this.#running.delete(id);
    }
  }

  /** Where `id` is remembered, and what its request appended. */
  #find(id: string): { keys: Map<string, number | SeqRange>; appended: SeqRange } | undefined {
    for (const { keys } of this.#hours) {
      const packed = keys.get(id);
      if (packed !== undefined) return { keys, appended: unpack(packed) };
    }
    return undefined;
  }

  /** Remembers a new `id` as first used at `at`; drops the hours past the window. */
  #add(id: string, appended: SeqRange, at: number): void {
    const hour = Math.floor(at / HOUR_MS);
    let last = this.#hours.at(-1);
    if (last === undefined || last.hour < hour) {
      last = { hour, keys: new Map() };
      this.#hours.push(last);
    }
    last.keys.set(id, pack(appended));
    // An hour is dropped once its end is a whole window ago: every key in it was honoured for 24 hours at least.
    const horizon = this.#now() - REPLAY_WINDOW_MS;
    while (this.#hours.length > 0 && ((this.#hours[0] as { hour: number }).hour + 1) * HOUR_MS <= horizon) {
      this.#hours.shift();
    }
  }
}

/** first · 2^20 + (last − first) where that is exact; a copy of the seqs otherwise. */
function pack(appended: SeqRange): number | SeqRange {
  const span = appended.last - appended.first;
  return appended.first < FIRST_LIMIT && span < SPAN ? appended.first * SPAN + span : { ...appended };
}

function unpack(packed: number | SeqRange): SeqRange {
  if (typeof packed !== 'number') return packed;
  const first = Math.floor(packed / SPAN);
  return { first, last: first + (packed % SPAN) };
}

/** A key's identity: its token and itself, as 16 bytes of SHA-256 (as a string, a map's cheapest key). */
function idOf(token: string, key: string): string {
  return createHash('sha256').update(`${token}\n${key}`).digest().toString('latin1', 0, 16);
}
