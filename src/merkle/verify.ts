/**
 * Checking proofs, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 describe, with
 * the edge cases made explicit: hashes must be 32 bytes, a proof must have
 * exactly the length its sizes imply, and a consistency proof between equal
 * sizes is empty. Failures throw ProofError with the reason.
 */
import { ProofError } from '../errors.js';
import { HASH_SIZE, type Hash, nodeHash } from './hash.js';
import { isPowerOfTwo } from './tree.js';

const isOdd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

function checkHash(hash: Uint8Array, what: string): void {
  if (hash.length !== HASH_SIZE) throw new ProofError(`${what} is ${hash.length} bytes, not ${HASH_SIZE}`);
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProofError(`${what} ${n} is not a tree size`);
}

/** §2.1.3.2: throws unless `proof` shows the leaf with `leafHash` at `index` in the tree of `size` with `root`. */
export function verifyInclusion(index: number, size: number, leaf: Hash, proof: readonly Hash[], root: Hash): void {
  checkSize(size, 'tree size');
  checkSize(index, 'leaf index');
  if (index >= size) throw new ProofError(`leaf index ${index} is not below tree size ${size}`);
  checkHash(leaf, 'leaf hash');
  checkHash(root, 'root');
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const [i, p] of proof.entries()) {
    checkHash(p, `proof hash ${i}`);
    if (sn === 0) throw new ProofError(`inclusion proof is too long (${proof.length} hashes)`);
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError(`inclusion proof is too short (${proof.length} hashes)`);
  if (!r.equals(root)) throw new ProofError('inclusion proof does not lead to the root');
}

/**
 * §2.1.4.2: throws unless `proof` shows the tree of size1 with root1 is a
 * prefix of the tree of size2 with root2. Equal sizes need an empty proof and
 * equal roots. A proof from the empty tree is refused: it would prove nothing
 * (as Go's transparency-dev/merkle decides too).
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Hash[],
  root1: Hash,
  root2: Hash,
): void {
  checkSize(size1, 'size1');
  checkSize(size2, 'size2');
  if (size2 < size1) throw new ProofError(`size2 ${size2} is smaller than size1 ${size1}`);
  if (size1 === 0) throw new ProofError('a consistency proof from the empty tree proves nothing');
  if (size1 === size2) {
    // Nothing to prove but that the roots are the same bytes (the vectors accept roots of any length here).
    if (proof.length > 0) throw new ProofError('sizes are equal but the proof is not empty');
    if (!Buffer.from(root1).equals(root2)) throw new ProofError('sizes are equal but the roots differ');
    return;
  }
  checkHash(root1, 'root1');
  checkHash(root2, 'root2');
  if (proof.length === 0) throw new ProofError('consistency proof is empty');
  for (const [i, p] of proof.entries()) checkHash(p, `proof hash ${i}`);
  // Step 2: if size1 is a power of two, the old root itself starts the path.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Hash;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError(`consistency proof is too long (${proof.length} hashes)`);
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError(`consistency proof is too short (${proof.length} hashes)`);
  if (!fr.equals(root1)) throw new ProofError('consistency proof does not lead to the first root');
  if (!sr.equals(root2)) throw new ProofError('consistency proof does not lead to the second root');
}
