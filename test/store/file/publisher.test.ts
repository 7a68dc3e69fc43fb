/**
 * A signing log's checkpoints with many writers: processes and threads
 * append at once; one of them at a time (the integrator lease's holder)
 * integrates and signs for all, under the checkpoint lock. Every checkpoint
 * anyone wrote must be one the final log is consistent with, the checkpoint
 * on disk must never move backwards, a writer's checkpoint() and close() wait
 * for a checkpoint covering its entries, and after the writers close, one
 * covers every entry. Failures of signing are reported and never cost appends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Entry } from '../../../src/entry.js';
import { Log } from '../../../src/log.js';
import { subtreesOf, treeRoot } from '../../../src/merkle/tree.js';
import { flock } from '../../../src/native.js';
import { generateNoteKey, parseVerifierKey } from '../../../src/note/keys.js';
import { trustCheckpoint } from '../../../src/note/trust.js';
import { type Files, nodeFiles } from '../../../src/store/file/files.js';
import type { WriterResult } from '../../fixtures/writer.js';
import { countingFiles, FIXTURES, osError, readLines, runNode, tempDir } from '../../helpers.js';

function signingLogDir(name: string): { dir: string; verifier: string; init: () => Promise<unknown> } {
  const root = tempDir();
  const { signer, verifier } = generateNoteKey(name);
  const keyFile = join(root, 'log.key');
  writeFileSync(keyFile, `${signer}\n`, { mode: 0o600 });
  const dir = join(root, 'log');
  return { dir, verifier, init: () => Log.init({ dir, signingKey: keyFile }) };
}

/** The processes holding a flock on `path`, from /proc/locks. */
function lockHolders(path: string): number[] {
  const inode = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .map((line) => line.split(/\s+/))
    .filter((f) => f[1] === 'FLOCK' && f[4] !== undefined && Number(f[5]?.split(':')[2]) === inode)
    .map((f) => Number(f[4]));
}

const leavesOf = (dir: string) =>
  readLines(join(dir, 'log.jsonl')).map((line) => Buffer.from((JSON.parse(line) as Entry).hash, 'hex'));

describe('checkpoints with many writers', () => {
  it('never move backwards, and each one is a prefix of the final log', async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/many');
    await init();
    const key = parseVerifierKey(verifier);
    const seen: { size: number; root: Buffer }[] = [];
    let watching = true;
    // A reader as the library reads (under the checkpoint lock; the writers replace the note in place).
    const reader = new Log({ dir, readOnly: true });
    const watch = (async () => {
      let last = '';
      while (watching) {
        const note = (await reader.checkpoint()) ?? '';
        if (note !== last) {
          last = note;
          const trusted = trustCheckpoint(note, { log: key }); // throws if a torn or foreign note were ever visible
          seen.push({ size: trusted.size, root: trusted.root });
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    const writer = join(FIXTURES, 'writer.js');
    const runs = await Promise.all([
      runNode(writer, [dir, 'p1', '400', '1']),
      runNode(writer, [dir, 'p2', '400', '2']),
      new Promise<WriterResult>((resolve, reject) => {
        const thread = new Worker(writer, { workerData: [dir, 't1', '400', '1'] });
        thread.on('message', resolve);
        thread.on('error', reject);
        thread.on('exit', (code) => reject(new Error(`the writer thread exited (${code}) without a result`)));
      }),
    ]);
    watching = false;
    await watch;
    await reader.close();
    process.off('warning', onWarning);
    for (const run of runs.slice(0, 2) as { code: number; stderr: string }[]) {
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /Warning/, 'no writer failed to integrate or sign');
    }
    assert.deepEqual(warnings, []);
    assert.deepEqual((runs[2] as WriterResult).warnings, [], 'the writer thread neither failed to integrate or sign');

    const leaves = leavesOf(dir);
    assert.equal(leaves.length, 1200);
    const reference = subtreesOf(leaves);
    assert.ok(seen.length > 3, `the checkpoint moved as the writers went (${seen.length} seen)`);
    for (const [k, checkpoint] of seen.entries()) {
      if (k > 0) assert.ok(checkpoint.size >= (seen[k - 1]?.size ?? 0), 'a checkpoint never replaces a larger one');
      assert.ok(
        treeRoot(reference, checkpoint.size).equals(checkpoint.root),
        `checkpoint ${checkpoint.size} is a prefix`,
      );
    }
    const final = trustCheckpoint(readFileSync(join(dir, 'checkpoint'), 'utf8'), { log: key });
    assert.equal(final.size, 1200, 'once the writers have closed, the checkpoint covers every entry');
    const log = new Log({ dir, readOnly: true });
    assert.equal((await log.verify({ checkpoint: final })).ok, true);
    await log.close();
  });

  it('one writer process integrates and signs for all, and another takes over when it dies', async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/lease');
    await init();
    const key = parseVerifierKey(verifier);
    const holder = spawn(process.execPath, [join(FIXTURES, 'holder.js'), dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    const log = await Log.open({ dir }); // the lease is the holder's
    await log.appendBatch(Array.from({ length: 5 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    // This process does not sign; the holder notices the new entries and signs a checkpoint covering them.
    assert.equal(trustCheckpoint((await log.checkpoint()) as string, { log: key }).size, 5);
    assert.equal(lockHolders(join(dir, 'integrator')).includes(holder.pid as number), true, 'the holder integrates');

    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    await log.append({ actor: 'a', action: 'x.y' }); // the lease is free: this process takes it over
    assert.equal(trustCheckpoint((await log.checkpoint()) as string, { log: key }).size, 6);
    assert.deepEqual(lockHolders(join(dir, 'integrator')), [process.pid]);
    await log.close();
    assert.deepEqual(lockHolders(join(dir, 'integrator')), [], 'closing gives the lease up');
  });

  // Both ways a checkpoint is written: in JavaScript (writeAt), and in one call into the addon (writeCheckpoint).
  for (const through of ['writeAt', 'writeCheckpoint'] as const) {
    it(`a checkpoint that cannot be written is reported, and the next one covers what it missed (${through})`, async () => {
      const { dir, verifier, init } = signingLogDir(`publisher.example/fail-${through}`);
      await init();
      let failWrites = 0;
      const writeCheckpoint = nodeFiles.writeCheckpoint;
      assert.ok(writeCheckpoint !== undefined, 'the addon writes checkpoints');
      const files: Files =
        through === 'writeAt'
          ? {
              ...nodeFiles,
              writeCheckpoint: undefined,
              writeAt: (fd, buffer, position) =>
                failWrites-- > 0 ? Promise.reject(osError('EIO', 'injected')) : nodeFiles.writeAt(fd, buffer, position),
            }
          : {
              ...nodeFiles,
              writeCheckpoint: (write) => {
                if (failWrites-- > 0) throw osError('EIO', 'injected');
                return writeCheckpoint(write);
              },
            };
      const log = new Log({ dir, files });
      await log.append({ actor: 'a', action: 'x.y' });
      assert.equal((await log.checkpoint()) !== null, true);
      failWrites = 1;
      const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
      const entry = await log.append({ actor: 'a', action: 'x.y' }); // durable: its commit does not depend on signing
      assert.equal(entry.seq, 1);
      assert.match((await warned).message, /not updated.*EIO/);
      const note = (await log.checkpoint()) as string;
      assert.equal(trustCheckpoint(note, { log: parseVerifierKey(verifier) }).size, 2, 'the next step signed both');
      failWrites = 1;
      await log.append({ actor: 'a', action: 'x.y' });
      await assert.rejects(log.checkpoint(), /EIO/, 'asked for a checkpoint, the caller hears why there is none');
      await log.close();
      const final = trustCheckpoint(readFileSync(join(dir, 'checkpoint'), 'utf8'), { log: parseVerifierKey(verifier) });
      assert.equal(final.size, 3, 'close signs what is left');
    });
  }

  it("signing never waits for the tree's tile files to be written", async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/tiles');
    await init();
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = 0;
    const files: Files = {
      ...nodeFiles,
      writeTiles: undefined, // tiles through writeFile, so that one can be held at the gate
      writeFile: async (path, data) => {
        if (path.includes(`${sep}tile${sep}`)) {
          held++;
          await gate;
        }
        return nodeFiles.writeFile(path, data);
      },
    };
    const log = new Log({ dir, files });
    await log.appendBatch(Array.from({ length: 300 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the tree's files are due to be written again
    await log.append({ actor: 'a', action: 'x.y' }); // its step starts writing tile 0/000, which waits at the gate
    for (const deadline = Date.now() + 5000; held === 0; ) {
      if (Date.now() > deadline) assert.fail('no tile write was started');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await log.append({ actor: 'a', action: 'x.y' });
    const note = await Promise.race([
      log.checkpoint(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('checkpoint() waited for the tiles')), 5000)),
    ]);
    assert.equal(trustCheckpoint(note as string, { log: parseVerifierKey(verifier) }).size, 302);
    release();
    await log.close();
    assert.equal(statSync(join(dir, 'tile', '0', '000')).size, 256 * 32, 'the tile was written in the end');
    assert.equal(readFileSync(join(dir, 'tree-size'), 'utf8'), '302\n');
  });

  it('checkpoint() reads the note under the checkpoint lock, so never while a writer is half-way through it', async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/read');
    await init();
    const log = new Log({ dir });
    await log.append({ actor: 'a', action: 'x.y' });
    await log.checkpoint();
    const reader = new Log({ dir, readOnly: true });
    const writer = openSync(join(dir, 'checkpoint'), 'r+'); // a writer about to rewrite the note in place
    try {
      assert.equal(flock.tryLock(writer), true);
      let read = false;
      const reading = reader.checkpoint().then((note) => {
        read = true;
        return note;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(read, false, 'checkpoint() read while a writer held the lock');
      flock.unlock(writer);
      assert.equal(trustCheckpoint((await reading) as string, { log: parseVerifierKey(verifier) }).size, 1);
    } finally {
      closeSync(writer);
    }
    await reader.close();
    await log.close();
  });

  it("a step waits while this process's commit from JavaScript waits for another writer's append lock, but not for long", async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/turn');
    await init();
    const checkpoint = join(dir, 'checkpoint');
    const signed = () => trustCheckpoint(readFileSync(checkpoint, 'utf8'), { log: parseVerifierKey(verifier) }).size;
    const interval = 500;
    // A commit from JavaScript needs the event loop once the lock is granted (the addon's whole commit does not,
    // so nothing waits for that).
    const log = new Log({ dir, checkpointInterval: interval, files: { ...nodeFiles, commitBatch: undefined } });
    await log.append({ actor: 'a', action: 'x.y' }); // signed just after: none signed yet
    await log.checkpoint();
    const firstSigned = statSync(checkpoint).mtimeMs;
    await log.append({ actor: 'a', action: 'x.y' }); // left unsigned: a timer signs it once the interval has passed
    const other = openSync(join(dir, 'lock'), 'a'); // another writer, which now holds the append lock
    try {
      // (The log's own look for others' entries may hold it for a moment.)
      for (const deadline = Date.now() + 10_000; !flock.tryLock(other); await new Promise((r) => setTimeout(r, 1))) {
        if (Date.now() > deadline) assert.fail('could not take the append lock');
      }
      assert.equal(signed(), 1);
      let appended = false;
      const waiting = log.append({ actor: 'a', action: 'x.y' }); // waits for that writer
      void waiting.then(() => {
        appended = true;
      });
      for (const deadline = Date.now() + 10_000; signed() < 2; await new Promise((r) => setTimeout(r, 2))) {
        if (Date.now() > deadline) assert.fail('the step never ran while the other writer held the lock');
      }
      assert.equal(appended, false, 'signed while the other writer still held the lock');
      // The timer's step came due at the interval; it waited TURN_WAIT_MS (50) for this process's commit to get
      // the lock, then signed anyway. (A few ms of slack: file times come from the kernel's coarse clock.)
      const waited = statSync(checkpoint).mtimeMs - firstSigned - interval;
      assert.ok(waited >= 40, `the step signed ${waited.toFixed(1)} ms after it came due: it did not wait its turn`);
      flock.unlock(other);
      assert.equal((await waiting).seq, 2);
    } finally {
      closeSync(other);
    }
    await log.close();
    assert.equal(signed(), 3);
  });

  it('a checkpoint lock that keeps failing costs signatures, never appends, and never stalls the process', {
    timeout: 30_000,
  }, async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/stuck');
    await init();
    const checkpointFds = new Set<number>();
    let broken = false;
    const files: Files = {
      ...nodeFiles,
      open: async (path, flags, mode) => {
        const fd = await nodeFiles.open(path, flags, mode);
        if (path.endsWith('/checkpoint')) checkpointFds.add(fd);
        return fd;
      },
      tryLock: (fd) => {
        if (broken && checkpointFds.has(fd)) throw osError('EBADF', 'injected');
        return nodeFiles.tryLock(fd);
      },
    };
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    const log = await Log.open({ dir, files }); // opening checks the checkpoint under its lock
    broken = true;
    for (let i = 0; i < 20; i++) await log.append({ actor: 'a', action: 'x.y', data: { i } });
    await new Promise((resolve) => setTimeout(resolve, 50)); // timers still run: nothing spins
    await assert.rejects(log.checkpoint(), /EBADF/);
    assert.ok(warnings.length > 0 && warnings.every((w) => /EBADF/.test(w)), 'each failure reported');
    broken = false;
    await log.append({ actor: 'a', action: 'x.y' });
    const note = (await log.checkpoint()) as string;
    assert.equal(trustCheckpoint(note, { log: parseVerifierKey(verifier) }).size, 21, 'then one checkpoint covers all');
    await log.close();
    process.off('warning', onWarning);
  });

  it("with durability 'write', the log is synced before a checkpoint covers it", async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/write');
    await init();
    const { files, counts } = countingFiles();
    const log = await Log.open({ dir, files, durability: 'write' });
    const before = counts.syncs;
    const writes = counts.writes;
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    assert.equal(counts.syncs, before, 'the commit itself does not sync');
    assert.equal(counts.writes, writes + 1, 'it wrote');
    const note = (await log.checkpoint()) as string;
    assert.equal(trustCheckpoint(note, { log: parseVerifierKey(verifier) }).size, 2);
    assert.ok(counts.syncs > before, 'signing a checkpoint of those entries synced them first');
    await log.close();
  });

  it('a checkpoint file replaced at its path (a restore, a checkout) is the one signed next', async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/replaced');
    await init();
    const key = parseVerifierKey(verifier);
    const path = join(dir, 'checkpoint');
    const log = new Log({ dir });
    await log.append({ actor: 'a', action: 'x.y' });
    await log.checkpoint();
    const before = statSync(path).ino;
    writeFileSync(`${path}.copy`, readFileSync(path));
    renameSync(`${path}.copy`, path); // same note, another inode: our descriptor now points at a removed file
    assert.notEqual(statSync(path).ino, before);
    await log.append({ actor: 'a', action: 'x.y' });
    await log.checkpoint();
    assert.equal(trustCheckpoint(readFileSync(path, 'utf8'), { log: key }).size, 2, 'signed into the file at the path');
    await log.close();
  });

  it('a large batch gives the same tree and checkpoint as small ones', async () => {
    const { dir, verifier, init } = signingLogDir('publisher.example/batch');
    await init();
    const log = new Log({ dir });
    for (const n of [3, 1000, 1, 300, 64, 2]) {
      await log.appendBatch(Array.from({ length: n }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    }
    const note = (await log.checkpoint()) as string; // waits for the checkpoint to cover this process's appends
    const checkpoint = trustCheckpoint(note, { log: parseVerifierKey(verifier) });
    await log.close();
    const leaves = leavesOf(dir);
    assert.equal(checkpoint.size, leaves.length);
    assert.ok(checkpoint.root.equals(treeRoot(subtreesOf(leaves), leaves.length)));
    const reopened = await Log.open({ dir });
    assert.ok((await reopened.treeHead()).root.equals(checkpoint.root));
    await reopened.close();
  });
});
