/**
 * The idempotency index: a key (per token) is honoured for at least 24 hours,
 * then forgotten; it is rebuilt from the entries' `via` of a real log; and it
 * holds any batch's seqs exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Log } from '../../src/log.js';
import { REPLAY_WINDOW_MS, Replays, type SeqRange } from '../../src/server/replays.js';
import { tempDir } from '../helpers.js';

/** An append that counts its calls and appends `count` entries after `next`. */
function appender(count = 1) {
  let next = 0;
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    append: async (): Promise<SeqRange> => {
      calls++;
      const first = next;
      next += count;
      return { first, last: first + count - 1 };
    },
  };
}

const HOUR = 60 * 60 * 1000;

describe('Replays', () => {
  it('appends once per token and key; a retry gets what the first appended', async () => {
    const replays = new Replays();
    const log = appender(3);
    assert.deepEqual(await replays.once('ci', 'k1', log.append), { first: 0, last: 2, replayed: false });
    assert.deepEqual(await replays.once('ci', 'k1', log.append), { first: 0, last: 2, replayed: true });
    assert.deepEqual(await replays.once('bot', 'k1', log.append), { first: 3, last: 5, replayed: false });
    assert.equal(log.calls, 2);
    await assert.rejects(replays.once('ci', 'with "quotes"', log.append), { code: 'EVIDENT_BAD_REQUEST' });
  });

  it('a retry while the first is in flight waits for it, and appends nothing', async () => {
    const replays = new Replays();
    let release = (_: SeqRange) => {};
    const slow = () => new Promise<SeqRange>((resolve) => (release = resolve));
    const first = replays.once('ci', 'k', slow);
    const second = replays.once('ci', 'k', () => assert.fail('appended twice'));
    release({ first: 7, last: 7 });
    assert.deepEqual(await first, { first: 7, last: 7, replayed: false });
    assert.deepEqual(await second, { first: 7, last: 7, replayed: true });
  });

  it('holds any seqs exactly, the largest a log can have too', async () => {
    const replays = new Replays();
    const cases: SeqRange[] = [
      { first: 0, last: 0 },
      { first: 2 ** 33 - 1, last: 2 ** 33 - 1 + 2 ** 20 - 1 },
      { first: 2 ** 33, last: 2 ** 33 },
      { first: 5, last: 5 + 2 ** 20 },
      { first: Number.MAX_SAFE_INTEGER - 10, last: Number.MAX_SAFE_INTEGER },
    ];
    for (const [i, appended] of cases.entries()) await replays.once('t', `k${i}`, async () => appended);
    for (const [i, appended] of cases.entries()) {
      const again = await replays.once('t', `k${i}`, () => assert.fail('appended twice'));
      assert.deepEqual(again, { ...appended, replayed: true });
    }
  });

  it('honours a key for 24 hours at least, and forgets it within the hour after', async () => {
    let now = Date.parse('2026-12-03T10:30:00Z');
    const replays = new Replays({ now: () => now });
    const log = appender();
    await replays.once('ci', 'old', log.append);
    now += REPLAY_WINDOW_MS - 1;
    await replays.once('ci', 'newer', log.append); // adding a key is when old hours are dropped
    assert.equal((await replays.once('ci', 'old', log.append)).replayed, true, 'honoured 24 hours');
    now += HOUR + 1;
    await replays.once('ci', 'newest', log.append);
    assert.equal(replays.size, 2, "the first key's hour was dropped");
    assert.equal((await replays.once('ci', 'old', log.append)).replayed, false, 'forgotten after 25 hours');
    assert.equal((await replays.once('ci', 'newer', log.append)).replayed, true);
  });

  it("is rebuilt from the keys in the log's entries of the last 24 hours", async () => {
    const log = new Log({ store: tempDir(), create: true });
    await log.append({ actor: 'a', action: 'x.y' }, { via: { token: 'ci' } }); // no key: nothing to remember
    const batch = await log.appendBatch(
      [1, 2, 3].map((i) => ({ actor: 'a', action: 'x.y', data: { i } })),
      { via: { token: 'ci', key: 'batch-1' } },
    );
    const one = await log.append({ actor: 'b', action: 'x.y' }, { via: { token: 'bot', key: 'one' } });
    const replays = new Replays();
    await replays.load(log);
    assert.equal(replays.size, 2);
    const fail = () => assert.fail('appended twice');
    assert.deepEqual(await replays.once('ci', 'batch-1', fail), {
      first: (batch[0] as { seq: number }).seq,
      last: (batch[2] as { seq: number }).seq,
      replayed: true,
    });
    assert.deepEqual(await replays.once('bot', 'one', fail), { first: one.seq, last: one.seq, replayed: true });
    // A key used again by another server on the log: a retry gets the first request's entries, never what
    // others appended between the two, nor the second request's own, even right after the first.
    const other = await log.append({ actor: 'c', action: 'x.y', data: { secret: 1 } }, { via: { token: 'other' } });
    await log.append({ actor: 'b', action: 'x.y' }, { via: { token: 'bot', key: 'one' } });
    const adjacent = await log.append({ actor: 'd', action: 'x.y' }, { via: { token: 'bot', key: 'twice' } });
    await new Promise((resolve) => setTimeout(resolve, 5)); // another commit, another millisecond
    await log.append({ actor: 'd', action: 'x.y' }, { via: { token: 'bot', key: 'twice' } });
    const reloaded = new Replays();
    await reloaded.load(log);
    assert.deepEqual(await reloaded.once('bot', 'one', fail), { first: one.seq, last: one.seq, replayed: true });
    assert.ok(other.seq > one.seq);
    assert.deepEqual(await reloaded.once('bot', 'twice', fail), {
      first: adjacent.seq,
      last: adjacent.seq,
      replayed: true,
    });
    assert.deepEqual(await reloaded.once('ci', 'batch-1', fail), {
      first: (batch[0] as { seq: number }).seq,
      last: (batch[2] as { seq: number }).seq,
      replayed: true,
    });
    // The same log read a day and more later: its keys are past the window.
    const later = new Replays({ now: () => Date.now() + REPLAY_WINDOW_MS + HOUR });
    await later.load(log);
    assert.equal(later.size, 0);
    await log.close();
  });
});
