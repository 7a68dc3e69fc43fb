/**
 * Idempotent appends: a request retried with the same Idempotency-Key (and
 * token) gets the entries the first one appended, not new ones. The key is
 * stored in each entry's `via`, covered by its hash, so the index is rebuilt
 * from the log's last 24 hours when the server starts: a retry after a
 * restart finds its entries too. Requests with one key in flight at once
 * wait for the first.
 */
import { EvidentError } from '../errors.js';
import type { Log } from '../log.js';

/** The entries one idempotent request appended: seqs first … last. */
export interface Appended {
  first: number;
  last: number;
}

/** How long a key is honoured, at least. */
export const REPLAY_WINDOW_MS = 24 * 60 * 60 * 1000;
const KEY = /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/;

export class Replays {
  readonly #done = new Map<string, Appended & { at: number }>();
  readonly #running = new Map<string, Promise<Appended>>();

  /** Indexes the keys of the entries appended within the window. */
  async load(log: Log, now = Date.now()): Promise<void> {
    const since = new Date(now - REPLAY_WINDOW_MS).toISOString();
    for await (const entry of log.read({ since })) {
      const key = entry.via?.key;
      if (key === undefined) continue;
      const id = idOf(entry.via?.token as string, key);
      const known = this.#done.get(id);
      const at = Date.parse(entry.ts);
      if (known === undefined) this.#done.set(id, { first: entry.seq, last: entry.seq, at });
      else known.last = entry.seq;
    }
  }

  /**
   * What the request with `key` from `token` appended before, or now, by
   * `append`; `replayed` says which. Keys outside the window are forgotten.
   */
  async once(token: string, key: string, append: () => Promise<Appended>): Promise<Appended & { replayed: boolean }> {
    if (!KEY.test(key)) {
      throw new EvidentError('EVIDENT_BAD_REQUEST', 'Idempotency-Key: 1 to 255 printable ASCII characters, no quotes');
    }
    const id = idOf(token, key);
    const known = this.#done.get(id);
    if (known !== undefined) return { first: known.first, last: known.last, replayed: true };
    const running = this.#running.get(id);
    if (running !== undefined) return { ...(await running), replayed: true };
    const work = append();
    this.#running.set(id, work);
    try {
      const appended = await work;
      this.#forgetOld();
      this.#done.set(id, { ...appended, at: Date.now() });
      return { ...appended, replayed: false };
    } finally {
      this.#running.delete(id);
    }
  }

  #forgetOld(): void {
    if (this.#done.size % 1024 !== 0) return;
    const horizon = Date.now() - REPLAY_WINDOW_MS;
    for (const [id, appended] of this.#done) if (appended.at < horizon) this.#done.delete(id);
  }
}

function idOf(token: string, key: string): string {
  return `${token}\n${key}`;
}
