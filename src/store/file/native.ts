/**
 * The addon (native/): what Node cannot do at all. flock(2), whose locks
 * belong to an open file description and so exclude other processes, other
 * threads and other descriptors alike, and which the kernel drops when the
 * holder dies; and a commit's fdatasync followed, on the thread that synced,
 * by the unlock. Only the file store's locks load it, on first use, so that
 * reading and verifying never need it.
 *
 * node-gyp-build finds a build of its own (build/Release) or the prebuilt
 * one the package ships for the platform (prebuilds/<platform>-<arch>/).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { EvidentError } from '../../errors.js';

interface Addon {
  /** flock(LOCK_EX | LOCK_NB): true when taken, false when another holds it. */
  tryLock(fd: number): boolean;
  /** flock(LOCK_SH | LOCK_NB): true when taken, false when another holds it exclusively. */
  tryLockShared(fd: number): boolean;
  /** flock(LOCK_EX), waiting on a thread of its own (never libuv's pool). */
  lockWait(fd: number): Promise<void>;
  /** flock(LOCK_UN). */
  unlock(fd: number): void;
  /** fdatasync(fd) then, only if it succeeded, flock(lockFd, LOCK_UN), on one pool thread. */
  syncUnlock(fd: number, lockFd: number): Promise<void>;
}

const PACKAGE_ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
let addon: Addon | null = null;

/** The addon, loaded the first time it is needed. */
export function native(): Addon {
  if (addon !== null) return addon;
  const require = createRequire(import.meta.url);
  try {
    const load = require('node-gyp-build') as (root: string) => Addon;
    addon = load(PACKAGE_ROOT);
  } catch (error) {
    throw new EvidentError(
      'EVIDENT_NATIVE',
      `the file store needs evident's flock addon, which did not load for ${process.platform}-${process.arch} ` +
        `(${(error as Error).message.split('\n')[0]}); reinstall evident with a C compiler present to build it`,
      { cause: error },
    );
  }
  return addon;
}
