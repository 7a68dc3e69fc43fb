/**
 * RFC 9162 §2.1.1 hashing: leaves and interior nodes are hashed with distinct
 * one-byte prefixes, so a leaf can never be passed off as a node.
 */
import { hash as digest } from 'node:crypto';

/** A SHA-256 hash: 32 bytes. */
export type Hash = Buffer;

export const HASH_SIZE = 32;

const LEAF = 0;
const NODE = 1;

/** MTH({}) = SHA-256(): the root of the empty tree. */
export function emptyRoot(): Hash {
  return digest('sha256', Buffer.alloc(0), 'buffer') as Buffer;
}

/** MTH({d}) = SHA-256(0x00 || d): the hash of a leaf holding `data`. */
export function leafHash(data: Uint8Array): Hash {
  const input = Buffer.allocUnsafe(1 + data.length);
  input[0] = LEAF;
  input.set(data, 1);
  return digest('sha256', input, 'buffer') as Buffer;
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left: Hash, right: Hash): Hash {
  const input = Buffer.allocUnsafe(1 + 2 * HASH_SIZE);
  input[0] = NODE;
  left.copy(input, 1);
  right.copy(input, 1 + HASH_SIZE);
  return digest('sha256', input, 'buffer') as Buffer;
}

const pairInput = Buffer.alloc(1 + 2 * HASH_SIZE, NODE);

/**
 * Hashes a row of a tree level into the row above: for each 64-byte pair
 * (left || right) in `pairs`, SHA-256(0x01 || pair) into `out`, 32 bytes
 * each. The digest comes back as a latin1 string (one character per byte)
 * and is written straight into `out`: node:crypto allocates a Buffer for a
 * 'buffer' digest, which costs three times the hash of 65 bytes itself.
 */
export function hashPairs(pairs: Buffer, out: Buffer): void {
  for (let at = 0, to = 0; at < pairs.length; at += 2 * HASH_SIZE, to += HASH_SIZE) {
    pairs.copy(pairInput, 1, at, at + 2 * HASH_SIZE);
    out.write(digest('sha256', pairInput, 'binary'), to, HASH_SIZE, 'binary');
  }
}
