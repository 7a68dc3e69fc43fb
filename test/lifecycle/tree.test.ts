/**
 * The log's Merkle tree: its root is the RFC 9162 root of the entries' hashes
 * however the entries were written (batches, processes, threads); its stored
 * tiles are the C2SP tiles of that tree; proofs verify; it is rebuilt from
 * the entries when tiles are missing or damaged.
 */
import assert from 'node:assert/strict';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import type { Hash } from '../../src/merkle/hash.js';
import { TILE_WIDTH } from '../../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { verifyConsistency, verifyInclusion } from '../../src/merkle/verify.js';
import { FIXTURES, readLines, runNode, tempDir } from '../helpers.js';

/** Tile `level`/`index` of `width` hashes as stored: a range of the level's file of hashes. */
function storedTile(dir: string, level: number, index: number, width = TILE_WIDTH): Buffer {
  const at = index * TILE_WIDTH * 32;
  return readFileSync(join(dir, 'tree', String(level))).subarray(at, at + width * 32);
}

/** Overwrites bytes of tile level `level`'s file at `offset`. */
function damage(dir: string, level: number, offset: number, bytes: Buffer): void {
  const fd = openSync(join(dir, 'tree', String(level)), 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

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
  it('matches the entries however they were written, and its stored tiles are the C2SP tiles', async () => {
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
    assert.ok(storedTile(dir, 0, 0).equals(Buffer.concat(leaves.slice(0, TILE_WIDTH))));
    assert.ok(storedTile(dir, 0, 5, 1359 - 5 * 256).equals(Buffer.concat(leaves.slice(5 * 256))));
    assert.ok(storedTile(dir, 1, 0, 5).equals(Buffer.concat([0, 1, 2, 3, 4].map((i) => reference(8, i)))));
    assert.equal(readFileSync(join(dir, 'tree', 'size'), 'utf8'), '1359\n');
    const reopened = await Log.open({ store: dir });
    await checkTree(reopened, leaves);
    await reopened.close();
    const reader = new Log({ store: dir, readOnly: true });
    await checkTree(reader, leaves);
    await reader.close();
  });

  it('stores a tile level as one file of hashes: a partial tile is the prefix of the full tile it becomes', async () => {
    const dir = tempDir();
    const log = await Log.open({ store: dir, create: true });
    await log.appendBatch(Array.from({ length: 100 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await log.treeHead(); // a log that does not sign builds its tree on demand, and stores it
    assert.equal(statSync(join(dir, 'tree', '0')).size, 100 * 32);
    await log.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'b', action: 'x.y', data: { i } })));
    await log.treeHead();
    await log.close();
    const leaves = leavesOf(dir);
    assert.ok(readFileSync(join(dir, 'tree', '0')).equals(Buffer.concat(leaves)));
    assert.deepEqual(readdirSync(join(dir, 'tree')).sort(), ['0', '1', 'size']);
    assert.equal(statSync(join(dir, 'tree', '1')).size, 2 * 32, 'the roots of the two full tiles');
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
    rmSync(join(dir, 'tree'), { recursive: true, force: true }); // nothing to start from but the log
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

    rmSync(join(dir, 'tree'), { recursive: true });
    const afterLoss = await Log.open({ store: dir });
    await checkTree(afterLoss, leaves);
    await afterLoss.close();

    writeFileSync(join(dir, 'tree', 'size'), '999999\n'); // claims more than the log has
    const afterLie = await Log.open({ store: dir });
    await checkTree(afterLie, leaves);
    await afterLie.close();

    truncateSync(join(dir, 'tree', '0'), 650 * 32); // cut short: the last partial tile torn
    const afterTear = await Log.open({ store: dir });
    await checkTree(afterTear, leaves);
    await afterTear.close();

    damage(dir, 0, 699 * 32, Buffer.alloc(32, 5)); // the last leaf stored is not the log's
    const afterStale = await Log.open({ store: dir });
    await checkTree(afterStale, leaves);
    await afterStale.close();

    damage(dir, 0, 300 * 32, Buffer.alloc(32, 7)); // a full tile that is not this log's
    const afterSwap = await Log.open({ store: dir });
    await checkTree(afterSwap, leaves);
    await afterSwap.close();
    assert.ok(storedTile(dir, 0, 1).equals(Buffer.concat(leaves.slice(256, 512))), 'rewritten');
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
