/**
 * Many writers, one log: child processes and worker threads, each with many
 * concurrent async callers. The chain never forks and nothing acknowledged
 * is lost. And the same workload without the lock does fork, which verify
 * catches: proof that the first test could fail.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Log } from '../src/log.js';
import { native } from '../src/store/file/native.js';
import type { WriterResult } from './fixtures/writer.js';
import { FIXTURES, flockers, readLines, runNode, tempDir, until } from './helpers.js';

const WRITER = join(FIXTURES, 'writer.js');
const PROCESSES = 4;
const THREADS = 4;
const CALLERS = 50;
const PER_WRITER = 150; // 8 writers × 150 = 1,200 entries per round

function inProcess(dir: string, name: string, mode: string): Promise<WriterResult> {
  return runNode(WRITER, [dir, name, String(PER_WRITER), String(CALLERS), mode]).then((ran) => {
    assert.equal(ran.code, 0, `${name} failed: ${ran.stderr}`);
    return JSON.parse(ran.stdout) as WriterResult;
  });
}

function inThread(dir: string, name: string, mode: string): Promise<WriterResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WRITER, { workerData: [dir, name, String(PER_WRITER), String(CALLERS), mode] });
    let result: WriterResult | undefined;
    worker.on('message', (m: WriterResult) => {
      result = m;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`${name} exited ${code}`))));
  });
}

async function allWriters(dir: string, mode: string): Promise<WriterResult[]> {
  return Promise.all([
    ...Array.from({ length: PROCESSES }, (_, i) => inProcess(dir, `process-${i}`, mode)),
    ...Array.from({ length: THREADS }, (_, i) => inThread(dir, `thread-${i}`, mode)),
  ]);
}

describe('concurrent writers', () => {
  for (let round = 1; round <= 3; round++) {
    it(`round ${round}: ${PROCESSES} processes + ${THREADS} threads × ${CALLERS} callers never fork the chain`, async () => {
      const dir = tempDir();
      await (await Log.open({ store: dir, create: true })).close();
      const results = await allWriters(dir, 'locked');

      const total = PROCESSES * THREADS === 0 ? 0 : (PROCESSES + THREADS) * PER_WRITER;
      const acked = results.flatMap((r) => r.acked);
      assert.equal(acked.length, total);

      const log = new Log({ store: dir, readOnly: true });
      const result = await log.verify();
      assert.deepEqual(result.failure, undefined);
      assert.equal(result.ok, true);
      assert.equal(result.size, total);

      const entries = [];
      for await (const entry of log.read()) entries.push(entry);
      await log.close();
      assert.deepEqual(
        entries.map((e) => e.seq),
        Array.from({ length: total }, (_, i) => i),
        'every seq exactly once, in order',
      );
      assert.equal(new Set(entries.map((e) => e.id)).size, total, 'every id unique');
      // Every acknowledged entry is in the log at the position it was acknowledged at.
      const byId = new Map(entries.map((e) => [e.id, e.seq]));
      for (const a of acked) assert.equal(byId.get(a.id), a.seq);
      // Every writer's entries are there.
      for (const r of results) assert.equal(entries.filter((e) => e.actor === r.name).length, PER_WRITER);
    });
  }

  it('a worker thread terminated mid-append never leaves the append lock held', async () => {
    // Node closes a worker's descriptors when it ends (trackUnmanagedFds, on by default), which releases its flocks;
    // a sync in flight unlocks on its own thread. Terminated at random points of its commits, five times over.
    const dir = tempDir();
    const log = new Log({ store: dir, create: true });
    for (let round = 0; round < 5; round++) {
      const worker = new Worker(WRITER, { workerData: [dir, `doomed-${round}`, '1000000', '8'] });
      const started = (await log.head()).size;
      await until(async () => (await log.head()).size >= started + 20, 'the worker appends');
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20)); // somewhere in its commits
      await worker.terminate();
      const next = log.append({ actor: 'survivor', action: 'test.after', data: { round } });
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`round ${round}: the append lock stayed held`)), 10_000);
      });
      await Promise.race([next, stuck]).finally(() => clearTimeout(timer));
    }
    const result = await log.verify();
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    await log.close();
  });

  it('a worker thread terminated while it waits for the append lock (opening, or mid-commit) leaves no trace', async () => {
    // The wait runs on a thread of the addon's own; it reports back after the worker is gone, which must neither
    // crash this process nor leave the lock held.
    const dir = tempDir();
    const log = new Log({ store: dir, create: true });
    await log.append({ actor: 'main', action: 'test.before' });
    const other = openSync(join(dir, 'lock'), 'a');
    const holdLock = () => until(() => native().tryLock(other), 'this test takes the append lock');
    try {
      for (const appendFirst of [false, true]) {
        const worker = new Worker(WRITER, { workerData: [dir, `waiting-${appendFirst}`, '1000000', '4'] });
        if (appendFirst) {
          // Let it commit, then take the lock between two of its commits.
          const started = (await log.head()).size;
          await until(async () => (await log.head()).size >= started + 10, 'the worker appends');
        }
        await holdLock();
        await until(() => flockers(join(dir, 'lock'), true).length > 0, 'the worker waits for the lock');
        // Its teardown waits for the wait to end (the addon holds it until the thread has reported back).
        const gone = worker.terminate();
        await new Promise((r) => setTimeout(r, 50));
        native().unlock(other);
        await gone;
        const entry = await log.append({ actor: 'main', action: 'test.after' }); // the lock is free
        assert.equal(entry.seq, (await log.head()).size - 1);
      }
    } finally {
      closeSync(other);
    }
    const result = await log.verify();
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    await log.close();
  });

  it('the same workload without the lock forks the chain, and verify catches it', async () => {
    const dir = tempDir();
    await (await Log.open({ store: dir, create: true })).close();
    await allWriters(dir, 'unlocked');
    const lines = readLines(join(dir, 'log.jsonl'));
    const seqs = lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.ok(new Set(seqs).size < seqs.length, 'unlocked writers reused a seq (a fork)');
    const log = new Log({ store: dir, readOnly: true });
    const result = await log.verify();
    await log.close();
    assert.equal(result.ok, false);
    assert.ok(result.failure);
    assert.ok(['seq-gap', 'prev-mismatch', 'foreign-entry'].includes(result.failure.reason), result.failure.reason);
  });
});

describe('one process doing several things at once', () => {
  it('proofs and head reads while appending never let another process in mid-commit', async () => {
    const dir = tempDir();
    await (await Log.open({ store: dir, create: true })).close();
    const log = new Log({ store: dir });
    let reading = true;
    const readers = Array.from({ length: 4 }, async () => {
      while (reading) {
        await log.head();
        const { size } = await log.treeHead();
        if (size > 0) await log.inclusionProof(size - 1);
        await new Promise((resolve) => setImmediate(resolve)); // a poller yields to I/O, or starves its own process
      }
    });
    const others = [inProcess(dir, 'process-a', 'locked'), inProcess(dir, 'process-b', 'locked')];
    await Promise.all(Array.from({ length: 600 }, (_, i) => log.append({ actor: 'self', action: 'x.y', data: { i } })));
    await Promise.all(others);
    reading = false;
    await Promise.all(readers);
    const result = await log.verify();
    await log.close();
    assert.equal(result.failure, undefined);
    assert.equal(result.size, 600 + 2 * PER_WRITER);
  });
});
