/**
 * RFC 9162 Merkle trees: every public vector (inclusion and consistency
 * checks, including those a correct verifier must reject), the RFC 6962
 * reference tree's roots, and properties over random trees: generated proofs
 * verify, and any altered proof, index, size or root is refused.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProofError } from '../../src/errors.js';
import { emptyRoot, type Hash, leafHash } from '../../src/merkle/hash.js';
import { consistencyProof, inclusionProof, subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { verifyConsistency, verifyInclusion } from '../../src/merkle/verify.js';
import { VECTORS } from '../helpers.js';

const MERKLE = join(VECTORS, 'merkle');
const b64 = (s: string) => Buffer.from(s, 'base64');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.json') ? [path] : [];
  });
}

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

function outcome(check: () => void): 'ok' | 'error' {
  try {
    check();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof ProofError, `a ProofError, not ${error}`);
    return 'error';
  }
}

describe('RFC 9162 vectors', () => {
  const inclusion = files(join(MERKLE, 'inclusion'));
  const consistency = files(join(MERKLE, 'consistency'));
  it('has all 196 vector files', () => assert.equal(inclusion.length + consistency.length, 196));

  it('inclusion: every vector verifies or is refused as it must be', () => {
    for (const file of inclusion) {
      const v = JSON.parse(readFileSync(file, 'utf8')) as InclusionVector;
      const got = outcome(() =>
        verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), (v.proof ?? []).map(b64), b64(v.root)),
      );
      assert.equal(got, v.wantErr ? 'error' : 'ok', `${relative(MERKLE, file)}: ${v.desc}`);
    }
  });

  it('consistency: every vector verifies or is refused as it must be', () => {
    for (const file of consistency) {
      const v = JSON.parse(readFileSync(file, 'utf8')) as ConsistencyVector;
      const got = outcome(() =>
        verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2)),
      );
      assert.equal(got, v.wantErr ? 'error' : 'ok', `${relative(MERKLE, file)}: ${v.desc}`);
    }
  });
});

describe('the RFC 6962 reference tree', () => {
  const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
  const leaves = data.map((hex) => leafHash(Buffer.from(hex, 'hex')));
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

  it('has the published root at every size from 0 to 8', () => {
    const get = subtreesOf(leaves);
    for (const [size, root] of roots.entries()) assert.equal(treeRoot(get, size).toString('hex'), root, `size ${size}`);
    assert.equal(emptyRoot().toString('hex'), roots[0]);
  });

  it('generates the very proofs of the happy-path vectors', () => {
    const get = subtreesOf(leaves);
    for (const file of files(join(MERKLE, 'inclusion')).filter((f) => f.endsWith('happy-path.json'))) {
      const v = JSON.parse(readFileSync(file, 'utf8')) as InclusionVector;
      if (v.treeSize > leaves.length) continue;
      const proof = inclusionProof(get, v.leafIdx, v.treeSize).map((h) => h.toString('base64'));
      assert.deepEqual(proof, v.proof ?? [], relative(MERKLE, file));
    }
    for (const file of files(join(MERKLE, 'consistency')).filter((f) => f.endsWith('happy-path.json'))) {
      const v = JSON.parse(readFileSync(file, 'utf8')) as ConsistencyVector;
      if (v.size2 > leaves.length) continue;
      const proof = consistencyProof(get, v.size1, v.size2).map((h) => h.toString('base64'));
      assert.deepEqual(proof, v.proof ?? [], relative(MERKLE, file));
    }
  });
});

describe('proof properties on random trees', () => {
  // A tree of `size` leaves, the first leaves of a list of up to 300 so that other sizes can be compared.
  const tree = fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 40 })).map(([size, more]) => {
    const leaves = Array.from({ length: size + more }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    return { size, leaves, get: subtreesOf(leaves) };
  });
  const flip = (h: Hash, bit: number): Hash => {
    const copy = Buffer.from(h);
    copy[bit % 32] = (copy[bit % 32] as number) ^ (1 << (bit % 8));
    return copy;
  };
  const rejects = (check: () => void) => assert.throws(check, ProofError);

  it('inclusion proofs verify, and any altered proof, index, size or root is refused', () => {
    fc.assert(
      fc.property(tree, fc.nat(), fc.nat(), ({ size, leaves, get }, pick, bit) => {
        const index = pick % size;
        const root = treeRoot(get, size);
        const leaf = leaves[index] as Hash;
        const proof = inclusionProof(get, index, size);
        verifyInclusion(index, size, leaf, proof, root);
        rejects(() => verifyInclusion(index, size, leaf, proof, flip(root, bit)));
        rejects(() => verifyInclusion(index, size, flip(leaf, bit), proof, root));
        if (proof.length > 0) {
          const k = bit % proof.length;
          rejects(() => verifyInclusion(index, size, leaf, proof.with(k, flip(proof[k] as Hash, bit)), root));
          rejects(() => verifyInclusion(index, size, leaf, proof.slice(1), root));
        }
        rejects(() => verifyInclusion(index, size, leaf, [...proof, root], root));
        if (size > 1) rejects(() => verifyInclusion((index + 1) % size, size, leaf, proof, root));
        // Another size, with that tree's real root. (The same root with another size can pass when the
        // path has the same shape: a proof binds roots; the signed checkpoint binds a root to its size.)
        const other = 1 + index + ((pick + bit) % (leaves.length - index));
        if (other !== size) rejects(() => verifyInclusion(index, other, leaf, proof, treeRoot(get, other)));
      }),
      { numRuns: 300 },
    );
  });

  it('consistency proofs verify, and any altered proof, size or root is refused', () => {
    fc.assert(
      fc.property(tree, fc.nat(), fc.nat(), ({ size, leaves, get }, pick, bit) => {
        const size1 = 1 + (pick % size);
        const root1 = treeRoot(get, size1);
        const root2 = treeRoot(get, size);
        const proof = consistencyProof(get, size1, size);
        verifyConsistency(size1, size, proof, root1, root2);
        rejects(() => verifyConsistency(size1, size, proof, flip(root1, bit), root2));
        rejects(() => verifyConsistency(size1, size, proof, root1, flip(root2, bit)));
        if (proof.length > 0) {
          const k = bit % proof.length;
          rejects(() => verifyConsistency(size1, size, proof.with(k, flip(proof[k] as Hash, bit)), root1, root2));
          rejects(() => verifyConsistency(size1, size, proof.slice(0, -1), root1, root2));
          rejects(() => verifyConsistency(size1, size, [...proof, root2], root1, root2));
          if (size1 > 1) rejects(() => verifyConsistency(size1 - 1, size, proof, treeRoot(get, size1 - 1), root2));
          if (size < leaves.length)
            rejects(() => verifyConsistency(size1, size + 1, proof, root1, treeRoot(get, size + 1)));
        }
      }),
      { numRuns: 300 },
    );
  });
});
