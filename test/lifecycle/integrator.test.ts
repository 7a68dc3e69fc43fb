/**
 * Integrate and publish, after the commit: a signing log signs a checkpoint
 * at most once an interval, and at once when a caller asks (checkpoint(),
 * a receipt, close()); each checkpoint is the RFC 9162 root of the log's
 * entries. With many writers one of them at a time — the lease holder —
 * integrates and signs for all; another takes over when it dies; checkpoints
 * never move backwards and each is a prefix of the final log. Failures of
 * signing are reported and never cost appends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { trustCheckpoint } from '../../src/note/trust.js';
import { parseReceipt, verifyReceipt } from '../../src/receipt.js';
import { type Files, nodeFiles } from '../../src/store/file/files.js';
import { native } from '../../src/store/file/native.js';
import type { WriterResult } from '../fixtures/writer.js';
import {
  countingFiles,
  exited,
  FIXTURES,
  fileStore,
  flockers,
  osError,
  readLines,
  runNode,
  signed,
  signingLog,
  storedCheckpoint,
  until,
  warning,
} from '../helpers.js';

const leavesOf = (dir: string) =>
  readLines(join(dir, 'log.jsonl')).map((line) => Buffer.from((JSON.parse(line) as Entry).hash, 'hex'));

const batch = (n: number, actor = 'a') => Array.from({ length: n }, (_, i) => ({ actor, action: 'x.y', data: { i } }));

describe('the checkpoint cadence', () => {
  it('signs at most once an interval, with no append, request or close to prompt it', async () => {
    const log = signingLog('cadence.example/interval');
    await log.init(); // entry 0 declares the key; a checkpoint of it is signed
    const writer = new Log({ store: log.dir, checkpointInterval: 150 });
    const times: number[] = [];
    writer.on('checkpoint', () => times.push(performance.now()));
    await writer.ready();
    const opened = performance.now();
    for (let i = 0; i < 5; i++) await writer.appendBatch(batch(3));
    const event = await signed(writer, 16); // nothing asked for it: the interval's step signs
    assert.equal(storedCheckpoint(log.dir, log.key).size, 16);
    assert.ok(event.root.equals((await writer.treeHead()).root));
    assert.ok((times[0] as number) - opened >= 140, 'not before the interval had passed');
    for (let k = 1; k < times.length; k++) {
      assert.ok((times[k] as number) - (times[k - 1] as number) >= 140, 'at most one checkpoint an interval');
    }
    await writer.close();
  });

  it('checkpoint(), a receipt and close() sign at once, whatever the interval', async () => {
    const log = signingLog('cadence.example/asked');
    await log.init();
    const writer = new Log({ store: log.dir, checkpointInterval: 3_600_000 });
    await writer.appendBatch(batch(2));
    const note = (await writer.checkpoint()) as string;
    assert.equal(trustCheckpoint(note, { log: log.key }).size, 3);
    const entry = await writer.append({ actor: 'b', action: 'x.y' });
    const receipt = await writer.receipt(entry.seq); // waits for (here: signs) a checkpoint covering it
    const trusted = verifyReceipt(parseReceipt(receipt), entry, { log: log.key });
    assert.equal(trusted.size, 4);
    await writer.append({ actor: 'c', action: 'x.y' });
    assert.equal(storedCheckpoint(log.dir, log.key).size, 4, 'not signed again within the interval');
    await writer.close();
    assert.equal(storedCheckpoint(log.dir, log.key).size, 5, 'close signs what is left');
  });

  it('a checkpoint is the RFC 9162 root of the entries, and the log verifies against it', async () => {
    const log = signingLog('cadence.example/root');
    await log.init();
    const writer = new Log({ store: log.dir });
    for (const n of [3, 1000, 1, 300, 64, 2]) await writer.appendBatch(batch(n));
    const checkpoint = trustCheckpoint((await writer.checkpoint()) as string, { log: log.key });
    await writer.close();
    const leaves = leavesOf(log.dir);
    assert.equal(checkpoint.size, leaves.length);
    assert.ok(checkpoint.root.equals(treeRoot(subtreesOf(leaves), leaves.length)));
    const reader = new Log({ store: log.dir, readOnly: true });
    const result = await reader.verify({ checkpoint });
    assert.equal(result.ok, true);
    assert.equal(result.root, checkpoint.root.toString('base64'));
    assert.ok((await reader.treeHead()).root.equals(checkpoint.root));
    await reader.close();
  });
});

describe('checkpoints with many writers', () => {
  it('never move backwards, and each one is a prefix of the final log', async () => {
    const log = signingLog('many.example/prefix');
    await log.init();
    const seen: { size: number; root: Buffer }[] = [];
    let watching = true;
    const watch = (async () => {
      let last = '';
      while (watching) {
        // A reader that takes no lock, as a web server would: the note is replaced whole, never seen half written.
        const note = readFileSync(join(log.dir, 'checkpoint'), 'utf8');
        if (note !== last) {
          last = note;
          const trusted = trustCheckpoint(note, { log: log.key });
          seen.push({ size: trusted.size, root: trusted.root });
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const writer = join(FIXTURES, 'writer.js');
    const runs = await Promise.all([
      runNode(writer, [log.dir, 'p1', '400', '1', 'locked', '20']),
      runNode(writer, [log.dir, 'p2', '400', '2', 'locked', '20']),
      new Promise<WriterResult>((resolve, reject) => {
        const thread = new Worker(writer, { workerData: [log.dir, 't1', '400', '1', 'locked', '20'] });
        thread.on('message', resolve);
        thread.on('error', reject);
        thread.on('exit', (code) => reject(new Error(`the writer thread exited (${code}) without a result`)));
      }),
    ]);
    watching = false;
    await watch;
    for (const run of runs.slice(0, 2) as { code: number; stderr: string }[]) {
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /Warning/, 'no writer failed to integrate or sign');
    }
    assert.deepEqual((runs[2] as WriterResult).warnings, [], 'the writer thread neither failed to integrate or sign');
    const leaves = leavesOf(log.dir);
    assert.equal(leaves.length, 1201);
    const reference = subtreesOf(leaves);
    assert.ok(seen.length > 3, `the checkpoint moved as the writers went (${seen.length} seen)`);
    for (const [k, checkpoint] of seen.entries()) {
      if (k > 0) assert.ok(checkpoint.size >= (seen[k - 1]?.size ?? 0), 'a checkpoint never replaces a larger one');
      assert.ok(
        treeRoot(reference, checkpoint.size).equals(checkpoint.root),
        `checkpoint ${checkpoint.size} is a prefix`,
      );
    }
    const final = storedCheckpoint(log.dir, log.key);
    assert.equal(final.size, 1201, 'once the writers have closed, the checkpoint covers every entry');
    const reader = new Log({ store: log.dir, readOnly: true });
    assert.equal((await reader.verify({ checkpoint: final })).ok, true);
    await reader.close();
  });

  it('one writer process integrates and signs for all, and another takes over when it dies', async () => {
    const log = signingLog('many.example/lease');
    await log.init();
    const holder = spawn(process.execPath, [join(FIXTURES, 'holder.js'), log.dir], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    const writer = await Log.open({ store: log.dir, checkpointInterval: 100 }); // the lease is the holder's
    await writer.appendBatch(batch(5));
    // This process does not sign; the holder finds the new entries at its next interval and signs for them.
    assert.equal(trustCheckpoint((await writer.checkpoint()) as string, { log: log.key }).size, 6);
    assert.deepEqual(flockers(join(log.dir, 'lease')), [holder.pid], 'the holder integrates');

    holder.kill('SIGKILL');
    await exited(holder);
    const taken = signed(writer, 7); // within an interval the lease is found free, and taken
    await writer.append({ actor: 'a', action: 'x.y' });
    assert.equal((await taken).size, 7);
    assert.deepEqual(flockers(join(log.dir, 'lease')), [process.pid]);
    await writer.close();
    assert.deepEqual(flockers(join(log.dir, 'lease')), [], 'closing gives the lease up');
  });

  it('a writer that is not the integrator does not wait for a checkpoint to close', async () => {
    const log = signingLog('many.example/close');
    await log.init();
    const integrator = await Log.open({ store: log.dir, checkpointInterval: 3_600_000 });
    const other = await Log.open({ store: log.dir });
    await other.append({ actor: 'b', action: 'x.y' });
    await other.close(); // the lease is held: its entry waits for the integrator's next checkpoint
    assert.equal(storedCheckpoint(log.dir, log.key).size, 1);
    assert.equal(trustCheckpoint((await integrator.checkpoint()) as string, { log: log.key }).size, 2);
    await integrator.close();
  });

  it("with durability 'write', the log is synced before a checkpoint covers it", async () => {
    const log = signingLog('many.example/write');
    await log.init();
    const { files, counts } = countingFiles();
    const writer = await Log.open({ store: fileStore(log.dir, files, 'write') });
    const before = counts.syncs;
    const writes = counts.writes;
    await writer.appendBatch(batch(2));
    assert.equal(counts.syncs, before, 'the commit itself does not sync');
    assert.equal(counts.writes, writes + 1, 'it wrote');
    const note = (await writer.checkpoint()) as string;
    assert.equal(trustCheckpoint(note, { log: log.key }).size, 3);
    assert.ok(counts.syncs > before, 'signing a checkpoint of those entries synced them first');
    await writer.close();
  });
});

describe('when signing fails', () => {
  it('a checkpoint that cannot be stored is reported; appends go on, and the next covers what it missed', async () => {
    const log = signingLog('fail.example/store');
    await log.init();
    let failures = 0;
    const files: Files = {
      ...nodeFiles,
      replaceFile: (path, data, durable) =>
        path.endsWith(`${sep}checkpoint`) && failures-- > 0
          ? Promise.reject(osError('EIO', 'injected'))
          : nodeFiles.replaceFile(path, data, durable),
    };
    const writer = new Log({ store: fileStore(log.dir, files), checkpointInterval: 50 });
    await writer.append({ actor: 'a', action: 'x.y' });
    failures = 1;
    const warned = warning();
    const entry = await writer.append({ actor: 'a', action: 'x.y' }); // durable: its commit does not wait for signing
    assert.equal(entry.seq, 2);
    assert.match((await warned).message, /checkpointing .*EIO/);
    assert.equal(trustCheckpoint((await writer.checkpoint()) as string, { log: log.key }).size, 3, 'then both');
    failures = 1;
    await writer.append({ actor: 'a', action: 'x.y' });
    await assert.rejects(writer.checkpoint(), /EIO/, 'asked for a checkpoint, the caller hears why there is none');
    await writer.close();
    assert.equal(storedCheckpoint(log.dir, log.key).size, 4, 'close signs what is left');
  });

  it('a checkpoint lock that keeps failing costs signatures, never appends, and never stalls the process', async () => {
    const log = signingLog('fail.example/lock');
    await log.init();
    const lockFds = new Set<number>();
    let broken = false;
    const files: Files = {
      ...nodeFiles,
      open: async (path, flags, mode) => {
        const fd = await nodeFiles.open(path, flags, mode);
        if (path.endsWith('checkpoint.lock')) lockFds.add(fd);
        return fd;
      },
      tryLock: (fd) => {
        if (broken && lockFds.has(fd)) throw osError('EBADF', 'injected');
        return nodeFiles.tryLock(fd);
      },
    };
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    const writer = await Log.open({ store: fileStore(log.dir, files), checkpointInterval: 20 });
    broken = true;
    for (let i = 0; i < 20; i++) await writer.append({ actor: 'a', action: 'x.y', data: { i } });
    assert.match((await warning()).message, /EBADF/, 'the interval step fails, and says why');
    await assert.rejects(writer.checkpoint(), /EBADF/);
    assert.ok(warnings.length > 0 && warnings.every((w) => /EBADF/.test(w)), 'each failure reported');
    broken = false;
    await writer.append({ actor: 'a', action: 'x.y' });
    const note = (await writer.checkpoint()) as string;
    assert.equal(trustCheckpoint(note, { log: log.key }).size, 22, 'then one checkpoint covers all');
    await writer.close();
    process.off('warning', onWarning);
  });

  it('a checkpoint covers only what is durable: the head it signs is read under the append lock', async () => {
    const log = signingLog('fail.example/turn');
    await log.init();
    const writer = await Log.open({ store: log.dir });
    await writer.append({ actor: 'a', action: 'x.y' });
    const other = openSync(join(log.dir, 'lock'), 'a'); // another writer, holding the append lock
    try {
      assert.equal(native().tryLock(other), true);
      let done = false;
      const asking = writer.checkpoint().then((note) => {
        done = true;
        return note;
      });
      await until(() => flockers(join(log.dir, 'lock'), true).includes(process.pid), 'it waits for the lock');
      assert.equal(done, false, 'the head is read under the append lock');
      native().unlock(other);
      assert.equal(trustCheckpoint((await asking) as string, { log: log.key }).size, 2);
    } finally {
      closeSync(other);
    }
    await writer.close();
  });
});
