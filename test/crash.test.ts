/**
 * kill -9 of a writer, many times: every acknowledged append survives, the
 * log verifies after reopening, and a torn last line is moved to quarantine
 * (never silently deleted) while appends continue after the last good entry.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../src/log.js';
import { nodeFiles } from '../src/store/file/files.js';
import type { Recovery } from '../src/store/store.js';
import { evident, FIXTURES, readLines, runNode, tempDir } from './helpers.js';

const WRITER = join(FIXTURES, 'crash-writer.js');

/** Starts the streaming writer, kills it with SIGKILL once it has acknowledged `after` entries, returns the acknowledged ids. */
function killMidStream(dir: string, after: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, 'stream'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!killed && out.split('\n').length > after) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer ended without being killed: ${stderr}`));
      // Only whole lines are acknowledgements; a partial last line was never fully reported.
      resolve(out.split('\n').slice(0, -1));
    });
  });
}

describe('crash safety', () => {
  it('survives kill -9 mid-stream, 12 times over: nothing acknowledged is lost, the log verifies', async () => {
    const dir = tempDir();
    await (await Log.open({ store: dir, create: true })).close();
    const acked: string[] = [];
    const recoveries: Recovery[] = [];
    for (let round = 0; round < 12; round++) {
      acked.push(...(await killMidStream(dir, 20 + round * 7)));
      const log = new Log({ store: dir });
      log.on('recovered', (r) => recoveries.push(r));
      await log.ready(); // reopening under the lock recovers a torn tail, if the kill left one
      const result = await log.verify();
      assert.equal(result.ok, true, JSON.stringify(result.failure));
      await log.close();
    }
    const ids = new Set(readLines(join(dir, 'log.jsonl')).map((l) => (JSON.parse(l) as { id: string }).id));
    const lost = acked.filter((id) => !ids.has(id));
    assert.deepEqual(lost, [], 'every acknowledged append is in the log');
    assert.ok(acked.length >= 12 * 20);
    // Each recovery left its bytes in quarantine.
    for (const r of recoveries) assert.equal(statSync(r.file).size, r.bytes);
  });

  it('a writer killed inside write() leaves a torn line; the next open quarantines it and appends continue', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'before', action: 'test.ok' });
    await log.append({ actor: 'before', action: 'test.ok' });
    await log.close();
    const logFile = join(dir, 'log.jsonl');
    const goodBytes = readFileSync(logFile);

    const ran = await runNode(WRITER, [dir, 'torn']);
    assert.equal(ran.signal, 'SIGKILL');
    const torn = readFileSync(logFile).subarray(goodBytes.length);
    assert.ok(torn.length > 0 && !torn.includes(0x0a), 'the kill left a torn line with no newline');

    const readOnly = new Log({ store: dir, readOnly: true });
    const holder = await nodeFiles.open(join(dir, 'lock'), constants.O_RDONLY);
    assert.equal(nodeFiles.tryLock(holder), true); // as a writer in the middle of that write would
    const during = await readOnly.verify();
    nodeFiles.unlock(holder);
    await nodeFiles.close(holder);
    assert.deepEqual([during.ok, during.size], [true, 2], 'a line being written is not yet the log');
    const before = await readOnly.verify();
    await readOnly.close();
    assert.equal(before.failure?.reason, 'torn-tail');
    assert.equal(before.failure?.seq, 2);

    const reopened = new Log({ store: dir });
    const recoveries: Recovery[] = [];
    reopened.on('recovered', (r) => recoveries.push(r));
    const next = await reopened.append({ actor: 'after', action: 'test.ok' });
    assert.equal(next.seq, 2, 'appends continue from the last complete entry');
    assert.equal(recoveries.length, 1);
    const recovery = recoveries[0] as Recovery;
    assert.equal(recovery.offset, goodBytes.length);
    assert.deepEqual(readFileSync(recovery.file), torn, 'the torn bytes are kept in quarantine, byte for byte');
    assert.ok(existsSync(join(dir, 'quarantine')) && readdirSync(join(dir, 'quarantine')).length === 1);
    const after = await reopened.verify();
    assert.equal(after.ok, true);
    assert.equal(after.size, 3);
    await reopened.close();
  });

  it('a batch cut short by a crash, even between lines, is moved aside whole: all of it or none', async () => {
    await batchCutShort('torn-batch');
  });

  it("a batch cut short right before its first line's newline: moved aside, and no later entry with it", async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.append({ actor: 'before', action: 'test.ok' });
    await log.close();
    const goodBytes = readFileSync(join(dir, 'log.jsonl')).length;
    const ran = await runNode(WRITER, [dir, 'torn-batch-first']);
    assert.equal(ran.signal, 'SIGKILL', ran.stderr);
    assert.ok(!readFileSync(join(dir, 'log.jsonl')).subarray(goodBytes).includes(0x0a), 'one line, no newline');
    // Its first entry is whole but for the newline: not the batch, only part of it. It goes, and the next does not.
    for (const actor of ['next', 'third']) {
      const appended = await evident(['append', '--dir', dir, '--actor', actor, '--action', 'test.ok']);
      assert.equal(appended.code, 0, appended.stderr);
    }
    const entries = readLines(join(dir, 'log.jsonl')).map((line) => JSON.parse(line) as { seq: number; actor: string });
    assert.deepEqual(
      entries.map((e) => [e.seq, e.actor]),
      [
        [0, 'before'],
        [1, 'next'],
        [2, 'third'],
      ],
    );
    assert.equal((await new Log({ store: dir, readOnly: true }).verify()).ok, true);
  });

  it('a batch cut short after its record was replaced at its path (a restore): moved aside all the same', async () => {
    await batchCutShort('torn-batch-replaced');
  });
});

/**
 * The crash fixture in `mode` kills its writer 4 lines into a 10-entry batch: readers see the log end before
 * the batch, verify names it, a copy leaves it out, and the next writer moves it aside whole.
 */
async function batchCutShort(mode: 'torn-batch' | 'torn-batch-replaced'): Promise<void> {
  const dir = tempDir();
  const log = await Log.open({ store: dir, create: true });
  await log.appendBatch([
    { actor: 'before', action: 'test.ok' },
    { actor: 'before', action: 'test.ok' },
  ]);
  await log.close();
  const logFile = join(dir, 'log.jsonl');

  const ran = await runNode(WRITER, [dir, mode]);
  assert.equal(ran.signal, 'SIGKILL', ran.stderr);
  const size = mode === 'torn-batch' ? 2 : 4; // the entries acknowledged before the batch
  const lines = readFileSync(logFile, 'utf8').split('\n');
  assert.equal(lines.at(-1), '', 'nothing torn');
  assert.equal(lines.length - 1, size + 4, 'four whole lines of the ten');
  const goodBytes = Buffer.byteLength(lines.slice(0, size).join('\n')) + 1;
  const part = readFileSync(logFile).subarray(goodBytes);

  const readOnly = new Log({ store: dir, readOnly: true });
  assert.equal((await readOnly.head()).size, size, 'readers see the log end before the batch');
  const seqs: number[] = [];
  for await (const entry of readOnly.read()) seqs.push(entry.seq);
  assert.deepEqual(seqs, [...Array(size).keys()]);
  // While a writer holds the append lock, that is a commit in flight: verify checks what precedes it.
  const holder = await nodeFiles.open(join(dir, 'lock'), constants.O_RDONLY);
  assert.equal(nodeFiles.tryLock(holder), true);
  const during = await readOnly.verify();
  nodeFiles.unlock(holder);
  await nodeFiles.close(holder);
  assert.deepEqual([during.ok, during.size], [true, size], JSON.stringify(during.failure));
  const before = await readOnly.verify();
  await readOnly.close();
  assert.equal(before.ok, false);
  assert.deepEqual([before.size, before.failure?.seq, before.failure?.reason], [size, size, 'torn-tail']);
  assert.match(before.failure?.message ?? '', new RegExp(`a commit of entries from seq ${size} was cut short`));

  const checked = await evident(['verify', '--dir', dir]);
  assert.equal(checked.code, 1);
  assert.match(checked.stdout, new RegExp(`FAILED: torn-tail at seq ${size} .*was cut short`));
  const copy = await evident(['copy', '--from', dir, '--to', join(tempDir(), 'copy')]);
  assert.equal(copy.code, 0, copy.stderr);
  assert.match(copy.stdout, new RegExp(`^copied ${size} entries`), 'a copy takes only what was acknowledged');

  const next = await evident(['append', '--dir', dir, '--actor', 'after', '--action', 'test.ok']);
  assert.equal(next.code, 0, next.stderr);
  assert.equal((JSON.parse(next.stdout) as { seq: number }).seq, size, 'none of the batch was kept');
  const told = new RegExp(
    `^evident: the log ended in a batch written in part \\((\\d+) bytes from entry ${size} at byte (\\d+): .*` +
      'it was moved to (\\S+), and appends go on after the last whole commit\\n$',
  ).exec(next.stderr);
  assert.ok(told, next.stderr);
  assert.deepEqual([Number(told[1]), Number(told[2])], [part.length, goodBytes]);
  assert.deepEqual(readFileSync(told[3] as string), part, 'its lines are kept in quarantine');
  const after = await new Log({ store: dir, readOnly: true }).verify();
  assert.deepEqual([after.ok, after.size], [true, size + 1]);
}
