/**
 * The C2SP tlog-tiles layout and the right edge: tile paths as the spec
 * writes them; an edge fed leaves in any batches writes exactly the tiles a
 * tree built at once has, and gives the same roots.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HASH_SIZE, type Hash, leafHash } from '../../src/merkle/hash.js';
import { locateNode, TILE_WIDTH, TreeEdge, tilePath } from '../../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';

/** Concatenated hashes as a list of them. */
const hashesOf = (bytes: Buffer): Hash[] =>
  Array.from({ length: bytes.length / HASH_SIZE }, (_, k) => bytes.subarray(k * HASH_SIZE, (k + 1) * HASH_SIZE));

describe('tile paths', () => {
  it('encode the index in 3-digit groups, x-prefixed but the last, with .p/<width> for partial tiles', () => {
    assert.equal(tilePath(0, 1234067), 'tile/0/x001/x234/067');
    assert.equal(tilePath(0, 0), 'tile/0/000');
    assert.equal(tilePath(1, 5, 17), 'tile/1/005.p/17');
    assert.equal(tilePath(2, 1000), 'tile/2/x001/000');
    assert.equal(tilePath(3, 999, 255), 'tile/3/999.p/255');
  });
});

describe('the right edge', () => {
  const leaves = (n: number) => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`e${i}`)));

  it('writes the tiles a tree built at once has, and gives its roots, whatever the batches', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }), (batches) => {
        const all = leaves(batches.reduce((a, b) => a + b, 0));
        const reference = subtreesOf(all);
        const stored = new Map<string, Hash[]>();
        const edge = new TreeEdge();
        let size = 0;
        for (const n of batches) {
          for (const t of edge.append(all.slice(size, size + n))) {
            assert.equal(t.hashes.length, TILE_WIDTH * 32, 'append returns full tiles only');
            stored.set(`${t.level}/${t.index}`, hashesOf(t.hashes));
          }
          for (const t of edge.partials()) stored.set(`${t.level}/${t.index}`, hashesOf(t.hashes));
          size += n;
          assert.equal(edge.size, size);
          assert.ok(treeRoot(edge.subtree, size).equals(treeRoot(reference, size)), `root at ${size}`);
          assert.ok(edge.root().equals(treeRoot(reference, size)), `edge.root() at ${size}`);
        }
        // Every stored hash is the reference tree's node at level 8·L.
        for (const [key, hashes] of stored) {
          const [level, index] = key.split('/').map(Number) as [number, number];
          hashes.forEach((h, k) => {
            assert.ok(h.equals(reference(8 * level, index * TILE_WIDTH + k)), `tile ${key} hash ${k}`);
          });
        }
        // And any node can be read back from the stored tiles.
        for (const [level, index] of [
          [0, size - 1],
          [3, Math.floor((size - 1) / 8)],
          [8, 0],
          [9, 0],
        ] as const) {
          if ((index + 1) * 2 ** level > size) continue;
          const at = locateNode(level, index);
          const tile = stored.get(`${at.tileLevel}/${at.tileIndex}`) as Hash[];
          assert.ok(
            treeRoot(subtreesOf(tile.slice(at.from, at.from + at.count)), at.count).equals(reference(level, index)),
          );
        }
        // An edge rebuilt from its tiles carries on identically.
        const copy = new TreeEdge(size, edge.tiles());
        const more = leaves(size + 3).slice(size);
        copy.append(more);
        edge.append(more);
        assert.ok(treeRoot(copy.subtree, size + 3).equals(treeRoot(edge.subtree, size + 3)));
      }),
      { numRuns: 60 },
    );
  });

  it('gives the root of every size from 0 to 1100, leaf by leaf', () => {
    const all = leaves(1100);
    const reference = subtreesOf(all);
    const edge = new TreeEdge();
    assert.ok(edge.root().equals(treeRoot(reference, 0)), 'the empty tree');
    for (let size = 1; size <= all.length; size++) {
      edge.append([all[size - 1] as Hash]);
      assert.ok(edge.root().equals(treeRoot(reference, size)), `root at ${size}`);
    }
  });

  it('takes leaves as a list or as one buffer alike, and refuses bytes that are not whole hashes', () => {
    const all = leaves(700);
    const listed = new TreeEdge();
    const joined = new TreeEdge();
    for (const [from, to] of [
      [0, 1],
      [1, 300],
      [300, 556],
      [556, 700],
    ] as const) {
      const a = listed.append(all.slice(from, to));
      const b = joined.append(Buffer.concat(all.slice(from, to)));
      assert.deepEqual(
        b.map((t) => [t.level, t.index, t.hashes.toString('hex')]),
        a.map((t) => [t.level, t.index, t.hashes.toString('hex')]),
      );
      assert.ok(joined.root().equals(listed.root()), `root at ${to}`);
    }
    assert.throws(() => joined.append(Buffer.alloc(33)), /33 bytes are not whole hashes/);
    assert.equal(joined.size, 700, 'nothing was appended');
  });

  it('refuses an edge that does not fit its size', () => {
    assert.throws(() => new TreeEdge(300, [[]]), /holds 0 hashes, not 44/);
    assert.throws(() => new TreeEdge(300, [Buffer.alloc(43 * 32)]), /holds 43 hashes, not 44/);
  });
});
