/** The lifecycle: lazy open, group commit, durability modes, failures that fail closed, the background writer, reading. */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { entryBundle, splitBundle } from '../src/api/layout.js';
import { canonicalize } from '../src/encoding/canonical.js';
import { type Entry, hashedText } from '../src/entry.js';
import { LogClosedError, LogNotFoundError, QueueFullError, RecordFailedError } from '../src/errors.js';
import { Log } from '../src/log.js';
import { subtreesOf, treeRoot } from '../src/merkle/tree.js';
import { parseReceipt, verifyReceipt } from '../src/receipt.js';
import { type Files, nodeFiles } from '../src/store/file/files.js';
import { countingFiles, fileStore, osError, readStore, signingLog, tempDir } from './helpers.js';

/** A file layer whose writes (or syncs) fail while `failing` is set; a failing write first writes half its bytes. */
function failingFiles(what: 'write' | 'fdatasync', code = 'EIO') {
  const control = { failing: false, failures: 0 };
  const files: Files = {
    ...nodeFiles,
    write: async (fd, buffer, offset, length) => {
      if (!control.failing || what !== 'write') return nodeFiles.write(fd, buffer, offset, length);
      control.failures++;
      await nodeFiles.write(fd, buffer, offset, Math.max(1, Math.floor(length / 2)));
      throw osError(code, 'injected write failure');
    },
    fdatasync: async (fd) => {
      if (control.failing && what === 'fdatasync') {
        control.failures++;
        throw osError(code, 'injected sync failure');
      }
      return nodeFiles.fdatasync(fd);
    },
    // A commit's sync: failing, it leaves the lock held, as the real one does.
    syncUnlock: async (fd, lockFd) => {
      if (control.failing && what === 'fdatasync') {
        control.failures++;
        throw osError(code, 'injected sync failure');
      }
      return nodeFiles.syncUnlock(fd, lockFd);
    },
  };
  return { files, control };
}

/** Rejects if `promise` has not settled after `ms`: turns a held lock into a failure instead of a hung test. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

describe('opening', () => {
  it('however many callers race the first use, the log is opened exactly once', async () => {
    const dir = tempDir();
    await (await Log.open({ store: dir, create: true })).close();
    const { files, counts } = countingFiles();
    const log = new Log({ store: fileStore(dir, files) });
    const firstUses = [
      ...Array.from({ length: 10 }, (_, i) => log.append({ actor: `caller-${i}`, action: 'test.race' })),
      log.head(),
      log.ready(),
      (async () => {
        for await (const _ of log.read()) {
          /* drain */
        }
      })(),
    ];
    await Promise.all(firstUses);
    assert.equal(counts.opens.get(join(dir, 'log.jsonl')), 1, 'one log file handle');
    assert.equal(counts.opens.get(join(dir, 'lock')), 1, 'one lock file handle');
    assert.equal((await log.head()).size, 10);
    await log.close();
  });

  it('a missing log is an error, not a new log, unless create is asked for', async () => {
    const dir = join(tempDir(), 'nope');
    const log = new Log({ store: dir });
    await assert.rejects(log.append({ actor: 'a', action: 'b.c' }), LogNotFoundError);
    await assert.rejects(new Log({ store: dir, readOnly: true }).verify(), LogNotFoundError);
  });
});

describe('group commit', () => {
  it('concurrent appends share one lock, one write and one fsync per batch', async () => {
    const dir = tempDir();
    const { files, counts } = countingFiles();
    const log = new Log({ store: fileStore(dir, files), create: true });
    const entries = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append({ actor: `c${i}`, action: 'test.batch' })),
    );
    assert.deepEqual(
      entries.map((e) => e.seq),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.ok(counts.writes >= 1 && counts.writes <= 2, `${counts.writes} writes for 200 appends`);
    assert.equal(counts.syncs, counts.writes, 'each batch is synced once');
    await log.close();
  });

  it('the entry returned is what was written, whatever the caller does with its input afterwards', async () => {
    const log = new Log({ store: tempDir(), create: true });
    const input = { actor: 'a', action: 'x.y', targets: ['t1'], data: { n: 1 } };
    const appended = log.append(input);
    input.actor = 'mallory';
    input.targets.push('t2');
    input.data.n = 2;
    const entry = await appended;
    assert.deepEqual([entry.actor, entry.targets, entry.data], ['a', ['t1'], { n: 1 }]);
    for await (const stored of log.read()) assert.deepEqual(stored, entry);
    await log.close();
  });

  it("durability 'write' never calls fdatasync", async () => {
    const { files, counts } = countingFiles();
    const log = new Log({ store: fileStore(tempDir(), files, 'write'), create: true });
    await Promise.all([log.append({ actor: 'a', action: 'b.c' }), log.append({ actor: 'a', action: 'b.c' })]);
    assert.equal(counts.syncs, 0);
    assert.equal((await log.verify()).size, 2);
    await log.close();
  });

  it('appendBatch is atomic: consecutive seqs, or nothing at all when one entry is bad', async () => {
    const dir = tempDir();
    const log = new Log({ store: dir, create: true });
    const batch = await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    assert.deepEqual(
      batch.map((e) => e.seq),
      [0, 1],
    );
    const size = statSync(join(dir, 'log.jsonl')).size;
    await assert.rejects(
      log.appendBatch([
        { actor: 'a', action: 'x.y' },
        { actor: 'b', action: 'not a verb' },
      ]),
      /entry 1: \$\.action/,
    );
    assert.equal(statSync(join(dir, 'log.jsonl')).size, size, 'nothing written');
    await log.close();
  });

  it('appendBulk appends as appendBatch does and says where the entries went, without them', async () => {
    const dir = tempDir();
    const log = new Log({ store: dir, create: true });
    // Made in one tick, the three requests share one commit; each learns where its own entries are.
    const [one, bulk, batch] = await Promise.all([
      log.append({ actor: 'a', action: 'x.y' }),
      log.appendBulk([1, 2, 3].map((i) => ({ actor: 'bulk', action: 'x.y', data: { i } }))),
      log.appendBatch([
        { actor: 'b', action: 'x.y' },
        { actor: 'b', action: 'x.z' },
      ]),
    ]);
    assert.equal(one.seq, 0);
    assert.deepEqual(bulk, { appended: 3, first: 1, last: 3 });
    assert.deepEqual(
      batch.map((e) => [e.seq, e.action]),
      [
        [4, 'x.y'],
        [5, 'x.z'],
      ],
    );
    const stored = [];
    for await (const entry of log.read()) stored.push(entry);
    assert.deepEqual(
      stored.slice(1, 4).map((e) => [e.seq, e.actor, e.data]),
      [1, 2, 3].map((i) => [i, 'bulk', { i }]),
    );
    assert.equal(stored[4]?.prev, stored[3]?.hash, 'the batch after the bulk links to its last entry');
    assert.deepEqual(batch[0], stored[4]);
    assert.deepEqual(await log.appendBulk([]), { appended: 0, first: null, last: null });
    const size = statSync(join(dir, 'log.jsonl')).size;
    await assert.rejects(
      log.appendBulk([
        { actor: 'a', action: 'x.y' },
        { actor: 'b', action: 'not a verb' },
      ]),
      /entry 1: \$\.action/,
    );
    assert.equal(statSync(join(dir, 'log.jsonl')).size, size, 'nothing written');
    assert.equal((await log.verify()).ok, true);
    await log.close();
  });

  it('rejects invalid options with a clear error', () => {
    assert.throws(() => new Log({ durability: 'sometimes' as 'fsync' }), /durability must be 'fsync' or 'write'/);
    assert.throws(() => new Log({ maxBatch: 0 }), /maxBatch must be a positive integer/);
    assert.throws(() => new Log({ store: 42 as unknown as string }), {
      code: 'EVIDENT_INVALID_OPTION',
      message: /a directory, a store URL or a Store object, not 42/,
    });
    // An entry larger than a C2SP entry bundle carries could be appended, and never served through tiles.
    assert.throws(() => new Log({ maxEntryBytes: 200_000 }), {
      code: 'EVIDENT_INVALID_OPTION',
      message: /maxEntryBytes 200000: at most 65536/,
    });
  });

  it('refuses an entry over maxEntryBytes, and takes the largest default entry into a bundle', async () => {
    const dir = join(tempDir(), 'log');
    const log = await Log.open({ store: dir, create: true, maxEntryBytes: 1000 });
    await assert.rejects(log.append({ actor: 'a', action: 'x.y', data: { blob: 'z'.repeat(1000) } }), {
      code: 'EVIDENT_INVALID_ENTRY',
      message: /over the 1000-byte limit/,
    });
    await log.close();
    const big = await Log.open({ store: dir });
    let blob = 'z'.repeat(65_536);
    let entry: Entry | undefined;
    while (entry === undefined) {
      entry = await big.append({ actor: 'a', action: 'x.y', data: { blob } }).catch(() => undefined);
      blob = blob.slice(10);
    }
    assert.ok(Buffer.byteLength(canonicalize(entry)) > 65_400, 'near the limit');
    assert.equal(splitBundle(entryBundle([entry]))?.[0]?.toString(), hashedText(entry));
    await big.close();
  });
});

describe('failing closed', () => {
  for (const [what, code] of [
    ['write', 'EIO'],
    ['write', 'ENOSPC'],
    ['fdatasync', 'EIO'],
  ] as const) {
    it(`a ${what} that fails with ${code} mid-batch: the batch is rolled back, the lock released, the chain continues`, async () => {
      const dir = tempDir();
      const { files, control } = failingFiles(what, code);
      const log = new Log({ store: fileStore(dir, files), create: true });
      await log.append({ actor: 'a', action: 'test.before' });
      const goodSize = statSync(join(dir, 'log.jsonl')).size;

      control.failing = true;
      const failed = await Promise.allSettled(
        Array.from({ length: 5 }, () => log.append({ actor: 'a', action: 'test.during' })),
      );
      control.failing = false;
      assert.ok(control.failures >= 1);
      for (const r of failed) {
        assert.equal(r.status, 'rejected');
        assert.equal((r.reason as { code: string }).code, 'EVIDENT_WRITE_FAILED');
        assert.match((r.reason as Error).message, new RegExp(code));
      }
      assert.equal(statSync(join(dir, 'log.jsonl')).size, goodSize, 'the partial write was cut off');

      // Another handle (another lock file description) can take the lock: it was released.
      const other = new Log({ store: dir });
      await within(other.append({ actor: 'b', action: 'test.other' }), 10_000, 'append through another handle');
      await other.close();

      const next = await log.append({ actor: 'a', action: 'test.after' });
      assert.equal(next.seq, 2);
      const result = await log.verify();
      assert.equal(result.ok, true);
      assert.equal(result.size, 3);
      await log.close();
    });
  }
});

describe('background writer', () => {
  it('record() returns at once; flush() resolves when everything recorded is durable', async () => {
    const dir = tempDir();
    const log = new Log({ store: dir, create: true });
    for (let i = 0; i < 100; i++) log.record({ actor: 'bg', action: 'test.record', data: { i } });
    await log.flush();
    assert.equal((await log.head()).size, 100);
    await log.close();
  });

  it('a full queue throws QueueFullError and drops nothing', async () => {
    const log = new Log({ store: tempDir(), create: true, maxQueue: 5 });
    for (let i = 0; i < 5; i++) log.record({ actor: 'bg', action: 'test.record' });
    assert.throws(() => log.record({ actor: 'bg', action: 'test.record' }), QueueFullError);
    await log.flush();
    assert.equal((await log.head()).size, 5);
    log.record({ actor: 'bg', action: 'test.record' }); // room again
    await log.close();
    const reopened = new Log({ store: log.location, readOnly: true });
    assert.equal((await reopened.head()).size, 6, 'close() drained the queue');
    await reopened.close();
  });

  it('a failed commit reaches the caller: an error event with the events, and flush() rejects', async () => {
    const dir = tempDir();
    const { files, control } = failingFiles('write');
    const log = new Log({ store: fileStore(dir, files), create: true });
    await log.ready();
    const events: RecordFailedError[] = [];
    log.on('error', (e) => events.push(e));
    control.failing = true;
    log.record({ actor: 'bg', action: 'test.lost', data: { k: 1 } });
    await assert.rejects(log.flush(), (e: unknown) => e instanceof RecordFailedError && e.inputs.length === 1);
    assert.equal(events.length, 1);
    assert.deepEqual((events[0] as RecordFailedError).inputs, [{ actor: 'bg', action: 'test.lost', data: { k: 1 } }]);
    control.failing = false;
    log.record({ actor: 'bg', action: 'test.kept' });
    await log.flush(); // the failure was reported once; the log goes on
    assert.equal((await log.verify()).size, 1);
    await log.close();
  });

  it('invalid input to record() throws at once', () => {
    const log = new Log({ store: tempDir(), create: true });
    assert.throws(() => log.record({ actor: '', action: 'x.y' }), /\$\.actor/);
  });

  it('a closed log refuses appends', async () => {
    const log = await Log.open({ store: tempDir(), create: true });
    await log.close();
    await assert.rejects(log.append({ actor: 'a', action: 'b.c' }), LogClosedError);
    assert.throws(() => log.record({ actor: 'a', action: 'b.c' }), LogClosedError);
  });
});

describe('reading', () => {
  it('filters by seq range, time range, actor, action, target and limit, like a full scan would', async () => {
    const dir = tempDir();
    const log = new Log({ store: dir, create: true, maxBatch: 50 });
    const actions = ['proposal.open', 'proposal.approve', 'deploy.start'];
    // Big enough (about 1.5 MB) that seq and time lookups binary-search rather than scan.
    await Promise.all(
      Array.from({ length: 4000 }, (_, i) =>
        log.append({
          actor: `agent-${i % 5}`,
          action: actions[i % 3] as string,
          targets: [`repo/${i % 7}`],
          data: { pad: 'p'.repeat(300) },
        }),
      ),
    );
    const all: Entry[] = [];
    for await (const e of log.read()) all.push(e);
    assert.equal(all.length, 4000);
    const ts = (all[2500] as Entry).ts;
    const cases: [Parameters<Log['read']>[0], (e: Entry) => boolean][] = [
      [{ fromSeq: 1234, toSeq: 1240 }, (e) => e.seq >= 1234 && e.seq <= 1240],
      [{ fromSeq: 3999 }, (e) => e.seq >= 3999],
      [{ fromSeq: 5000 }, () => false],
      [{ since: ts }, (e) => e.ts >= ts],
      [{ until: ts, actor: 'agent-2' }, (e) => e.ts <= ts && e.actor === 'agent-2'],
      [
        { action: 'proposal.*', target: 'repo/3' },
        (e) => e.action.startsWith('proposal.') && e.targets?.[0] === 'repo/3',
      ],
      [{ action: 'deploy.start', limit: 3 }, (e) => e.action === 'deploy.start'],
    ];
    for (const [query, keep] of cases) {
      const got: number[] = [];
      for await (const e of log.read(query)) got.push(e.seq);
      let expected = all.filter(keep).map((e) => e.seq);
      if (query?.limit !== undefined) expected = expected.slice(0, query.limit);
      assert.deepEqual(got, expected, JSON.stringify(query));
    }
    await log.close();
    const size = readFileSync(join(dir, 'log.jsonl')).length;
    assert.ok(size > 1_000_000);

    // Finding a seq or a time near the end reads a few probes' worth, not the file from the start.
    const { files, counts } = countingFiles();
    const reader = new Log({ store: fileStore(dir, files), readOnly: true });
    const late = (all[3990] as Entry).ts;
    const firstAtLate = (all.find((e) => e.ts >= late) as Entry).seq; // entries of one commit share a time
    for (const [query, first] of [
      [{ fromSeq: 3990 }, 3990],
      [{ since: late }, firstAtLate],
    ] as const) {
      counts.bytesRead = 0;
      const seqs: number[] = [];
      for await (const e of reader.read(query)) seqs.push(e.seq);
      assert.equal(seqs[0], first);
      assert.ok(counts.bytesRead < size / 3, `read ${counts.bytesRead} of ${size} bytes for ${JSON.stringify(query)}`);
    }
    counts.bytesRead = 0;
    assert.equal((await reader.head()).size, 4000);
    assert.ok(counts.bytesRead <= 128 * 1024, `head read ${counts.bytesRead} bytes`);
    await reader.close();
  });

  it('refuses a query it cannot answer rather than matching nothing; a plain date is midnight UTC', async () => {
    const log = await Log.open({ store: tempDir(), create: true });
    const entry = await log.append({ actor: 'a', action: 'x.y' });
    const day = entry.ts.slice(0, 10);
    const read = async (query: object) => {
      const seqs: number[] = [];
      for await (const e of log.read(query)) seqs.push(e.seq);
      return seqs;
    };
    for (const query of [
      { since: 'garbage' },
      { until: new Date(0) },
      { limit: -1 },
      { fromSeq: 1.5 },
      { actor: 7 },
      { action: '' },
    ]) {
      await assert.rejects(read(query), { code: 'EVIDENT_INVALID_OPTION', message: /^read\(\): / });
    }
    assert.deepEqual(await read({ since: day }), [0]);
    assert.deepEqual(await read({ until: day }), [], 'until the day began');
    await log.close();
  });
});

describe('files changed under an open log', () => {
  it('a deleted lock file is recreated and locked again, so every writer locks the same file', async () => {
    const dir = tempDir();
    const a = await Log.open({ store: dir, create: true });
    await a.append({ actor: 'a', action: 'x.y' });
    rmSync(join(dir, 'lock'));
    const b = await Log.open({ store: dir }); // creates a new lock file
    const lockNow = statSync(join(dir, 'lock')).ino;
    await a.append({ actor: 'a', action: 'x.y' }); // must notice its lock is on a deleted inode
    await b.append({ actor: 'b', action: 'x.y' });
    assert.equal(statSync(join(dir, 'lock')).ino, lockNow);
    assert.equal((await a.verify()).size, 3);
    await Promise.all([a.close(), b.close()]);
  });

  it('a log file removed while open fails appends closed instead of writing to a deleted file', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'a', action: 'x.y' });
    rmSync(join(dir, 'log.jsonl'));
    await assert.rejects(
      log.append({ actor: 'a', action: 'x.y' }),
      (e: { code?: string }) => e.code === 'EVIDENT_LOG_CORRUPT',
    );
    await log.close();
  });

  it('a log truncated by something else while open is refused, not built upon', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'a', action: 'x.y' },
    ]);
    const text = readFileSync(join(dir, 'log.jsonl'), 'utf8');
    writeFileSync(join(dir, 'log.jsonl'), text.slice(0, text.indexOf('\n') + 1));
    await assert.rejects(log.append({ actor: 'a', action: 'x.y' }), /shrank/);
    await log.close();
  });
});

describe('receipts', () => {
  it('are checked against the signed root before they are given: damaged tiles are rebuilt from the entries', async () => {
    const keys = signingLog('receipts.example/log');
    await keys.init();
    const writer = new Log({ store: keys.dir });
    await writer.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'r', action: 'x.y', data: { i } })));
    await writer.close(); // signs a checkpoint of all of it and stores the tiles
    // Flip a byte of entry 5's leaf hash where the tiles keep it (level 0: 32 bytes a leaf), and write the root
    // of that damaged tile where level 1 keeps it: the tiles agree with each other, not with the signed root.
    const level0 = join(keys.dir, 'tree', '0');
    const leaves = readFileSync(level0);
    leaves[5 * 32] = (leaves[5 * 32] as number) ^ 0xff;
    writeFileSync(level0, leaves);
    const level1 = readFileSync(join(keys.dir, 'tree', '1'));
    const hashes = Array.from({ length: 256 }, (_, i) => leaves.subarray(i * 32, (i + 1) * 32));
    treeRoot(subtreesOf(hashes), 256).copy(level1, 0);
    writeFileSync(join(keys.dir, 'tree', '1'), level1);
    const reader = new Log({ store: keys.dir, readOnly: true });
    const entry = (await readStore(keys.dir))[6] as Entry;
    const receipt = await reader.receipt(6); // its proof passes through the damaged leaf's subtree
    await reader.close();
    const checkpoint = verifyReceipt(parseReceipt(receipt), entry, { log: keys.key });
    assert.equal(checkpoint.size, 601);
  });
});
