/**
 * The addon, which does only what Node cannot: flock(2), whose lock belongs
 * to an open file description (so it excludes other descriptors in the same
 * process too), waited for on a thread of its own; and syncUnlock, which
 * releases the lock without the event loop's help, and only once the sync
 * succeeded.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { native } from '../../../src/store/file/native.js';
import { flockers, tempDir, until } from '../../helpers.js';

const addon = native();

describe('flock', () => {
  it('excludes another descriptor of the same file, in the same process; a waiter gets it once released', async () => {
    const dir = tempDir();
    const a = openSync(join(dir, 'lock'), 'a');
    const b = openSync(join(dir, 'lock'), 'a');
    try {
      assert.equal(addon.tryLock(a), true);
      assert.equal(addon.tryLock(b), false);
      let granted = false;
      const waiting = addon.lockWait(b).then(() => {
        granted = true;
      });
      await until(() => flockers(join(dir, 'lock'), true).includes(process.pid), 'the waiter blocks in flock');
      assert.equal(granted, false, 'the waiter waits while the lock is held');
      addon.unlock(a);
      await waiting;
      assert.equal(addon.tryLock(a), false, 'now the waiter holds it');
      addon.unlock(b);
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });

  it('shares a shared lock among readers, and keeps it from a writer and a writer from it', () => {
    const dir = tempDir();
    closeSync(openSync(join(dir, 'lock'), 'a'));
    const [reader1, reader2, writer] = [0, 1, 2].map(() => openSync(join(dir, 'lock'), 'r'));
    try {
      assert.equal(addon.tryLockShared(reader1 as number), true);
      assert.equal(addon.tryLockShared(reader2 as number), true, 'readers share it');
      assert.equal(addon.tryLock(writer as number), false, 'a writer waits for the readers');
      addon.unlock(reader1 as number);
      addon.unlock(reader2 as number);
      assert.equal(addon.tryLock(writer as number), true);
      assert.equal(addon.tryLockShared(reader1 as number), false, 'a reader sees the writer');
      addon.unlock(writer as number);
    } finally {
      for (const fd of [reader1, reader2, writer]) closeSync(fd as number);
    }
  });

  it('refuses what is not a descriptor, and reports a bad one with its errno code', async () => {
    assert.throws(() => (addon.tryLock as (...a: unknown[]) => unknown)('x'), TypeError);
    const closed = openSync(join(tempDir(), 'lock'), 'a');
    closeSync(closed);
    assert.throws(() => addon.tryLock(closed), { code: 'EBADF', syscall: 'flock' });
    await assert.rejects(addon.lockWait(closed), { code: 'EBADF', syscall: 'flock' });
  });
});

describe('syncUnlock', () => {
  it('releases the lock once the data is synced, while the event loop is still busy', async () => {
    const dir = tempDir();
    const data = openSync(join(dir, 'data'), 'a');
    const lock = openSync(join(dir, 'lock'), 'a');
    const other = openSync(join(dir, 'lock'), 'a'); // another open file description: another "writer"
    try {
      assert.equal(addon.tryLock(lock), true);
      writeSync(data, 'some bytes\n');
      const synced = addon.syncUnlock(data, lock);
      // Block this thread: a release that needed the event loop could not happen before the deadline.
      const deadline = Date.now() + 10_000;
      let taken = false;
      while (!taken && Date.now() < deadline) taken = addon.tryLock(other);
      assert.equal(taken, true, 'another descriptor took the lock while the event loop was blocked');
      await synced;
      addon.unlock(other);
    } finally {
      for (const fd of [data, lock, other]) closeSync(fd);
    }
  });

  it('rejects with the errno code when the sync fails, and keeps the lock', async () => {
    const dir = tempDir();
    const lock = openSync(join(dir, 'lock'), 'a');
    const other = openSync(join(dir, 'lock'), 'a');
    const closed = openSync(join(dir, 'data'), 'a');
    closeSync(closed); // a descriptor number that is no longer open: the sync fails with EBADF
    try {
      assert.equal(addon.tryLock(lock), true);
      await assert.rejects(addon.syncUnlock(closed, lock), { code: 'EBADF', syscall: 'fdatasync' });
      assert.equal(addon.tryLock(other), false, 'the lock is still held after a failed sync');
      addon.unlock(lock);
      assert.equal(addon.tryLock(other), true);
    } finally {
      for (const fd of [lock, other]) closeSync(fd);
    }
  });

  it('refuses arguments that are not two descriptors', () => {
    assert.throws(() => (addon.syncUnlock as (...a: unknown[]) => unknown)(1), TypeError);
    assert.throws(() => (addon.syncUnlock as (...a: unknown[]) => unknown)('1', 2), TypeError);
  });
});
