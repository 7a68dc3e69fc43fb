/**
 * The log's Merkle tree: its root is the RFC 9162 root of the entries' hashes
 * however the entries were written (batches, processes, threads); its stored
 * tiles are the C2SP tiles of that tree; proofs verify; it is rebuilt from
 * the entries when tiles are missing or damaged.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import type { Hash } from '../../src/merkle/hash.js';
import { TILE_WIDTH, tilePath } from '../../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { verifyConsistency, verifyInclusion } from '../../src/merkle/verify.js';
import { FIXTURES, readLines, runNode, tempDir } from '../helpers.js';

function leavesOf(dir: string): Hash[] {
  return readLines(join(dir, 'log.jsonl')).map((l) => Buffer.from((JSON.parse(l) as Entry).hash, 'hex'));
}

async function checkTree(log: Log, leaves: Hash[]): Promise<void> {
  const head = await log.treeHead();
  const reference = subtreesOf(leaves);
  assert.equal(head.size, leaves.length);
  assert.ok(head.root.equals(treeRoot(reference, leaves.length)), 'root is the RFC 9162 root of the entry hashes');
  for (const seq of [0, 1, 255, 256, 257, Math.floor(leaves.length / 2), leaves.length - 1]) {
    if (seq >= leaves.length) continue;
    const proof = await log.inclusionProof(seq);
    verifyInclusion(seq, leaves.length, leaves[seq] as Hash, proof, head.root);
  }
  for (const size1 of [1, 200, 256, 1000, leaves.length - 1]) {
    if (size1 < 1 || size1 >= leaves.length) continue;
    const proof = await log.consistencyProof(size1);
    verifyConsistency(size1, leaves.length, proof, await log.rootAt(size1), head.root);
    assert.ok((await log.rootAt(size1)).equals(treeRoot(reference, size1)));
  }
}

describe('the log Merkle tree', () => {
  it('matches the entries however they were written, and its tiles are the C2SP tiles', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    for (const n of [1, 7, 300, 1, 900]) {
      await log.appendBatch(Array.from({ length: n }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    }
    await Promise.all(Array.from({ length: 150 }, (_, i) => log.append({ actor: `c${i}`, action: 'x.y' })));
    // A log that does not sign builds its tree on demand: asking for it integrates every entry so far.
    assert.equal((await log.treeHead()).size, 1359);
    await log.close(); // persists the partial tiles
    const leaves = leavesOf(dir);
    assert.equal(leaves.length, 1359);
    const reference = subtreesOf(leaves);
    // Level-0 tiles hold the leaf hashes; level-1 tile 0 holds the roots of the 256-leaf subtrees.
    const tile0 = readFileSync(join(dir, tilePath(0, 0)));
    assert.ok(tile0.equals(Buffer.concat(leaves.slice(0, TILE_WIDTH))));
    const partial = readFileSync(join(dir, tilePath(0, 5, 1359 - 5 * 256)));
    assert.ok(partial.equals(Buffer.concat(leaves.slice(5 * 256))));
    const level1 = readFileSync(join(dir, tilePath(1, 0, 5)));
    assert.ok(level1.equals(Buffer.concat([0, 1, 2, 3, 4].map((i) => reference(8, i)))));
    assert.equal(readFileSync(join(dir, 'tree-size'), 'utf8'), '1359\n');
    const reopened = await Log.open({ store: dir });
    await checkTree(reopened, leaves);
    await reopened.close();
    const reader = new Log({ store: dir, readOnly: true });
    await checkTree(reader, leaves);
    await reader.close();
  });

  it('replaces the partial versions of a tile once it is full', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch(Array.from({ length: 100 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await log.treeHead(); // a log that does not sign builds its tree on demand, and stores it
    assert.equal(existsSync(join(dir, tilePath(0, 0, 100))), true);
    await log.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'b', action: 'x.y', data: { i } })));
    await log.treeHead();
    await log.close();
    const leaves = leavesOf(dir);
    assert.ok(readFileSync(join(dir, tilePath(0, 1))).equals(Buffer.concat(leaves.slice(256, 512))));
    assert.equal(existsSync(join(dir, `${tilePath(0, 0)}.p`)), false, 'the full tile superseded its partials');
    const listing = readdirSync(join(dir, 'tile'), { recursive: true }).map(String).sort();
    const partials = [join('0', '002.p'), join('0', '002.p', '188'), '1', join('1', '000.p'), join('1', '000.p', '2')];
    assert.deepEqual(listing, ['0', join('0', '000'), join('0', '001'), ...partials]);
  });

  it('is built from a log of several megabytes, read a chunk of lines at a time, as from the entries one by one', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true, durability: 'write' });
    const blob = 'x'.repeat(600); // ~3 MB of lines: the scan reads 1 MiB chunks, so runs cross chunk boundaries
    for (let i = 0; i < 4000; i += 500) {
      await log.appendBatch(
        Array.from({ length: 500 }, (_, j) => ({ actor: 'a', action: 'x.y', data: { i: i + j, blob } })),
      );
    }
    await log.close();
    rmSync(join(dir, 'tile'), { recursive: true, force: true }); // nothing to start from but the log
    rmSync(join(dir, 'tree-size'), { force: true });
    const leaves = leavesOf(dir);
    const reopened = await Log.open({ store: dir });
    await checkTree(reopened, leaves);
    await reopened.close();
  });

  it('stays right with processes and threads appending at once', async () => {
    const dir = tempDir();
    await (await Log.open({ store: dir, create: true })).close();
    const writer = join(FIXTURES, 'writer.js');
    await Promise.all([
      runNode(writer, [dir, 'p1', '300', '20']),
      runNode(writer, [dir, 'p2', '300', '20']),
      new Promise((resolve, reject) => {
        const w = new Worker(writer, { workerData: [dir, 't1', '300', '20'] });
        w.on('error', reject);
        w.on('exit', resolve);
      }),
    ]);
    const log = await Log.open({ store: dir });
    await checkTree(log, leavesOf(dir));
    await log.close();
  });

  it('is rebuilt from the log when tiles are missing, stale or damaged', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch(Array.from({ length: 700 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await log.treeHead();
    await log.close();
    const leaves = leavesOf(dir);

    rmSync(join(dir, 'tile'), { recursive: true });
    rmSync(join(dir, 'tree-size'));
    const afterLoss = await Log.open({ store: dir });
    await checkTree(afterLoss, leaves);
    await afterLoss.close();

    writeFileSync(join(dir, 'tree-size'), '999999\n'); // claims more than the log has
    const afterLie = await Log.open({ store: dir });
    await checkTree(afterLie, leaves);
    await afterLie.close();

    writeFileSync(join(dir, tilePath(0, 2, 700 - 512)), Buffer.alloc(10)); // torn partial tile
    const afterTear = await Log.open({ store: dir });
    await checkTree(afterTear, leaves);
    await afterTear.close();

    const full = readFileSync(join(dir, tilePath(0, 1)));
    full.fill(7, 0, 32); // a full tile that is not this log's
    writeFileSync(join(dir, tilePath(0, 1)), full);
    const afterSwap = await Log.open({ store: dir });
    await checkTree(afterSwap, leaves);
    await afterSwap.close();
    assert.ok(readFileSync(join(dir, tilePath(0, 1))).equals(Buffer.concat(leaves.slice(256, 512))), 'rewritten');
  });

  it('is never built from an entry whose hash is not hex: the log is reported corrupt, naming it', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch(Array.from({ length: 5 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await log.close();
    const path = join(dir, 'log.jsonl');
    const lines = readLines(path);
    const third = JSON.parse(lines[2] as string) as Entry;
    lines[2] = (lines[2] as string).replace(third.hash, `zz${third.hash.slice(2)}`); // 64 characters, not hex
    writeFileSync(path, `${lines.join('\n')}\n`);
    const reader = new Log({ store: dir, readOnly: true });
    await assert.rejects(reader.treeHead(), {
      code: 'EVIDENT_LOG_CORRUPT',
      message: /entry 2 has a hash that is not hex/,
    });
    await reader.close();
  });
});
