/**
 * The native addon (native/*.c), built by `npm install` (node-gyp) into
 * <package>/build/Release: flock(2), which Node lacks, a commit's
 * sync-then-unlock, a row-at-a-time Merkle node hasher that calls the
 * running Node's own OpenSSL SHA-256, and a reader of leaf hashes from log
 * lines.
 */
import { createRequire } from 'node:module';
import { hashPairs, type PairHasher } from './merkle/hash.js';

interface Addon {
  tryLock(fd: number): boolean;
  lockWait(fd: number): Promise<void>;
  unlock(fd: number): void;
  syncUnlock(fd: number, lockFd: number): Promise<void>;
  leafHashes(lines: Buffer, count: number): Buffer | null;
  /** Absent when the process exports no SHA-256 functions (then the JavaScript PairHasher is used). */
  hashPairs?: PairHasher;
}

const addon = createRequire(import.meta.url)('../../build/Release/evident_native.node') as Addon;

export const flock: Pick<Addon, 'tryLock' | 'lockWait' | 'unlock'> = addon;

/**
 * fdatasync(fd), then — only if it succeeded — flock(lockFd, LOCK_UN), both
 * on one thread-pool thread (native/sync.c says why).
 */
export const syncUnlock: Addon['syncUnlock'] = addon.syncUnlock;

/**
 * For `count` complete log lines: the first one's `prev` then each one's
 * `hash`, as 32·(count + 1) bytes; null if the lines are not `count` lines
 * chained one to the next (native/scan.c). The integrator reads other
 * writers' entries with it.
 */
export const leafHashes: Addon['leafHashes'] = addon.leafHashes;

/** Whether tree rows are hashed natively (one call per row) rather than one crypto call per node. */
export const nativeHashing = addon.hashPairs !== undefined;

/** The fastest PairHasher available: the addon's, else merkle/hash.ts's. */
export const pairHasher: PairHasher = addon.hashPairs ?? hashPairs;
