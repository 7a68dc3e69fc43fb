/**
 * Tampering with the file, every way the issue lists: each is caught, and
 * verify names the first bad entry with the right seq, line and reason.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { FailureReason } from '../src/chain.js';
import { copyLog } from '../src/copy.js';
import { canonicalize } from '../src/encoding/canonical.js';
import { type Entry, hashedText, leafHashOfText } from '../src/entry.js';
import { Log } from '../src/log.js';
import { readLines, tempDir, writeLines } from './helpers.js';

const SIZE = 20;
let root: string;
let original: string[];
let foreign: string[];

async function makeLog(dir: string): Promise<string[]> {
  const log = await Log.open({ store: dir, create: true });
  for (let i = 0; i < SIZE; i++)
    await log.append({ actor: `user-${i % 3}`, action: 'doc.edit', targets: [`doc-${i}`] });
  await log.close();
  return readLines(join(dir, 'log.jsonl'));
}

/** Re-encodes an entry with a hash that matches its (changed) content: a forger's best effort. */
function reseal(entry: Entry): string {
  const hash = leafHashOfText(hashedText(entry));
  return canonicalize({ ...entry, hash });
}

async function verifyLines(lines: string[] | null, name: string, raw?: (path: string) => void) {
  const dir = join(root, name);
  mkdirSync(dir);
  const path = join(dir, 'log.jsonl');
  if (lines !== null) writeLines(path, lines);
  raw?.(path);
  const before = readFileSync(path);
  const log = new Log({ store: dir, readOnly: true });
  const result = await log.verify();
  // Worker threads verifying ranges in parallel reach the same verdict and name the same failure.
  for (const threads of [2, 3, 7]) assert.deepEqual(await log.verify({ threads }), result, `with ${threads} threads`);
  await log.close();
  assert.deepEqual(readFileSync(path), before, 'verify never writes');
  return result;
}

function expectFailure(result: Awaited<ReturnType<typeof verifyLines>>, seq: number, reason: FailureReason) {
  assert.equal(result.ok, false);
  assert.ok(result.failure, 'a failure is named');
  assert.deepEqual(
    { seq: result.failure.seq, line: result.failure.line, reason: result.failure.reason },
    { seq, line: seq + 1, reason },
    result.failure.message,
  );
  assert.equal(result.size, seq, 'entries before the failure are counted as intact');
}

describe('tamper detection', () => {
  before(async () => {
    root = tempDir();
    original = await makeLog(join(root, 'original'));
    foreign = await makeLog(join(root, 'other-log'));
  });

  it('an untouched log verifies', async () => {
    const result = await verifyLines(original, 'untouched');
    assert.equal(result.ok, true);
    assert.equal(result.size, SIZE);
    assert.equal(result.head, (JSON.parse(original[SIZE - 1] as string) as Entry).hash);
  });

  it('a flipped byte: hash-mismatch at that entry', async () => {
    const lines = [...original];
    lines[5] = (lines[5] as string).replace('"actor":"user-2"', '"actor":"user-3"');
    assert.notEqual(lines[5], original[5]);
    expectFailure(await verifyLines(lines, 'flip'), 5, 'hash-mismatch');
  });

  it('a deleted line: seq-gap where it was', async () => {
    const lines = original.filter((_, i) => i !== 5);
    expectFailure(await verifyLines(lines, 'delete'), 5, 'seq-gap');
  });

  it('two swapped lines: seq-gap at the first', async () => {
    const lines = [...original];
    [lines[5], lines[6]] = [lines[6] as string, lines[5] as string];
    expectFailure(await verifyLines(lines, 'swap'), 5, 'seq-gap');
  });

  it('an inserted forged line with a self-consistent hash: caught at the entry it displaced', async () => {
    const prev = JSON.parse(original[5] as string) as Entry;
    const forged = reseal({ ...prev, seq: 6, prev: prev.hash, id: 'forged', actor: 'mallory' });
    const lines = [...original.slice(0, 6), forged, ...original.slice(6)];
    // The forgery itself is indistinguishable from an append; the original seq 6 behind it no longer fits.
    expectFailure(await verifyLines(lines, 'insert'), 7, 'seq-gap');
  });

  it('a rewritten entry with a recomputed hash: prev-mismatch at the next entry', async () => {
    const lines = [...original];
    lines[5] = reseal({ ...(JSON.parse(original[5] as string) as Entry), actor: 'mallory' });
    expectFailure(await verifyLines(lines, 'rewrite'), 6, 'prev-mismatch');
  });

  it('a line spliced in from another log, hash and all: foreign-entry', async () => {
    const lines = [...original];
    lines[5] = foreign[5] as string;
    expectFailure(await verifyLines(lines, 'splice'), 5, 'foreign-entry');
  });

  it('a file truncated mid-line: torn-tail at the last entry', async () => {
    const result = await verifyLines(original, 'truncate', (path) => {
      truncateSync(path, readFileSync(path).length - 40);
    });
    expectFailure(result, SIZE - 1, 'torn-tail');
  });

  it('a time moved backwards, resealed: time-regression', async () => {
    const lines = [...original];
    const entry = JSON.parse(original[5] as string) as Entry;
    lines[5] = reseal({ ...entry, ts: '2000-01-01T00:00:00.000Z' });
    expectFailure(await verifyLines(lines, 'time'), 5, 'time-regression');
  });

  it('the same entry re-encoded with white space: not-canonical', async () => {
    const lines = [...original];
    lines[5] = JSON.stringify(JSON.parse(original[5] as string), null, 1).replace(/\n/g, '');
    expectFailure(await verifyLines(lines, 'whitespace'), 5, 'not-canonical');
  });

  it('a line that is not an entry: malformed, never skipped', async () => {
    const lines = [...original];
    lines[5] = 'this is not json';
    expectFailure(await verifyLines(lines, 'garbage'), 5, 'malformed');
    const blank = [...original];
    blank[5] = '';
    expectFailure(await verifyLines(blank, 'blank'), 5, 'malformed');
  });

  it('a byte that is not UTF-8, resealed over the raw bytes: malformed, not read as U+FFFD', async () => {
    const entry = JSON.parse(original[5] as string) as Entry;
    const { hash: _old, ...rest } = { ...entry, actor: 'a_b' };
    const covered = Buffer.from(canonicalize(rest));
    covered[covered.indexOf('a_b') + 1] = 0xff;
    const leaf = createHash('sha256')
      .update(Buffer.from([0]))
      .update(covered)
      .digest('hex');
    const at = covered.indexOf(',"id":');
    const line = Buffer.concat([covered.subarray(0, at), Buffer.from(`,"hash":"${leaf}"`), covered.subarray(at)]);
    const result = await verifyLines(null, 'not-utf8', (path) =>
      writeFileSync(
        path,
        Buffer.concat([
          Buffer.from(`${original.slice(0, 5).join('\n')}\n`),
          line,
          Buffer.from(`\n${original.slice(6).join('\n')}\n`),
        ]),
      ),
    );
    expectFailure(result, 5, 'malformed');
    assert.match(result.failure?.message ?? '', /not valid UTF-8/);
  });

  it('data evident never writes (not I-JSON), resealed: malformed, naming it', async () => {
    const cases: [string, string, RegExp][] = [
      ['lone-surrogate', '"\\ud800"', /\$\.data\.x string contains a lone surrogate/],
      ['big-integer', '9007199254740992', /\$\.data\.x the integer 9007199254740992 is beyond/],
      ['noncharacter', '"\uFFFF"', /\$\.data\.x string contains a Unicode noncharacter/],
    ];
    for (const [name, value, message] of cases) {
      const lines = [...original];
      const entry = JSON.parse(original[5] as string) as Entry;
      // Sealed over the text as written, as a writer before the rule (or another tool) would have.
      const { hash: _old, ...rest } = { ...entry, data: { x: 'X' } };
      const covered = canonicalize(rest).replace('"X"', value);
      lines[5] = covered.replace(',"id":', `,"hash":"${leafHashOfText(covered)}","id":`);
      const result = await verifyLines(lines, name);
      expectFailure(result, 5, 'malformed');
      assert.match(result.failure?.message ?? '', message);
    }
  });

  it('a log holding such an entry, even first, can still be opened and read; verify and copy name it', async () => {
    // A non-signing log whose first entry holds a noncharacter and an integer append now refuses.
    const entry = JSON.parse(original[0] as string) as Entry;
    const { hash: _old, ...rest } = { ...entry, data: { s: 'a\uFFFFb', n: 2 ** 60 } };
    const covered = canonicalize(rest);
    const lines = [covered.replace(',"id":', `,"hash":"${leafHashOfText(covered)}","id":`)];
    const dir = join(root, 'old-rules');
    mkdirSync(dir);
    writeLines(join(dir, 'log.jsonl'), lines);
    const log = new Log({ store: dir, readOnly: true });
    const read: Entry[] = [];
    for await (const e of log.read()) read.push(e);
    assert.deepEqual(read[0]?.data, { s: 'a\uFFFFb', n: 2 ** 60 });
    const result = await log.verify();
    await log.close();
    expectFailure(result, 0, 'malformed');
    // copy verifies as it goes: it stops there with verify's words, not an error about input.
    await assert.rejects(copyLog({ from: dir, to: join(root, 'old-rules-copy') }), {
      message: /entry 0 fails verification \(malformed: line is not I-JSON: \$\.data\.n the integer/,
    });
  });

  it('data nested deeper than an entry may hold, resealed: malformed, naming it, at any depth', async () => {
    for (const depth of [65, 200_000]) {
      const lines = [...original];
      const entry = JSON.parse(original[5] as string) as Entry;
      // Sealed with its hash over the text as written (JSON.stringify itself cannot go that deep).
      const { hash: _old, ...rest } = { ...entry, data: { deep: 'DEEP' } };
      const covered = canonicalize(rest).replace('"DEEP"', `${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}`);
      lines[5] = covered.replace(',"id":', `,"hash":"${leafHashOfText(covered)}","id":`);
      const result = await verifyLines(lines, `deep-${depth}`);
      expectFailure(result, 5, 'malformed');
      assert.match(result.failure?.message ?? '', /data nests deeper than 64 levels/);
    }
  });

  it('reading stops with an error at a malformed line instead of skipping it', async () => {
    const dir = join(root, 'read-malformed');
    mkdirSync(dir);
    const lines = [...original];
    lines[5] = '{"oops":';
    writeLines(join(dir, 'log.jsonl'), lines);
    const log = new Log({ store: dir, readOnly: true });
    const seen: number[] = [];
    await assert.rejects(
      async () => {
        for await (const e of log.read()) seen.push(e.seq);
      },
      (error: Error & { code?: string }) => error.code === 'EVIDENT_LOG_CORRUPT',
    );
    await log.close();
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  });

  it('parallel verification names the same first failure wherever the damage falls relative to the ranges', async () => {
    const dir = join(root, 'parallel');
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch(
      Array.from({ length: 600 }, (_, i) => ({ actor: `u${i % 5}`, action: 'doc.edit', data: { i } })),
    );
    await log.close();
    const lines = readLines(join(dir, 'log.jsonl'));
    for (let k = 0; k < lines.length; k += 37) {
      const damaged = [...lines];
      damaged[k] = (damaged[k] as string).replace('"doc.edit"', '"doc.view"');
      const other = [...lines.slice(0, k), ...lines.slice(k + 1)];
      for (const [name, variant] of [
        [`parallel-flip-${k}`, damaged],
        [`parallel-delete-${k}`, other],
      ] as const) {
        const result = await verifyLines(variant, name); // compares 1, 2, 3 and 7 threads
        assert.equal(result.failure?.seq, k);
      }
    }
  });

  it('a log copied whole verifies (the chain is position-independent of the directory)', async () => {
    const dir = join(root, 'copy');
    mkdirSync(dir);
    copyFileSync(join(root, 'original', 'log.jsonl'), join(dir, 'log.jsonl'));
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    const log = new Log({ store: dir, readOnly: true });
    assert.equal((await log.verify()).ok, true);
    await log.close();
  });
});
