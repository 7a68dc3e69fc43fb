/**
 * The native addon's Merkle row hasher: it must compute exactly what the
 * JavaScript one does (SHA-256(0x01 || left || right) per pair), refuse
 * malformed arguments, and be the one in use on the Node versions evident
 * supports (Node exports its OpenSSL's SHA256 to addons).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { hashPairs, nodeHash } from '../src/merkle/hash.js';
import { TreeEdge } from '../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../src/merkle/tree.js';
import { nativeHashing, pairHasher } from '../src/native.js';

describe('the native pair hasher', () => {
  it(`is in use on Node ${process.version}`, () => {
    assert.equal(nativeHashing, true, 'the addon found no SHA256 in this Node: tree hashing falls back to JavaScript');
    assert.notEqual(pairHasher, hashPairs);
  });

  it('hashes every pair as an RFC 9162 interior node, like the JavaScript hasher', () => {
    for (const pairs of [0, 1, 2, 3, 64, 128, 255]) {
      const input = randomBytes(pairs * 64);
      const native = Buffer.alloc(pairs * 32);
      const js = Buffer.alloc(pairs * 32);
      pairHasher(input, native);
      hashPairs(input, js);
      assert.ok(native.equals(js), `${pairs} pairs`);
      for (let k = 0; k < pairs; k++) {
        const node = nodeHash(input.subarray(64 * k, 64 * k + 32), input.subarray(64 * k + 32, 64 * k + 64));
        assert.ok(native.subarray(32 * k, 32 * k + 32).equals(node));
      }
    }
  });

  it('refuses arguments that are not 64-byte pairs and an output half as long', () => {
    assert.throws(() => pairHasher(Buffer.alloc(63), Buffer.alloc(32)), RangeError);
    assert.throws(() => pairHasher(Buffer.alloc(128), Buffer.alloc(32)), RangeError);
    assert.throws(() => (pairHasher as (...a: unknown[]) => void)('x', Buffer.alloc(0)), TypeError);
  });

  it('gives a tree edge the same roots and tiles as the JavaScript hasher, append by append', () => {
    const leaves = Array.from({ length: 70_000 }, () => randomBytes(32));
    const reference = subtreesOf(leaves);
    const native = new TreeEdge(0, [], pairHasher);
    const js = new TreeEdge(0, [], hashPairs);
    let at = 0;
    for (const n of [1, 2, 253, 256, 1000, 3, 65_536, 949]) {
      const batch = leaves.slice(at, at + n);
      at += batch.length;
      const a = [...native.append(batch), ...native.partials()];
      const b = [...js.append(batch), ...js.partials()];
      assert.deepEqual(
        a.map((t) => [
          t.level,
          t.index,
          Buffer.concat(t.hashes).toString('hex'),
          Buffer.concat(t.inner ?? []).toString('hex'),
        ]),
        b.map((t) => [
          t.level,
          t.index,
          Buffer.concat(t.hashes).toString('hex'),
          Buffer.concat(t.inner ?? []).toString('hex'),
        ]),
      );
      assert.ok(treeRoot(native.subtree, at).equals(treeRoot(reference, at)), `root at ${at}`);
      assert.ok(native.root().equals(treeRoot(reference, at)) && js.root().equals(native.root()), `root() at ${at}`);
    }
  });
});
