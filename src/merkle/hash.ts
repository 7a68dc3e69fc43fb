/**
 * RFC 9162 §2.1.1 hashing: leaves and interior nodes are hashed with distinct
 * one-byte prefixes, so a leaf can never be passed off as a node.
 */
import { createHash } from 'node:crypto';

/** A SHA-256 hash: 32 bytes. */
export type Hash = Buffer;

export const HASH_SIZE = 32;

/** MTH({}) = SHA-256(): the root of the empty tree. */
export function emptyRoot(): Hash {
  return createHash('sha256').digest();
}

/** MTH({d}) = SHA-256(0x00 || d): the hash of a leaf holding `data`. */
export function leafHash(data: Uint8Array): Hash {
  return createHash('sha256').update(LEAF).update(data).digest();
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left: Hash, right: Hash): Hash {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
