/**
 * Compact ranges: a tree held as its complete subtrees down the right side.
 * Appending leaves in any chunks gives the same subtrees and root as the
 * tree built from all leaves at once (RFC 9162 §2.1.1, as merkle/tree.ts
 * computes it), with either pair hasher.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CompactRange, rangeLevels } from '../../src/merkle/compact.js';
import { emptyRoot, type Hash, hashPairs, leafHash } from '../../src/merkle/hash.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { pairHasher } from '../../src/native.js';

const leavesOf = (n: number, salt = 0): Hash[] =>
  Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${salt}/${i}`)));

describe('compact ranges', () => {
  it('hold one subtree per binary digit 1 of the size, largest first', () => {
    assert.deepEqual(rangeLevels(0), []);
    assert.deepEqual(rangeLevels(1), [0]);
    assert.deepEqual(rangeLevels(6), [2, 1]);
    assert.deepEqual(rangeLevels(255), [7, 6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual(rangeLevels(2 ** 40 + 3), [40, 1, 0]);
  });

  it('the RFC 6962 reference tree: the published roots at sizes 0 to 8, one leaf at a time', () => {
    const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
    const roots = [
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    let range = new CompactRange(0, [], pairHasher);
    assert.equal(range.root().toString('hex'), roots[0]);
    for (const [k, hex] of data.entries()) {
      range = range.append([leafHash(Buffer.from(hex, 'hex'))]);
      assert.equal(range.root().toString('hex'), roots[k + 1], `size ${k + 1}`);
    }
  });

  it('appended in any chunks, match the tree of all the leaves: subtrees and root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 600 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        (start, chunks, native) => {
          const hasher = native ? pairHasher : hashPairs;
          const total = start + chunks.reduce((a, b) => a + b, 0);
          const leaves = leavesOf(total, start);
          const get = subtreesOf(leaves);
          let range = CompactRange.of(get, start, hasher);
          let size = start;
          for (const chunk of chunks) {
            range = range.append(leaves.slice(size, size + chunk));
            size += chunk;
            const expected = CompactRange.of(get, size);
            assert.equal(range.size, size);
            assert.deepEqual(
              range.hashes.map((h) => h.toString('hex')),
              expected.hashes.map((h) => h.toString('hex')),
              `subtrees at ${size}`,
            );
            assert.ok(range.root().equals(treeRoot(get, size)), `root at ${size}`);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('appending nothing is the same range; the original is never changed', () => {
    const leaves = leavesOf(13);
    const range = CompactRange.of(subtreesOf(leaves), 13);
    assert.equal(range.append([]), range);
    const before = range.hashes.map((h) => h.toString('hex'));
    range.append(leavesOf(7, 1));
    assert.deepEqual(
      range.hashes.map((h) => h.toString('hex')),
      before,
    );
  });

  it('refuse a list of subtrees that does not fit the size', () => {
    const leaves = leavesOf(6);
    assert.throws(() => new CompactRange(6, [leaves[0] as Hash]), /6 leaves has 2 complete subtrees, not 1/);
    assert.throws(() => new CompactRange(1, [Buffer.alloc(31)]), RangeError);
    assert.throws(() => new CompactRange(-1, []), RangeError);
    assert.throws(() => new CompactRange(1.5, []), RangeError);
  });
});
