/**
 * The directory log's record, log.jsonl: leaf hashes read back exactly as
 * the entries carry them, whatever their data holds; a run that does not
 * chain is refused, naming the entry; a write that really fails is cut off;
 * a whole last entry that lacks only its newline is completed, not cut; a
 * log file replaced at its path is followed only if it holds what the writer
 * acknowledged.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Entry } from '../../../src/entry.js';
import { Log } from '../../../src/log.js';
import { type Files, nodeFiles } from '../../../src/store/file/files.js';
import { INTENT_BYTES } from '../../../src/store/file/intent.js';
import { lockPatience } from '../../../src/store/file/lock.js';
import { FileStore } from '../../../src/store/file/store.js';
import { FIXTURES, osError, readLines, tempDir, until, writeLines } from '../../helpers.js';

/** A log whose entries carry `"hash":"` and `"prev":"` inside their data and targets. */
async function trickyLog(): Promise<{ dir: string; entries: Entry[] }> {
  const dir = tempDir();
  const log = await Log.open({ store: dir, create: true });
  for (let i = 0; i < 40; i++) {
    const data = i % 3 === 0 ? { hash: 'f'.repeat(64), prev: '0'.repeat(64), note: '"hash":"' } : { i };
    await log.append({ actor: `agent-${i % 4}`, action: 'file.edit', data, targets: [`"prev":"${i}`] });
  }
  await log.close();
  return { dir, entries: readLines(join(dir, 'log.jsonl')).map((line) => JSON.parse(line) as Entry) };
}

async function leaves(dir: string, from: number, to: number) {
  const store = new FileStore(dir);
  await store.open({ create: false, readOnly: true, onRecover: () => {} });
  try {
    return await store.entries.leaves(from, to);
  } finally {
    await store.close();
  }
}

describe('leaf hashes read back from log.jsonl', () => {
  it("are each entry's hash, and the first one's prev, whatever their data holds", async () => {
    const { dir, entries } = await trickyLog();
    for (const [from, to] of [
      [0, 1],
      [0, 40],
      [7, 8],
      [13, 29],
    ] as const) {
      const read = await leaves(dir, from, to);
      assert.equal(
        read.leaves.toString('hex'),
        entries
          .slice(from, to)
          .map((e) => e.hash)
          .join(''),
      );
      assert.equal(read.prev.toString('hex'), entries[from]?.prev);
    }
  });

  it('are refused, naming the entry, when the lines do not chain or are not entries', async () => {
    const { dir, entries } = await trickyLog();
    const hash12 = entries[12]?.hash as string;
    const path = join(dir, 'log.jsonl');
    const lines = readLines(path);
    const cases: [string, string[], RegExp][] = [
      ['a line missing', [...lines.slice(0, 12), ...lines.slice(13)], /entry 12 .* does not follow/],
      ['two lines swapped', [...lines.slice(0, 12), lines[13], lines[12], ...lines.slice(14)] as string[], /entry 12/],
      ['a line that is not JSON', [...lines.slice(0, 12), '{"oops"', ...lines.slice(13)], /malformed entry/],
      [
        'a hash that is not hex',
        lines.map((l, k) => (k === 12 ? l.replace(hash12, `zz${hash12.slice(2)}`) : l)),
        /entry 12 has a hash that is not hex/,
      ],
    ];
    for (const [what, edited, message] of cases) {
      writeLines(path, edited);
      await assert.rejects(leaves(dir, 10, 20), { code: 'EVIDENT_LOG_CORRUPT', message }, what);
    }
    writeLines(path, lines.slice(0, 15));
    await assert.rejects(leaves(dir, 10, 20), { code: 'EVIDENT_LOG_CORRUPT', message: /found 5/ }, 'too few');
  });
});

describe('appending to log.jsonl', () => {
  it("records a batch's range before writing it, and blanks the record in place once it is durable", async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'a', action: 'x.y' }); // a single entry needs no record
    assert.equal(existsSync(join(dir, 'pending')), false);
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    const first = statSync(join(dir, 'pending'));
    // The same file, its one block overwritten: no size or block change for the next record's sync to commit.
    assert.equal(readFileSync(join(dir, 'pending'), 'latin1'), ' '.repeat(INTENT_BYTES));
    await log.appendBatch([
      { actor: 'c', action: 'x.y' },
      { actor: 'd', action: 'x.y' },
    ]);
    await log.close();
    const second = statSync(join(dir, 'pending'));
    assert.equal(second.ino, first.ino);
    assert.equal(readFileSync(join(dir, 'pending'), 'latin1'), ' '.repeat(INTENT_BYTES));
  });

  it('cuts off a batch whose write really fails (a file-size limit), and the chain goes on', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
      { actor: 'c', action: 'x.y' },
    ]);
    await log.close();
    const path = join(dir, 'log.jsonl');
    const before = readLines(path);
    const limit = statSync(path).size + 4000; // room for a small entry, not for an 8 KB one
    const ran = spawnSync('prlimit', [`--fsize=${limit}`, process.execPath, join(FIXTURES, 'fsize-writer.js'), dir], {
      encoding: 'utf8',
    });
    assert.equal(ran.status, 0, ran.stderr);
    const report = JSON.parse(ran.stdout) as {
      failure: { code: string; cause: string; message: string } | null;
      small: number;
    };
    assert.equal(report.failure?.code, 'EVIDENT_WRITE_FAILED', JSON.stringify(report));
    assert.equal(report.failure?.cause, 'EFBIG');
    assert.match(report.failure?.message ?? '', /could not append 2 entries to .*log\.jsonl/);
    assert.equal(report.small, 3);
    const after = readLines(path);
    assert.deepEqual(after.slice(0, 3), before);
    assert.equal(after.length, 4);
    assert.equal(existsSync(join(dir, 'quarantine')), false, 'nothing torn was left to quarantine');
    // The small entry sits where the batch's intent said it would write: not taken for the batch cut short.
    const reopened = await Log.open({ store: dir });
    assert.equal((await reopened.append({ actor: 'later', action: 'x.y' })).seq, 4);
    assert.equal((await reopened.verify()).ok, true);
    await reopened.close();
    assert.equal(existsSync(join(dir, 'quarantine')), false, 'nothing moved aside');
    assert.equal(readFileSync(path, 'utf8').includes('test.big'), false);
  });

  it('completes a last entry that lacks only its newline, rather than cutting off an entry', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    await log.close();
    const path = join(dir, 'log.jsonl');
    const whole = readFileSync(path);
    writeFileSync(path, whole.subarray(0, whole.length - 1)); // the last newline, deleted
    const recovered: unknown[] = [];
    const reopened = new Log({ store: dir });
    reopened.on('recovered', (recovery) => recovered.push(recovery));
    const entry = await reopened.append({ actor: 'c', action: 'x.y' });
    assert.equal(entry.seq, 2, 'entry 1 kept');
    assert.equal(recovered.length, 0, 'nothing moved aside');
    assert.equal(existsSync(join(dir, 'quarantine')), false);
    assert.equal((await reopened.verify()).ok, true);
    await reopened.close();

    // An entry that does not follow the one before is no such tail: it goes to quarantine.
    const lines = readLines(path);
    writeFileSync(path, `${lines[0]}\n${lines[2]}`);
    const again = new Log({ store: dir });
    again.on('recovered', (recovery) => recovered.push(recovery));
    assert.equal((await again.append({ actor: 'd', action: 'x.y' })).seq, 1);
    assert.equal(recovered.length, 1);
    await again.close();
  });

  it('leaves no copy in quarantine when a torn line cannot be cut off (an append-only file), and no temporary files', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'a', action: 'x.y' });
    await log.close();
    const path = join(dir, 'log.jsonl');
    appendFileSync(path, '{"actor":"torn');
    const before = readFileSync(path);
    const files: Files = {
      ...nodeFiles,
      ftruncate: async (fd, length) => {
        if (length > 0) throw osError('EPERM', 'operation not permitted');
        return nodeFiles.ftruncate(fd, length);
      },
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const stuck = new Log({ store: new FileStore(dir, { files }) });
      await assert.rejects(stuck.append({ actor: 'b', action: 'x.y' }), { message: /EPERM/ });
      await stuck.close().catch(() => {});
    }
    assert.deepEqual(readFileSync(path), before, 'the torn line is still where it was');
    assert.deepEqual(readdirSync(join(dir, 'quarantine')), [], 'no copy counted as a repair that never happened');
    const repaired = await Log.open({ store: dir });
    await repaired.append({ actor: 'c', action: 'x.y' });
    assert.equal((await repaired.verify()).recovered, 1, 'one repair, once it could be made');
    await repaired.close();
    // A file replaced whole that cannot be put in place leaves no temporary copy beside it.
    mkdirSync(join(dir, 'occupied', 'inside'), { recursive: true });
    await assert.rejects(nodeFiles.replaceFile(join(dir, 'occupied'), Buffer.from('x'), true));
    assert.deepEqual(
      readdirSync(dir).filter((name) => name.endsWith('.tmp')),
      [],
      'no temporary files left behind',
    );
  });

  it('follows a log file replaced at its path (a restore, a checkout)', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'a', action: 'x.y' });
    const path = join(dir, 'log.jsonl');
    writeFileSync(`${path}.copy`, readFileSync(path));
    renameSync(`${path}.copy`, path); // the same entries, another inode
    const entry = await log.append({ actor: 'b', action: 'x.y' });
    assert.equal(entry.seq, 1);
    assert.equal(readLines(path).length, 2, 'appended to the file at the path');
    assert.equal((await log.verify()).ok, true);
    await log.close();
  });

  it('says when it has waited long for an append lock another holder keeps, and goes on once it is free', async () => {
    const dir = tempDir();
    const made = await Log.open({ store: dir, create: true });
    await made.close();
    // Another open file description of the lock file: flock excludes it as it would another process.
    const holder = await nodeFiles.open(join(dir, 'lock'), constants.O_RDWR);
    assert.equal(nodeFiles.tryLock(holder), true);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    const patience = lockPatience.ms;
    lockPatience.ms = 50;
    try {
      const log = new Log({ store: dir });
      const appended = log.append({ actor: 'a', action: 'x.y' });
      await until(() => warnings.length > 0, 'a warning about the wait');
      assert.match(warnings[0] as string, /lock has been locked by another process for 0\.05 s; still waiting/);
      nodeFiles.unlock(holder);
      assert.equal((await appended).seq, 0);
      await log.close();
    } finally {
      lockPatience.ms = patience;
      process.off('warning', onWarning);
      await nodeFiles.close(holder);
    }
  });

  it('verify takes a torn end for a commit in flight only while a writer holds the lock, whatever else is there', async () => {
    const dir = tempDir();
    const made = await Log.open({ store: dir, create: true });
    await made.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    await made.close();
    appendFileSync(join(dir, 'log.jsonl'), '{"action":"x.y","act');
    const verdict = async (files: Files = nodeFiles) => {
      const log = new Log({ store: new FileStore(dir, { files }), readOnly: true });
      try {
        const result = await log.verify();
        return result.ok ? `ok ${result.size}` : `${result.failure?.reason} ${result.size}`;
      } finally {
        await log.close();
      }
    };
    assert.equal(await verdict(), 'torn-tail 2');
    const lockPath = join(dir, 'lock');
    for (const [mode, expected] of [
      ['exclusive', 'ok 2'], // a writer's: its write is in flight
      ['shared', 'torn-tail 2'], // another verify's: no writer there
    ] as const) {
      const holder = await nodeFiles.open(lockPath, constants.O_RDONLY);
      assert.equal(mode === 'exclusive' ? nodeFiles.tryLock(holder) : nodeFiles.tryLockShared(holder), true);
      assert.equal(await verdict(), expected, mode);
      nodeFiles.unlock(holder);
      await nodeFiles.close(holder);
    }
    // Where a writer cannot be told apart: judged as it is, never waited on.
    const noAddon: Files = {
      ...nodeFiles,
      tryLockShared: () => {
        throw Object.assign(new Error('no addon'), { code: 'EVIDENT_NATIVE' });
      },
    };
    assert.equal(await verdict(noAddon), 'torn-tail 2', 'no flock addon');
    rmSync(lockPath);
    spawnSync('mkfifo', [lockPath]);
    assert.equal(await verdict(), 'torn-tail 2', 'a FIFO');
    rmSync(lockPath);
    symlinkSync('elsewhere', lockPath);
    assert.equal(await verdict(), 'torn-tail 2', 'a symbolic link');
  });

  it('a replacement it cannot open (a symbolic link) is refused, and the log still closes cleanly', async () => {
    for (const readOnly of [true, false]) {
      const dir = tempDir();
      const path = join(dir, 'log.jsonl');
      const made = await Log.open({ store: dir, create: true });
      await made.append({ actor: 'a', action: 'x.y' });
      await made.close();
      const log = new Log({ store: dir, readOnly });
      assert.equal((await log.head()).size, 1);
      writeFileSync(join(dir, 'elsewhere.jsonl'), readFileSync(path));
      symlinkSync('elsewhere.jsonl', `${path}.link`);
      renameSync(`${path}.link`, path);
      await assert.rejects(readOnly ? log.head() : log.append({ actor: 'b', action: 'x.y' }));
      await log.close(); // each descriptor closed once: no EBADF
    }
  });

  it('refuses a log file replaced by one without what it acknowledged: an older copy, another log', async () => {
    const dir = tempDir();
    const path = join(dir, 'log.jsonl');
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'a', action: 'x.y' });
    const backup = readFileSync(path);
    await log.appendBatch([
      { actor: 'b', action: 'x.y' },
      { actor: 'c', action: 'x.y' },
    ]);
    const acknowledged = readFileSync(path);
    writeFileSync(`${path}.restore`, backup);
    renameSync(`${path}.restore`, path);
    await assert.rejects(log.append({ actor: 'd', action: 'x.y' }), {
      code: 'EVIDENT_LOG_CORRUPT',
      message: /was replaced by a file of \d+ bytes while open, without the \d+ bytes of entries it held/,
    });
    assert.deepEqual(readFileSync(path), backup, 'nothing written onto the older copy');
    // Another log's file, as long as this one's: its line where this writer's head was is not that head.
    const other = tempDir();
    const foreign = await Log.open({ store: other, create: true });
    await foreign.appendBatch(['e', 'f', 'g'].map((actor) => ({ actor, action: 'x.y' })));
    await foreign.close();
    writeFileSync(`${path}.restore`, acknowledged);
    renameSync(`${path}.restore`, path); // back to what it acknowledged: followed again
    assert.equal((await log.append({ actor: 'h', action: 'x.y' })).seq, 3);
    writeFileSync(`${path}.other`, readFileSync(join(other, 'log.jsonl')));
    renameSync(`${path}.other`, path);
    await assert.rejects(log.append({ actor: 'i', action: 'x.y' }), { code: 'EVIDENT_LOG_CORRUPT' });
    await log.close();
  });
});
