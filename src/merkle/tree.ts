/**
 * Merkle tree hashes and proofs, RFC 9162 §2.1, computed from the hashes of
 * complete subtrees. A complete subtree is named by its level (it holds
 * 2^level leaves) and its index at that level; level 0 are the leaf hashes.
 * Any store that can give those hashes (a list in memory, tiles on disk) can
 * produce roots and proofs through these functions.
 *
 * Sizes and indexes are JavaScript numbers (exact to 2^53); no 32-bit bit
 * operations are used on them.
 */
import { OutOfRangeError } from '../errors.js';
import { emptyRoot, type Hash, nodeHash } from './hash.js';

/** Gives the hash of the complete subtree with 2^level leaves starting at leaf index·2^level. */
export type SubtreeHash = (level: number, index: number) => Hash;

/** The largest power of two strictly below n (n ≥ 2): where RFC 9162 splits a tree of n leaves. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2 of a power of two. */
export function levelOf(powerOfTwo: number): number {
  let level = 0;
  for (let n = powerOfTwo; n > 1; n /= 2) level++;
  return level;
}

export function isPowerOfTwo(n: number): boolean {
  return n >= 1 && splitPoint(n * 2) === n;
}

/**
 * MTH(D[start:end]) for a range that starts on a multiple of a power of two
 * at least as large as the range, as every range in §2.1.1's recursion does:
 * a complete subtree is read whole, anything else is split at splitPoint.
 */
export function rangeHash(get: SubtreeHash, start: number, end: number): Hash {
  const n = end - start;
  if (n === 0) return emptyRoot();
  if (isPowerOfTwo(n)) return get(levelOf(n), start / n);
  const k = splitPoint(n);
  return nodeHash(rangeHash(get, start, start + k), rangeHash(get, start + k, end));
}

/** MTH(D[n]), §2.1.1: the root of the tree of the first `size` leaves. */
export function treeRoot(get: SubtreeHash, size: number): Hash {
  return rangeHash(get, 0, size);
}

/** PATH(index, D[size]), §2.1.3.1: the inclusion proof of leaf `index` in the tree of `size` leaves. */
export function inclusionProof(get: SubtreeHash, index: number, size: number): Hash[] {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    throw new OutOfRangeError(`no leaf ${index} in a tree of ${size}`);
  }
  const proof: Hash[] = [];
  const path = (start: number, end: number): void => {
    if (end - start === 1) return;
    const k = splitPoint(end - start);
    if (index < start + k) {
      path(start, start + k);
      proof.push(rangeHash(get, start + k, end));
    } else {
      path(start + k, end);
      proof.push(rangeHash(get, start, start + k));
    }
  };
  path(0, size);
  return proof;
}

/** PROOF(size1, D[size2]), §2.1.4.1: the consistency proof from the tree of size1 leaves to that of size2. */
export function consistencyProof(get: SubtreeHash, size1: number, size2: number): Hash[] {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size1 > size2) {
    throw new OutOfRangeError(`no consistency proof from size ${size1} to size ${size2}`);
  }
  const proof: Hash[] = [];
  if (size1 === 0 || size1 === size2) return proof;
  // SUBPROOF(m, D[start:end], b), with m counted from start.
  const subproof = (m: number, start: number, end: number, complete: boolean): void => {
    if (m === end - start) {
      if (!complete) proof.push(rangeHash(get, start, end));
      return;
    }
    const k = splitPoint(end - start);
    if (m <= k) {
      subproof(m, start, start + k, complete);
      proof.push(rangeHash(get, start + k, end));
    } else {
      subproof(m - k, start + k, end, false);
      proof.push(rangeHash(get, start, start + k));
    }
  };
  subproof(size1, 0, size2, true);
  return proof;
}

/** A SubtreeHash over leaf hashes held in memory (memoised): for tests, small trees and rebuilding. */
export function subtreesOf(leaves: readonly Hash[]): SubtreeHash {
  const memo = new Map<string, Hash>();
  const get: SubtreeHash = (level, index) => {
    if (level === 0) {
      const leaf = leaves[index];
      if (leaf === undefined) throw new OutOfRangeError(`no leaf ${index}`);
      return leaf;
    }
    const key = `${level}/${index}`;
    let hash = memo.get(key);
    if (hash === undefined) {
      hash = nodeHash(get(level - 1, index * 2), get(level - 1, index * 2 + 1));
      memo.set(key, hash);
    }
    return hash;
  };
  return get;
}

/** The complete subtrees a computation reads, in order of first use: run it once with this to plan reads. */
export function recordSubtrees(): { get: SubtreeHash; wanted: [number, number][] } {
  const wanted: [number, number][] = [];
  const seen = new Set<string>();
  const placeholder = Buffer.alloc(32);
  return {
    wanted,
    get: (level, index) => {
      const key = `${level}/${index}`;
      if (!seen.has(key)) {
        seen.add(key);
        wanted.push([level, index]);
      }
      return placeholder;
    },
  };
}
