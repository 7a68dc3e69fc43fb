/**
 * The addon's whole commit (native/commit.c): what it writes is byte for
 * byte what the JavaScript sealer writes; it follows other writers' entries;
 * whenever the log is not in its plain state it declines, changing nothing,
 * and the commit from JavaScript judges and repairs as before; a write that
 * really fails is cut off, with the lock released and the chain intact.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, readFileSync, renameSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Entry, prepareEntry, sealLine } from '../../../src/entry.js';
import { Log } from '../../../src/log.js';
import { LOG_FILE } from '../../../src/store/file/file-store.js';
import { countingFiles, FIXTURES, readLines, tempDir } from '../../helpers.js';

/** A log with `n` entries, opened with a counting file layer, and its file's path. */
async function openLog(n = 1) {
  const dir = tempDir();
  const { files, counts } = countingFiles();
  const log = new Log({ dir, files, create: true });
  for (let i = 0; i < n; i++) await log.append({ actor: 'seed', action: 'test.seed' });
  return { dir, log, counts, path: join(dir, LOG_FILE) };
}

/** The line sealLine writes for the entry a line holds, at its position: what the JavaScript commit would write. */
function resealed(line: string): string {
  const e = JSON.parse(line) as Entry;
  const prepared = prepareEntry({
    actor: e.actor,
    action: e.action,
    targets: e.targets,
    outcome: e.outcome,
    data: e.data,
  });
  return sealLine(prepared, { log: e.log, seq: e.seq, ts: e.ts, id: e.id, prev: e.prev }).line;
}

describe('the native commit', () => {
  it('writes each line exactly as the JavaScript sealer does, members that look like the log’s own included', async () => {
    const { log, counts, path } = await openLog();
    const inputs = [
      { actor: 'agent:ünïcödé ✓', action: 'file.write', targets: ['hash', 'seq', 'ts'], outcome: 'success' },
      { actor: 'ci', action: 'build.run', data: { hash: 'a'.repeat(64), seq: 7, ts: 'x', log: 'y', prev: 'z', v: 2 } },
      { actor: 'a"b\\c', action: 'x.y', data: { nested: { '"hash":"': ['"seq":', '"ts":"'] }, n: 1e21, e: '' } },
      { actor: 'x', action: 'y.z', outcome: 'denied', targets: [] },
      { actor: '😀', action: 'emoji.add', data: { s: '\u2028\u0001' } },
    ];
    await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(inputs[i % inputs.length] as never)));
    await log.appendBatch(inputs as never);
    assert.ok(counts.commits.committed >= 2, `${counts.commits.committed} native commits`);
    assert.deepEqual(counts.commits.declined, []);
    const lines = readLines(path);
    assert.equal(lines.length, 46);
    for (const line of lines) assert.equal(`${line}\n`, resealed(line));
    assert.equal((await log.verify()).ok, true);
    await log.close();
  });

  it('returns the entries it appended, chained, with one time for the commit', async () => {
    const { log, path } = await openLog();
    const entries = await log.appendBatch([
      { actor: 'a', action: 'x.y', data: { k: [1, { j: null }] } },
      { actor: 'b', action: 'x.y', targets: ['t'] },
    ]);
    const onDisk = readLines(path)
      .slice(1)
      .map((l) => JSON.parse(l) as Entry);
    assert.deepEqual(entries, onDisk);
    assert.equal(entries[1]?.prev, entries[0]?.hash);
    assert.equal(entries[0]?.ts, entries[1]?.ts);
    await log.close();
  });

  it('follows entries another writer appended since its last commit', async () => {
    const { dir, log, counts } = await openLog();
    const other = new Log({ dir }); // its own descriptors: flock excludes it like another process
    for (let i = 0; i < 5; i++) {
      await log.append({ actor: 'one', action: 'test.a' });
      await other.appendBatch([
        { actor: 'two', action: 'test.b' },
        { actor: 'two', action: 'test.b' },
      ]);
    }
    await other.close();
    assert.equal(counts.commits.committed, 5);
    assert.deepEqual(counts.commits.declined, []);
    const result = await log.verify();
    assert.equal(result.ok, true);
    assert.equal(result.size, 16);
    await log.close();
  });

  it('declines a log ending in a torn line: the commit from JavaScript quarantines it and appends', async () => {
    const { log, counts, path } = await openLog(2);
    const recovered: unknown[] = [];
    log.on('recovered', (r) => recovered.push(r));
    appendFileSync(path, '{"action":"half a li');
    const entry = await log.append({ actor: 'a', action: 'x.y' });
    assert.deepEqual(counts.commits.declined, ['the log ends in a torn line']);
    assert.equal(recovered.length, 1);
    assert.equal(entry.seq, 2);
    assert.equal((await log.verify()).ok, true);
    await log.close();
  });

  it('declines a last line that its hash does not cover, which then fails verification as before', async () => {
    const { log, counts, path } = await openLog(2);
    const last = readLines(path).at(-1) as string;
    const forged = last.replace('"seq":1', '"seq":2').replace('"actor":"seed"', '"actor":"mallory"');
    appendFileSync(path, `${forged}\n`);
    await log.append({ actor: 'a', action: 'x.y' });
    assert.deepEqual(counts.commits.declined, ["the log's last line is not an entry of this log that its hash covers"]);
    const result = await log.verify();
    assert.equal(result.ok, false);
    assert.equal(result.failure?.reason, 'hash-mismatch');
    assert.equal(result.failure?.seq, 2);
    await log.close();
  });

  it('declines a log shorter than it last saw: the commit fails with EVIDENT_LOG_CORRUPT and writes nothing', async () => {
    const { log, counts, path } = await openLog(3);
    const size = statSync(path).size;
    truncateSync(path, size - 10);
    await assert.rejects(log.append({ actor: 'a', action: 'x.y' }), { code: 'EVIDENT_LOG_CORRUPT' });
    assert.deepEqual(counts.commits.declined, ['the log is shorter than it was']);
    assert.equal(statSync(path).size, size - 10);
    await log.close().catch(() => {});
  });

  it('declines a log file replaced at its path: the commit follows the path', async () => {
    const { log, counts, path } = await openLog(2);
    copyFileSync(path, `${path}.copy`);
    renameSync(`${path}.copy`, path);
    const entry = await log.append({ actor: 'a', action: 'x.y' });
    assert.deepEqual(counts.commits.declined, ['the log file was replaced']);
    assert.equal(entry.seq, 2);
    assert.equal(readLines(path).length, 3);
    await log.close();
  });

  it('cuts off a write that really fails (a file-size limit), with the lock free or waited for, and the chain goes on', async () => {
    const { dir, log, path } = await openLog(3);
    await log.close();
    const before = readLines(path);
    const limit = statSync(path).size + 4000; // room for a small entry, not for an 8 KB one
    const ran = spawnSync('prlimit', [`--fsize=${limit}`, process.execPath, join(FIXTURES, 'fsize-writer.js'), dir], {
      encoding: 'utf8',
    });
    assert.equal(ran.status, 0, ran.stderr);
    type Failure = { code: string; cause: string; message: string } | null;
    const report = JSON.parse(ran.stdout) as {
      failures: Failure[];
      small: number;
      commits: { committed: number; failed: number };
    };
    assert.equal(report.failures.length, 2);
    for (const failure of report.failures) {
      // Once with the lock free (committed at once), once after waiting for it (on the commit's own thread).
      assert.equal(failure?.code, 'EVIDENT_WRITE_FAILED', JSON.stringify(report));
      assert.equal(failure?.cause, 'EFBIG');
      assert.match(failure?.message ?? '', /could not append 1 entry to .*log\.jsonl/);
    }
    assert.equal(report.commits.failed, 2);
    assert.equal(report.commits.committed, 1, 'the small entry was committed natively, after the failures');
    assert.equal(report.small, 3);
    const after = readLines(path);
    assert.deepEqual(after.slice(0, 3), before);
    assert.equal(after.length, 4);
    assert.equal(existsSync(join(dir, 'quarantine')), false, 'nothing torn was left to quarantine');
    const reopened = await Log.open({ dir });
    assert.equal((await reopened.verify()).ok, true);
    await reopened.close();
    assert.equal(readFileSync(path, 'utf8').includes('test.big'), false);
  });
});
