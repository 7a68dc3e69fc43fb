/**
 * The native addon (native/*.c), built by `npm install` (node-gyp) into
 * <package>/build/Release: flock(2), which Node lacks, a commit's
 * sync-then-unlock, a whole commit off the event loop, a row-at-a-time
 * Merkle node hasher that calls the running Node's own OpenSSL SHA-256, a
 * reader of leaf hashes from log lines, a batch tile writer and an Ed25519
 * signer that sets its signing context up once.
 */
import { createRequire } from 'node:module';
import { hashPairs, type PairHasher } from './merkle/hash.js';

/** A whole commit for native/commit.c: where to append, the head as last seen, and the batch's templates. */
export interface CommitRequest {
  lockFd: number;
  lockPath: string;
  logFd: number;
  logPath: string;
  /** fdatasync before releasing the lock. */
  sync: boolean;
  /** The event loop has CPU work right after this commit: yield the CPU to the syncing thread first (native/sync.c). */
  yieldCpu: boolean;
  /** The head this process last saw, and where its line ends: used as it is if the log has not grown since. */
  known: { end: number; size: number; hash: Buffer; ts: string } | null;
  logId: string;
  /** The entries' templates (entry.ts, writeEntryTemplate). */
  parts: Buffer;
  count: number;
  /** At most how many bytes the sealed lines take. */
  maxBytes: number;
}

/** How a native commit ended. `declined`: the lock is free again and nothing changed. `failed`: the lock is still held. */
export type CommitResult =
  /** `leaves`: the hash the first entry follows, then each entry's, 32 bytes each. */
  | { status: 'committed'; start: number; end: number; firstSeq: number; ts: string; leaves: Buffer }
  | { status: 'declined'; declined: string }
  | { status: 'failed'; start: number; error: Error };

interface RawCommitResult {
  /** 0 committed, 1 declined, 2 failed, 4 busy (commitBatchNow only); 3, a failed lock, rejects. */
  status: 0 | 1 | 2 | 4;
  start: number;
  end: number;
  firstSeq: number;
  ts: string;
  leaves: Buffer;
  declined: string;
  error: Error;
}

/** A full tile for writeTiles: its file, its hashes, its partials' directory, and its inner nodes' place. */
export type TileFile = [
  path: string,
  hashes: Buffer,
  partials: string | null,
  innerFd: number,
  innerOffset: number,
  inner: Buffer | null,
];

interface Addon {
  tryLock(fd: number): boolean;
  lockWait(fd: number): Promise<void>;
  unlock(fd: number): void;
  syncUnlock(fd: number, lockFd: number, yieldCpu?: boolean): Promise<void>;
  leafHashes(lines: Buffer, count: number): Buffer | null;
  /** Absent when the process exports no SHA-256 functions (then the JavaScript PairHasher is used). */
  hashPairs?: PairHasher;
  /** Absent, as hashPairs, without SHA-256 functions: then commits seal in JavaScript. */
  commitBatch?: (
    lockFd: number,
    lockPath: string,
    logFd: number,
    logPath: string,
    sync: boolean,
    known: [number, number, Buffer, string] | null,
    logId: string,
    parts: Buffer,
    count: number,
    maxBytes: number,
  ) => Promise<RawCommitResult>;
  writeTiles(tiles: TileFile[]): Promise<(Error | null)[]>;
  /** Absent when the process exports no OpenSSL EVP functions (then node:crypto signs). */
  ed25519Key?: (seed: Buffer) => object;
  ed25519Sign?: (key: object, message: Buffer) => Buffer;
  /** Absent, as ed25519Key, when the addon cannot sign. */
  writeCheckpoint?: (
    fd: number,
    known: Buffer,
    head: Buffer,
    signatureLine: Buffer,
    keyHash: number,
    key: object,
    size: number,
    root: Buffer,
  ) => Buffer | null;
  /** commitBatch's commit here and now if the lock is free, up to the write (native/commit.c). */
  commitBatchNow?: (...args: Parameters<NonNullable<Addon['commitBatch']>>) => RawCommitResult;
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

const COMMITTED = 0;
const DECLINED = 1;
const BUSY = 4;
const rawCommit = addon.commitBatch;
const rawCommitNow = addon.commitBatchNow;

function commitResult(raw: RawCommitResult): CommitResult {
  if (raw.status === COMMITTED) {
    return {
      status: 'committed',
      start: raw.start,
      end: raw.end,
      firstSeq: raw.firstSeq,
      ts: raw.ts,
      leaves: raw.leaves,
    };
  }
  if (raw.status === DECLINED) return { status: 'declined', declined: raw.declined };
  return { status: 'failed', start: raw.start, error: raw.error };
}

/**
 * A whole commit by the addon (native/commit.c): take the append lock, read
 * the head, seal, append, sync, release. If the lock is free it is done at
 * once, on this thread, up to the write, and the sync and release go to the
 * pool (sync.c); if not, the whole commit waits for the lock on a thread of
 * its own (a job), without this event loop. Undefined when the addon cannot
 * hash.
 */
export const commitBatch: ((request: CommitRequest) => Promise<CommitResult>) | undefined =
  rawCommit === undefined || rawCommitNow === undefined
    ? undefined
    : async (r) => {
        const known: [number, number, Buffer, string] | null =
          r.known === null ? null : [r.known.end, r.known.size, r.known.hash, r.known.ts];
        const args = [
          r.lockFd,
          r.lockPath,
          r.logFd,
          r.logPath,
          r.sync,
          known,
          r.logId,
          r.parts,
          r.count,
          r.maxBytes,
        ] as const;
        const now = rawCommitNow(...args);
        if (now.status === BUSY) return commitResult(await rawCommit(...args));
        if (now.status === COMMITTED) {
          // Written, not yet synced; the lock is held until it is.
          try {
            if (r.sync) await syncUnlock(r.logFd, r.lockFd, r.yieldCpu);
            else flock.unlock(r.lockFd);
          } catch (error) {
            return { status: 'failed', start: now.start, error: error as Error };
          }
        }
        return commitResult(now);
      };

/**
 * Writes full tiles in one call on a pool thread (native/tiles.c): each
 * tile's file (kept if it exists), its inner nodes, and the removal of its
 * partial versions. One null or Error per tile.
 */
export const writeTiles: Addon['writeTiles'] = addon.writeTiles;

/**
 * An Ed25519 key (RFC 8032) for the 32-byte private key `seed`, for
 * ed25519Sign and writeCheckpoint, whose signing context is set up once
 * rather than per signature (native/sign.c); undefined when the addon
 * cannot sign. Its signatures are node:crypto's, byte for byte.
 */
export const ed25519Key: Addon['ed25519Key'] = addon.ed25519Key;
/** The Ed25519 signature of `message` with a key from ed25519Key, 64 bytes. */
export const ed25519Sign: Addon['ed25519Sign'] = addon.ed25519Sign;

/** A checkpoint for writeCheckpoint: the note its file must still hold, and what the new one says and is signed with. */
export interface CheckpointWrite {
  fd: number;
  /** The note the file must hold, whole, for the new one to be written. */
  known: Buffer;
  /** `${origin}\n` */
  head: Buffer;
  /** `\n— ${key name} ` */
  signatureLine: Buffer;
  keyHash: number;
  /** From ed25519Key. */
  key: object;
  size: number;
  root: Buffer;
}

/**
 * If the checkpoint file holds exactly `known`, writes the signed note of
 * the tree of `size` leaves with `root` over it (checkpointNoteMaker's
 * bytes) and returns it; null, writing nothing, if the file holds anything
 * else (native/checkpoint.c). Undefined when the addon cannot sign.
 */
const rawWriteCheckpoint = addon.writeCheckpoint;
export const writeCheckpoint: ((w: CheckpointWrite) => Buffer | null) | undefined =
  rawWriteCheckpoint &&
  ((w) => rawWriteCheckpoint(w.fd, w.known, w.head, w.signatureLine, w.keyHash, w.key, w.size, w.root));

/** Whether tree rows are hashed natively (one call per row) rather than one crypto call per node. */
export const nativeHashing = addon.hashPairs !== undefined;

/** The fastest PairHasher available: the addon's, else merkle/hash.ts's. */
export const pairHasher: PairHasher = addon.hashPairs ?? hashPairs;
