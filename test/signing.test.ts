/** Signing logs through the library: when checkpoints are signed, what they say, and what a log without a tree refuses. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../src/log.js';
import { parseCheckpoint } from '../src/note/checkpoint.js';
import { generateNoteKey, parseVerifierKey } from '../src/note/keys.js';
import { openNote } from '../src/note/note.js';
import { trustCheckpoint } from '../src/note/trust.js';
import { tempDir } from './helpers.js';

let keys = 0;
function keyFile(dir: string, name: string): { path: string; verifier: string } {
  const { signer, verifier } = generateNoteKey(name);
  const path = join(dir, `key-${keys++}.key`);
  writeFileSync(path, `${signer}\n`, { mode: 0o600 });
  return { path, verifier };
}

const sizeOf = (dir: string) => {
  const note = readFileSync(join(dir, 'checkpoint'), 'utf8');
  return parseCheckpoint(note.slice(0, note.indexOf('\n\n') + 1)).size;
};

/** Waits until the checkpoint on disk covers `size` entries (signing follows a commit; it does not hold it up). */
async function signedUpTo(dir: string, size: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (sizeOf(dir) < size) {
    if (Date.now() > deadline) assert.fail(`no checkpoint of ${size} entries was signed (latest: ${sizeOf(dir)})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('signing logs', () => {
  it('sign after every commit by default, with the root of the entries', async () => {
    const root = tempDir();
    const key = keyFile(root, 'lib.example/a');
    const dir = join(root, 'log');
    await Log.init({ dir, signingKey: key.path });
    assert.equal(sizeOf(dir), 0);
    const log = new Log({ dir });
    await log.append({ actor: 'a', action: 'x.y' });
    await signedUpTo(dir, 1); // nothing asked for it: the commit alone leads to a signature
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    const note = (await log.checkpoint()) as string;
    const trusted = trustCheckpoint(note, { log: parseVerifierKey(key.verifier) });
    assert.equal(trusted.size, 3);
    assert.ok(trusted.root.equals((await log.treeHead()).root));
    const result = await log.verify({ checkpoint: trusted });
    assert.equal(result.ok, true);
    assert.equal(result.root, trusted.root.toString('base64'));
    await log.close();
  });

  it('with an interval, sign at most that often, and always on close', async () => {
    const root = tempDir();
    const key = keyFile(root, 'lib.example/b');
    const dir = join(root, 'log');
    await Log.init({ dir, signingKey: key.path });
    const log = new Log({ dir, checkpointInterval: 3_600_000 });
    await log.append({ actor: 'a', action: 'x.y' }); // the first commit signs (nothing signed yet in this process)
    await signedUpTo(dir, 1);
    await log.append({ actor: 'a', action: 'x.y' });
    await log.append({ actor: 'a', action: 'x.y' });
    await log.checkpoint(); // integrates both, and would sign if a checkpoint were due
    assert.equal(sizeOf(dir), 1, 'not again within the interval');
    await log.close();
    assert.equal(sizeOf(dir), 3, 'on close');
    assert.equal(
      openNote(readFileSync(join(dir, 'checkpoint'), 'utf8'), [parseVerifierKey(key.verifier)]).sigs.length,
      1,
    );
  });

  it('with an interval, sign what the last commits left unsigned once it has passed, with no append or close to prompt it', async () => {
    const root = tempDir();
    const key = keyFile(root, 'lib.example/interval');
    const dir = join(root, 'log');
    await Log.init({ dir, signingKey: key.path });
    const log = new Log({ dir, checkpointInterval: 300 });
    await log.append({ actor: 'a', action: 'x.y' });
    await signedUpTo(dir, 1);
    const started = Date.now();
    await log.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    await signedUpTo(dir, 3); // then nothing: a timer signs them
    assert.ok(Date.now() - started >= 250, 'not before the interval has passed');
    await log.close();
  });

  it('a writer needs the log key, and only that key', async () => {
    const root = tempDir();
    const key = keyFile(root, 'lib.example/c');
    const other = keyFile(root, 'lib.example/c');
    const dir = join(root, 'log');
    await Log.init({ dir, signingKey: key.path });
    await assert.rejects(new Log({ dir, key: other.path }).append({ actor: 'a', action: 'x.y' }), /not this log's key/);
    await assert.rejects(
      new Log({ dir, key: join(root, 'missing.key') }).append({ actor: 'a', action: 'x.y' }),
      (e: { code?: string }) => e.code === 'EVIDENT_NO_KEY',
    );
    const log = new Log({ dir, key: key.path });
    await log.append({ actor: 'a', action: 'x.y' });
    await log.close();
  });

  it('a log kept without its tree appends, but has no proofs and cannot sign', async () => {
    const root = tempDir();
    const bare = new Log({ dir: join(root, 'bare'), create: true, merkleTree: false });
    await bare.append({ actor: 'a', action: 'x.y' });
    await assert.rejects(bare.treeHead(), /without its Merkle tree/);
    await bare.close();
    const key = keyFile(root, 'lib.example/d');
    await Log.init({ dir: join(root, 'signed'), signingKey: key.path });
    await assert.rejects(
      new Log({ dir: join(root, 'signed'), merkleTree: false }).append({ actor: 'a', action: 'x.y' }),
      /must keep its Merkle tree/,
    );
  });
});
