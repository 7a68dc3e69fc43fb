/**
 * A compact range: the tree of the first `size` leaves held as the hashes of
 * its complete subtrees down the right side — the ones RFC 9162 §2.1.1's
 * recursion reaches by splitting the size again and again, one per binary
 * digit 1 of the size, largest (leftmost) first. That is O(log n) hashes, and
 * it is all that appending leaves and computing the root need. Pure code.
 *
 * Levels are counted from the leaves (a level-l subtree holds 2^l leaves);
 * sizes are JavaScript numbers, exact to 2^53, so no 32-bit bit operations.
 */
import { emptyRoot, HASH_SIZE, type Hash, hashPairs, type PairHasher } from './hash.js';
import type { SubtreeHash } from './tree.js';

/** The levels of the complete subtrees of a tree of `size` leaves, largest first (its binary digits 1). */
export function rangeLevels(size: number): number[] {
  const levels: number[] = [];
  for (let level = 0, n = size; n > 0; level++, n = Math.floor(n / 2)) if (n % 2 === 1) levels.unshift(level);
  return levels;
}

export class CompactRange {
  readonly size: number;
  /** The complete subtrees' hashes, largest first: hashes[k] is at level rangeLevels(size)[k]. */
  readonly hashes: readonly Hash[];
  readonly #hashPairs: PairHasher;
  #root: Hash | null = null;

  constructor(size: number, hashes: readonly Hash[], pairHasher: PairHasher = hashPairs) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`a tree cannot have ${size} leaves`);
    const want = rangeLevels(size).length;
    if (hashes.length !== want || hashes.some((h) => h.length !== HASH_SIZE)) {
      throw new RangeError(`a tree of ${size} leaves has ${want} complete subtrees, not ${hashes.length}`);
    }
    this.size = size;
    this.hashes = hashes;
    this.#hashPairs = pairHasher;
  }

  /** The compact range of the tree of `size` leaves, from any source of complete-subtree hashes. */
  static of(get: SubtreeHash, size: number, pairHasher: PairHasher = hashPairs): CompactRange {
    const hashes: Hash[] = [];
    let start = 0;
    for (const level of rangeLevels(size)) {
      const width = 2 ** level;
      hashes.push(get(level, start / width));
      start += width;
    }
    return new CompactRange(size, hashes, pairHasher);
  }

  /**
   * The range after appending `leaves`. Level by level: the new nodes of a
   * level are those from index ⌊size/2^l⌋ on; when that index is odd, the
   * range's own subtree at the level is the first one's left sibling. A row
   * is hashed into its parents in one call to the pair hasher, and an odd
   * node left over is the new range's subtree at that level. Levels above
   * the last new node keep their subtrees. About one node hash per leaf.
   */
  append(leaves: readonly Hash[]): CompactRange {
    if (leaves.length === 0) return this;
    const old = new Map<number, Hash>();
    for (const [k, level] of rangeLevels(this.size).entries()) old.set(level, this.hashes[k] as Hash);
    const kept = new Map<number, Hash>();
    // Each row has one hash of room before its nodes, for the sibling.
    let nodes = Buffer.allocUnsafe((leaves.length + 1) * HASH_SIZE);
    for (const [k, leaf] of leaves.entries()) leaf.copy(nodes, (k + 1) * HASH_SIZE);
    let count = leaves.length;
    let first = this.size; // the index of the level's first new node
    let level = 0;
    for (;;) {
      let row = nodes.subarray(HASH_SIZE, (count + 1) * HASH_SIZE);
      if (first % 2 === 1) {
        (old.get(level) as Hash).copy(nodes, 0);
        row = nodes.subarray(0, (count + 1) * HASH_SIZE);
      }
      const n = row.length / HASH_SIZE;
      if (n % 2 === 1) kept.set(level, row.subarray((n - 1) * HASH_SIZE));
      const pairs = Math.floor(n / 2);
      if (pairs === 0) break; // one new node, and nothing new above it
      nodes = Buffer.allocUnsafe((pairs + 1) * HASH_SIZE);
      this.#hashPairs(row.subarray(0, pairs * 2 * HASH_SIZE), nodes.subarray(HASH_SIZE));
      count = pairs;
      first = Math.floor(first / 2);
      level++;
    }
    for (const [l, hash] of old) if (l > level) kept.set(l, hash);
    const size = this.size + leaves.length;
    return new CompactRange(
      size,
      rangeLevels(size).map((l) => kept.get(l) as Hash),
      this.#hashPairs,
    );
  }

  /** MTH(D[size]), §2.1.1: the complete subtrees hashed together from the right. */
  root(): Hash {
    if (this.#root !== null) return this.#root;
    if (this.size === 0) return emptyRoot();
    const pair = Buffer.allocUnsafe(2 * HASH_SIZE);
    let root = this.hashes[this.hashes.length - 1] as Hash;
    for (let k = this.hashes.length - 2; k >= 0; k--) {
      (this.hashes[k] as Hash).copy(pair, 0);
      root.copy(pair, HASH_SIZE);
      root = Buffer.allocUnsafe(HASH_SIZE);
      this.#hashPairs(pair, root);
    }
    this.#root = root;
    return root;
  }
}
