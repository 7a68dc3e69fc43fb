/**
 * One log shared by the threads of a process: worker threads append, read
 * and ask for receipts through the port the owning thread's `log.share()`
 * gave them, and the process keeps one store, one connection pool and one
 * queue.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Entry } from '../src/entry.js';
import { InvalidEntryError } from '../src/errors.js';
import { Log } from '../src/log.js';
import { parseReceipt, verifyReceipt } from '../src/receipt.js';
import { SharedLog } from '../src/shared-log.js';
import { acquirePool, releasePool } from '../src/store/postgres/connection.js';
import { dropTestSchemas, FIXTURES, POSTGRES, postgresLog, readStore, signingLog, tempDir, until } from './helpers.js';

const WORKER = join(FIXTURES, 'shared-worker.js');

interface Options {
  name?: string;
  count?: number;
  callers?: number;
  /** Called with the worker's progress messages. */
  onMessage?: (message: unknown) => void;
}

/** Runs `job` of the shared-worker fixture on a port of `log`; resolves with what it posted. */
function inWorker<T>(log: Log, job: string, options: Options = {}): Promise<T> {
  const port = log.share();
  const { name = 'worker', count = 1, callers = 1 } = options;
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: { port, job, name, count, callers }, transferList: [port] });
    let result: T | undefined;
    worker.on('message', (message: { result?: T }) => {
      if ('result' in message) result = message.result;
      else options.onMessage?.(message);
    });
    worker.on('error', reject);
    worker.on('exit', (code) =>
      code === 0 && result !== undefined ? resolve(result) : reject(new Error(`${name} exited ${code}`)),
    );
  });
}

/** Every entry appears once, in seq order, and every acknowledged one where it was acknowledged. */
function assertAll(entries: Entry[], acked: { seq: number; id: string }[]) {
  assert.deepEqual(
    entries.map((e) => e.seq),
    entries.map((_, i) => i),
  );
  const byId = new Map(entries.map((e) => [e.id, e.seq]));
  for (const a of acked) assert.equal(byId.get(a.id), a.seq, `acknowledged entry ${a.seq} is where it was`);
  assert.equal(byId.size, entries.length, 'no entry twice');
}

describe('a log shared with worker threads', () => {
  after(dropTestSchemas);

  it('takes appends from worker threads and the owning thread at once: one chain, nothing lost', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    const own: { seq: number; id: string }[] = [];
    const mine = (async () => {
      for (let i = 0; i < 200; i++) {
        const entry = await log.append({ actor: 'owner', action: 'test.write' });
        own.push({ seq: entry.seq, id: entry.id });
      }
    })();
    const workers = Array.from({ length: 4 }, (_, i) =>
      inWorker<{ seq: number; id: string }[]>(log, 'append', { name: `thread-${i}`, count: 300, callers: 32 }),
    );
    const acked = (await Promise.all(workers)).flat();
    await mine;
    acked.push(...own);
    await log.close();
    assert.equal(acked.length, 4 * 300 + 200);
    const entries = await readStore(dir);
    assert.equal(entries.length, acked.length);
    assertAll(entries, acked);
    const verified = await new Log({ store: dir, readOnly: true }).verify();
    assert.equal(verified.ok, true);
  });

  it('opens one PostgreSQL pool for the process, however many threads race to append first', async () => {
    // The application name marks this log's connections in pg_stat_activity.
    const app = `evident_shared_${process.pid}`;
    const store = `${postgresLog()}&application_name=${app}`;
    await Log.init({ store });
    const log = new Log({ store }); // not opened: the workers' first appends race to open it
    const threads = 12; // more than a pool's 10 connections: a pool per thread would show
    const acked = (
      await Promise.all(
        Array.from({ length: threads }, (_, i) =>
          inWorker<{ seq: number; id: string }[]>(log, 'append', { name: `thread-${i}`, count: 50, callers: 8 }),
        ),
      )
    ).flat();
    const pool = acquirePool(POSTGRES);
    try {
      const { rows } = await pool.query<{ n: string }>(
        'select count(*) as n from pg_stat_activity where application_name = $1',
        [app],
      );
      const connections = Number(rows[0]?.n);
      assert.ok(connections >= 1 && connections <= 10, `${connections} connections: one pool of at most 10`);
    } finally {
      await releasePool(POSTGRES);
    }
    await log.close();
    const entries = await readStore(store);
    assert.equal(entries.length, threads * 50);
    assertAll(entries, acked);
  });

  it('refuses in the worker what the log refuses, naming the entry and field, and writes nothing', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    const found = await inWorker<Record<string, Record<string, unknown>>>(log, 'refused');
    const local = async (append: () => Promise<unknown>) => {
      const error = await append().then(
        () => assert.fail('appended'),
        (e: unknown) => e as InvalidEntryError,
      );
      assert.ok(error instanceof InvalidEntryError);
      const { name, code, message, index, field, problem } = error;
      return { name, code, message, index, field, problem };
    };
    class Point {
      x = 1;
    }
    // A class instance would arrive a plain object after the structured clone: it is judged before it crosses.
    assert.deepEqual(
      found.classInstance,
      await local(() => log.append({ actor: 'worker', action: 'test.x', data: { at: new Point() } })),
    );
    assert.match(String(found.classInstance?.message), /Point is not a plain JSON object/);
    assert.deepEqual(found.loneSurrogate, await local(() => log.append({ actor: 'a\uD800', action: 'test.x' })));
    assert.equal(found.thirdOfBatch?.index, 2);
    assert.equal(found.thirdOfBatch?.field, '$.action');
    assert.equal(found.tooLarge?.code, 'EVIDENT_INVALID_ENTRY');
    assert.match(String(found.tooLarge?.message), /over the 65536-byte limit/);
    assert.equal(found.head?.size, 0);
    await log.close();
    assert.equal((await readStore(dir)).length, 0, 'nothing written');
  });

  it('reads through the port a chunk at a time, and a reader that stops early leaves the log usable', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBulk(
      Array.from({ length: 1000 }, (_, i) => ({ actor: i % 3 === 0 ? 'reader' : 'other', action: 'test.x' })),
    );
    const { first, byActor, bulk, location } = await inWorker<{
      first: Entry[];
      byActor: Entry[];
      bulk: { appended: number; first: number; last: number };
      location: string;
    }>(log, 'read', { name: 'reader', count: 300 });
    const all: Entry[] = [];
    for await (const entry of log.read()) all.push(entry);
    assert.deepEqual(first, all.slice(0, 300));
    assert.deepEqual(
      byActor,
      all.filter((e) => e.actor === 'reader' && e.seq < 1000),
      'what the reader read before its own append',
    );
    assert.deepEqual(bulk, { appended: 1, first: 1000, last: 1000 });
    assert.equal(location, log.location);
    await log.close();
  });

  it("gives a worker receipts and checkpoints of a signing log, which verify with the log's key", async () => {
    const signing = signingLog('shared.example/log');
    await signing.init();
    const log = await Log.open({ store: signing.dir, key: signing.keyFile, checkpointInterval: 60_000 });
    const { entry, receipt, checkpoint } = await inWorker<{ entry: Entry; receipt: string; checkpoint: string }>(
      log,
      'receipt',
    );
    const trusted = verifyReceipt(parseReceipt(receipt), entry, { log: signing.key });
    assert.ok(trusted.size > entry.seq);
    assert.match(checkpoint, /^shared\.example\/log\n/);
    await log.close();
  });

  it("ends a worker's appends with EVIDENT_CLOSED when the owner closes the log, every acknowledged one kept", async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const stopped = inWorker<{ acked: number[]; error: { code?: string } }>(log, 'until-closed', {
      count: 20,
      onMessage: () => started(),
    });
    await running;
    await log.close();
    const { acked, error } = await stopped;
    assert.equal(error.code, 'EVIDENT_CLOSED');
    const entries = await readStore(dir);
    assert.ok(acked.length >= 20);
    for (const seq of acked) assert.equal(entries[seq]?.seq, seq, `acknowledged ${seq} is in the log`);
    assert.throws(() => log.share(), { code: 'EVIDENT_CLOSED' });
  });

  it('keeps serving the other threads when one worker is terminated mid-append', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    const port = log.share();
    const doomed = new Worker(WORKER, {
      workerData: { port, job: 'append', name: 'doomed', count: 100_000, callers: 16 },
      transferList: [port],
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await doomed.terminate();
    const acked = await inWorker<{ seq: number; id: string }[]>(log, 'append', {
      name: 'after',
      count: 100,
      callers: 4,
    });
    assert.equal(acked.length, 100);
    await log.close();
    const entries = await readStore(dir);
    assertAll(entries, acked);
    assert.equal(entries.filter((e) => e.actor === 'after').length, 100);
  });

  it('writes nothing on trust: what comes through the port is validated again by the log', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    const port = log.share();
    const replies: { id: number; error?: { code?: string; message: string } }[] = [];
    port.on('message', (message: { id?: number }) => {
      if (message.id !== undefined) replies.push(message as (typeof replies)[number]);
    });
    // What a buggy or hostile sender could put on the port instead of what SharedLog encodes.
    port.postMessage({ id: 1, op: 'append', texts: ['{"actor":"a\\u0001b","action":"x.y"}'] });
    port.postMessage({ id: 2, op: 'append', texts: ['{"actor":"a","action":"evident.log.init"}'] });
    port.postMessage({
      id: 3,
      op: 'appendBulk',
      texts: [JSON.stringify({ actor: 'a', action: 'x.y', data: { s: 'x'.repeat(70_000) } })],
    });
    port.postMessage({ id: 4, op: 'append', texts: ['{"actor":'] });
    await until(() => replies.length === 4, 'four answers');
    replies.sort((a, b) => a.id - b.id);
    assert.deepEqual(
      replies.slice(0, 3).map((r) => r.error?.code),
      ['EVIDENT_INVALID_ENTRY', 'EVIDENT_INVALID_ENTRY', 'EVIDENT_INVALID_ENTRY'],
      "a control character, an action of the log's own, an entry over the limit",
    );
    assert.match(replies[3]?.error?.message ?? '', /JSON/, 'a text that is not JSON is refused too');
    port.close();
    await log.close();
    assert.equal((await readStore(dir)).length, 0, 'nothing written');
  });

  it('a SharedLog in the owning thread itself works the same', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    const shared = new SharedLog(log.share());
    const entry = await shared.append({ actor: 'same-thread', action: 'test.x' });
    assert.equal(entry.seq, 0);
    assert.deepEqual(await shared.head(), await log.head());
    await shared.close();
    await assert.rejects(shared.append({ actor: 'same-thread', action: 'test.x' }), { code: 'EVIDENT_CLOSED' });
    await log.append({ actor: 'owner', action: 'test.x' }); // the log itself stays open
    await log.close();
  });
});
