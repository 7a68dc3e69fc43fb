/**
 * A signing log knows it signs from its own chain: its first entry declares
 * its origin and verifier key. Files beside the log changed carelessly or
 * with intent — config.json or the checkpoint removed, the entries cut short
 * or rewritten with fresh hashes, the tiles damaged — never make it append
 * onto a history its checkpoint does not cover, sign one inconsistent with
 * what it signed, or quietly stop signing. It refuses until an operator
 * re-anchors it, and the re-anchor is an entry.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { canonicalize } from '../../src/encoding/canonical.js';
import { type Entry, hashedText, leafHashOfText } from '../../src/entry.js';
import { checkpointKey } from '../../src/lifecycle/signing.js';
import { Log } from '../../src/log.js';
import { emptyRoot } from '../../src/merkle/hash.js';
import { formatCheckpoint } from '../../src/note/checkpoint.js';
import { ALG_COSIGNATURE_V1, generateNoteKey, parseSignerKey } from '../../src/note/keys.js';
import { ed25519Signer, signNote } from '../../src/note/note.js';
import { trustCheckpoint } from '../../src/note/trust.js';
import { Witness } from '../../src/witness.js';
import { readLines, signingLog, storedCheckpoint, tempDir, writeLines } from '../helpers.js';

const entriesOf = (dir: string) => readLines(join(dir, 'log.jsonl')).map((line) => JSON.parse(line) as Entry);

/** The log's entries from `from` on, changed by `edit` and sealed again: every hash and prev recomputed. */
function rewrite(dir: string, from: number, edit: (entry: Entry) => void): void {
  const entries = entriesOf(dir);
  for (let seq = from; seq < entries.length; seq++) {
    const entry = entries[seq] as Entry;
    if (seq === from) edit(entry);
    entry.prev = seq === 0 ? '0'.repeat(64) : (entries[seq - 1] as Entry).hash;
    entry.hash = leafHashOfText(hashedText(entry));
  }
  writeLines(
    join(dir, 'log.jsonl'),
    entries.map((entry) => canonicalize(entry)),
  );
}

const fileSize = (dir: string) => statSync(join(dir, 'log.jsonl')).size;

describe("a signing log's identity", () => {
  it('is declared by its first entry: origin and verifier key; config.json only says where the key file is', async () => {
    const log = signingLog('identity.example/declared');
    await log.init();
    const [first] = entriesOf(log.dir);
    assert.equal(first?.seq, 0);
    assert.equal(first?.action, 'evident.log.init');
    assert.deepEqual(first?.data, { origin: 'identity.example/declared', verifierKey: log.verifier });
    assert.equal(storedCheckpoint(log.dir, log.key).size, 1, 'init signs a checkpoint covering it');
    const keyFile = () =>
      (JSON.parse(readFileSync(join(log.dir, 'config.json'), 'utf8')) as { keyFile: string }).keyFile;
    assert.equal(keyFile(), log.keyFile, 'a key file outside the log directory: by its absolute path');
    const inside = signingLog('identity.example/inside');
    mkdirSync(inside.dir);
    renameSync(inside.keyFile, join(inside.dir, 'log.key'));
    await Log.init({ store: inside.dir, signingKey: join(inside.dir, 'log.key') });
    const moved = `${inside.dir}-moved`;
    renameSync(inside.dir, moved);
    assert.equal(JSON.parse(readFileSync(join(moved, 'config.json'), 'utf8')).keyFile, 'log.key', 'inside: relative');
    const writer = new Log({ store: moved }); // finds its key where the directory now is
    await writer.append({ actor: 'a', action: 'x.y' });
    await writer.close();
  });

  it('survives config.json being removed: a writer then needs the key, and signs with it as before', async () => {
    const log = signingLog('identity.example/config');
    await log.init();
    rmSync(join(log.dir, 'config.json'));
    const before = fileSize(log.dir);
    await assert.rejects(new Log({ store: log.dir }).append({ actor: 'a', action: 'x.y' }), {
      code: 'EVIDENT_NO_KEY',
      message: /signs checkpoints as identity\.example\/config/,
    });
    assert.equal(fileSize(log.dir), before, 'nothing appended by a writer without the key');
    const writer = new Log({ store: log.dir, key: log.keyFile });
    await writer.append({ actor: 'a', action: 'x.y' });
    await writer.close();
    assert.equal(storedCheckpoint(log.dir, log.key).size, 2);
  });

  it('accepts only its own key, and only a key that can sign checkpoints', async () => {
    const log = signingLog('identity.example/key');
    await log.init();
    const other = signingLog('identity.example/key');
    await assert.rejects(new Log({ store: log.dir, key: other.keyFile }).append({ actor: 'a', action: 'x.y' }), {
      code: 'EVIDENT_BAD_KEY',
      message: /not this log's key/,
    });
    await assert.rejects(new Log({ store: log.dir, key: join(tempDir(), 'missing.key') }).ready(), {
      code: 'EVIDENT_NO_KEY',
    });
    const witness = join(tempDir(), 'witness.key');
    writeFileSync(witness, generateNoteKey('w.example', ALG_COSIGNATURE_V1).signer, { mode: 0o600 });
    const dir = join(tempDir(), 'never');
    await assert.rejects(Log.init({ store: dir, signingKey: witness }), {
      code: 'EVIDENT_BAD_KEY',
      message: /witness \(cosignature\) key/,
    });
    assert.equal(existsSync(dir), false, 'nothing created');
  });

  it('is for life: a log signs from its first entry, and init with another key is refused', async () => {
    const log = signingLog('identity.example/life');
    await log.init();
    await log.init(); // again, with the same key: nothing to do
    assert.equal(entriesOf(log.dir).length, 1);
    const other = signingLog('identity.example/other');
    await assert.rejects(Log.init({ store: log.dir, signingKey: other.keyFile }), /already signs as/);
    const plain = join(tempDir(), 'plain');
    const unsigned = new Log({ store: plain, create: true });
    await unsigned.append({ actor: 'a', action: 'x.y' });
    await unsigned.close();
    await assert.rejects(Log.init({ store: plain, signingKey: log.keyFile }), /signs from its first entry/);
    assert.equal(entriesOf(plain).length, 1);
  });

  it('is declared once when several inits with its key run at once: each succeeds', async () => {
    for (let round = 0; round < 3; round++) {
      const log = signingLog('identity.example/racing');
      await Promise.all(Array.from({ length: 6 }, () => log.init()));
      const entries = readLines(join(log.dir, 'log.jsonl')).map((line) => JSON.parse(line) as Entry);
      assert.deepEqual(
        entries.map((e) => e.action),
        ['evident.log.init'],
      );
      const writer = new Log({ store: log.dir });
      await writer.append({ actor: 'a', action: 'x.y' });
      await writer.close();
      assert.equal(storedCheckpoint(log.dir, log.key).size, 2);
    }
  });

  it('is declared once when inits with different keys race: the others are told whose key it signs with', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = join(tempDir(), 'contested');
      const keys = Array.from({ length: 5 }, (_, k) => signingLog(`identity.example/contender-${k}`));
      const outcomes = await Promise.allSettled(keys.map((key) => Log.init({ store: dir, signingKey: key.keyFile })));
      const won = outcomes.flatMap((outcome, k) => (outcome.status === 'fulfilled' ? [k] : []));
      assert.equal(won.length, 1, JSON.stringify(outcomes));
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          assert.match(
            (outcome.reason as Error).message,
            new RegExp(`(already signs as|is being declared for) identity\\.example/contender-${won[0]}\\b`),
          );
        }
      }
      assert.equal(entriesOf(dir).length, 1);
    }
  });

  it("is never half made: an init beaten by another writer's first entry leaves a log that takes appends", async () => {
    const log = signingLog('identity.example/beaten');
    await Log.init({ store: log.dir }); // an empty log that does not sign
    // What an init with a key that loses the race leaves: the checkpoint of the empty tree it stored first,
    // and an entry of another writer's at seq 0 where its declaration should have gone.
    const key = parseSignerKey(readFileSync(log.keyFile, 'utf8'));
    const empty = signNote(formatCheckpoint({ origin: key.name, size: 0, root: emptyRoot(), extensions: [] }), [
      ed25519Signer(checkpointKey(key)),
    ]);
    writeFileSync(join(log.dir, 'checkpoint'), empty);
    const writer = new Log({ store: log.dir });
    await writer.append({ actor: 'a', action: 'x.y' });
    await assert.rejects(Log.init({ store: log.dir, signingKey: log.keyFile }), {
      code: 'EVIDENT_INVALID_OPTION',
      message: /has 1 entries and does not sign/,
    });
    await writer.append({ actor: 'a', action: 'x.z' });
    await writer.close();
    assert.equal((await new Log({ store: log.dir, readOnly: true }).verify()).ok, true);
  });

  it("keeps the log's own actions for the log", async () => {
    const log = new Log({ store: tempDir(), create: true });
    await assert.rejects(log.append({ actor: 'a', action: 'evident.log.init' }), {
      code: 'EVIDENT_INVALID_ENTRY',
      message: /evident\. are the log's own/,
    });
    await log.close();
  });
});

describe('a signing log refuses a history its checkpoint does not cover', () => {
  it('when the checkpoint is gone, until an operator re-anchors it; the re-anchor is an entry', async () => {
    const log = signingLog('guard.example/gone');
    await log.init();
    const writer = new Log({ store: log.dir });
    await writer.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    await writer.close();
    const before = storedCheckpoint(log.dir, log.key);
    rmSync(join(log.dir, 'checkpoint'));
    const size = fileSize(log.dir);
    await assert.rejects(new Log({ store: log.dir }).append({ actor: 'c', action: 'x.y' }), {
      code: 'EVIDENT_HISTORY_MISMATCH',
      message: /checkpoint is gone.*re-anchor/,
    });
    assert.equal(fileSize(log.dir), size, 'nothing appended');

    const note = await Log.reanchor({ store: log.dir, actor: 'ops', reason: 'restored from a backup without it' });
    const after = trustCheckpoint(note, { log: log.key });
    assert.equal(after.size, 4);
    const reanchor = entriesOf(log.dir)[3] as Entry;
    assert.equal(reanchor.action, 'evident.log.reanchor');
    assert.equal(reanchor.actor, 'ops');
    assert.deepEqual(reanchor.data, {
      reason: 'restored from a backup without it',
      previous: null,
      size: 3,
      root: before.root.toString('base64'),
    });
    const next = new Log({ store: log.dir });
    await next.append({ actor: 'c', action: 'x.y' });
    await next.close();
    assert.equal(storedCheckpoint(log.dir, log.key).size, 5);
  });

  it('when its first entry, which declares its key, was changed: no writer takes that identity', async () => {
    const log = signingLog('guard.example/first');
    await log.init();
    const writer = new Log({ store: log.dir });
    await writer.append({ actor: 'a', action: 'x.y' });
    await writer.close();
    rmSync(join(log.dir, 'checkpoint'));
    const mallory = signingLog('guard.example/first');
    const lines = readLines(join(log.dir, 'log.jsonl'));
    const first = JSON.parse(lines[0] as string) as Entry;
    const theirs = { ...first, data: { origin: 'guard.example/first', verifierKey: mallory.verifier } };

    // Edited in place: the first entry's hash no longer holds.
    writeLines(join(log.dir, 'log.jsonl'), [canonicalize(theirs), ...lines.slice(1)]);
    const size = fileSize(log.dir);
    for (const key of [log.keyFile, mallory.keyFile]) {
      await assert.rejects(new Log({ store: log.dir, key }).append({ actor: 'm', action: 'x.y' }), {
        code: 'EVIDENT_LOG_CORRUPT',
        message: /first entry .* is not intact/,
      });
    }
    await assert.rejects(Log.reanchor({ store: log.dir, actor: 'm', reason: 'mine now', key: mallory.keyFile }), {
      code: 'EVIDENT_LOG_CORRUPT',
    });

    // Sealed again with its own hash: the entry after it no longer follows.
    theirs.hash = leafHashOfText(hashedText(theirs));
    writeLines(join(log.dir, 'log.jsonl'), [canonicalize(theirs), ...lines.slice(1)]);
    await assert.rejects(new Log({ store: log.dir, key: mallory.keyFile }).append({ actor: 'm', action: 'x.y' }), {
      code: 'EVIDENT_LOG_CORRUPT',
      message: /second entry .* does not follow the first/,
    });
    assert.equal(fileSize(log.dir), size, 'nothing appended');
    assert.equal(existsSync(join(log.dir, 'checkpoint')), false, 'nothing signed');
  });

  it('when entries it covers were cut off', async () => {
    const log = signingLog('guard.example/cut');
    await log.init();
    const writer = new Log({ store: log.dir });
    await writer.appendBatch([
      { actor: 'a', action: 'x.y' },
      { actor: 'b', action: 'x.y' },
    ]);
    await writer.close();
    const lines = readLines(join(log.dir, 'log.jsonl'));
    writeLines(join(log.dir, 'log.jsonl'), lines.slice(0, 2));
    await assert.rejects(new Log({ store: log.dir }).append({ actor: 'c', action: 'x.y' }), {
      code: 'EVIDENT_HISTORY_MISMATCH',
      message: /has 2 entries but its signed checkpoint covers 3/,
    });
    assert.equal(readLines(join(log.dir, 'log.jsonl')).length, 2);
  });

  it('when its history was rewritten with recomputed hashes, however the tiles look', async () => {
    for (const tiles of ['kept', 'removed'] as const) {
      const log = signingLog(`guard.example/rewritten-${tiles}`);
      await log.init();
      const writer = new Log({ store: log.dir });
      await writer.appendBatch(Array.from({ length: 300 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
      await writer.close();
      rewrite(log.dir, 7, (entry) => {
        entry.actor = 'mallory';
      });
      if (tiles === 'removed') rmSync(join(log.dir, 'tree'), { recursive: true });
      const size = fileSize(log.dir);
      await assert.rejects(new Log({ store: log.dir }).append({ actor: 'c', action: 'x.y' }), {
        code: 'EVIDENT_HISTORY_MISMATCH',
        message: /do not hash to its signed checkpoint's root: that history was rewritten/,
      });
      assert.equal(fileSize(log.dir), size, `nothing appended (tiles ${tiles})`);
      assert.equal(storedCheckpoint(log.dir, log.key).size, 301, 'nothing signed');
    }
  });

  it('verify names the first rewritten entry while the stored tree still holds the signed history', async () => {
    for (const tiles of ['kept', 'removed'] as const) {
      const log = signingLog(`guard.example/located-${tiles}`);
      await log.init();
      const writer = new Log({ store: log.dir });
      await writer.appendBatch(Array.from({ length: 40 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
      await writer.close();
      rewrite(log.dir, 23, (entry) => {
        entry.actor = 'mallory';
      });
      if (tiles === 'removed') rmSync(join(log.dir, 'tree'), { recursive: true });
      const result = await new Log({ store: log.dir, readOnly: true }).verify();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.reason, 'rewritten');
      if (tiles === 'kept') {
        assert.deepEqual(
          [result.size, result.failure?.seq, result.failure?.line, result.failure?.offset],
          [23, 23, 24, -1],
        );
        assert.match(result.failure?.message ?? '', /entry 23 is not the one the checkpoint signed/);
      } else {
        assert.equal(result.size, 0, 'no entry is known intact');
        assert.match(result.failure?.message ?? '', /which entry was changed first is not known/);
      }
    }
  });

  it('when its history is rewritten while a writer runs: that writer appends and signs no more', async () => {
    const log = signingLog('guard.example/running');
    await log.init();
    const writer = await Log.open({ store: log.dir, checkpointInterval: 3_600_000 });
    await writer.appendBatch(Array.from({ length: 10 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await writer.checkpoint();
    for (const edit of ['longer', 'same length'] as const) {
      rewrite(log.dir, 5, (entry) => {
        entry.actor = edit === 'longer' ? 'mallory' : 'b'; // 'a' → 'b' keeps the file's length
      });
      await assert.rejects(writer.append({ actor: 'a', action: 'x.y' }), {
        code: 'EVIDENT_LOG_CORRUPT',
        message: /entry 10 .* changed while the log was open/,
      });
    }
    await assert.rejects(writer.checkpoint(), { code: 'EVIDENT_LOG_CORRUPT' });
    await assert.rejects(writer.close(), { code: 'EVIDENT_LOG_CORRUPT' });
    assert.equal(storedCheckpoint(log.dir, log.key).size, 11, 'nothing signed over it');
    assert.equal(entriesOf(log.dir).length, 11, 'nothing appended onto it');
    await assert.rejects(new Log({ store: log.dir }).append({ actor: 'a', action: 'x.y' }), {
      code: 'EVIDENT_HISTORY_MISMATCH',
    });
  });

  it('but not when only its tiles are damaged or gone: they are rebuilt from the entries', async () => {
    const log = signingLog('guard.example/tiles');
    await log.init();
    const writer = new Log({ store: log.dir });
    await writer.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    await writer.close();
    const level0 = join(log.dir, 'tree', '0');
    const damaged = readFileSync(level0);
    damaged.fill(9, 256 * 32 + 64, 256 * 32 + 96); // in tile 0/001
    writeFileSync(level0, damaged);
    writeFileSync(join(log.dir, 'tree', 'size'), '5000\n');
    const again = new Log({ store: log.dir });
    await again.append({ actor: 'a', action: 'x.y' });
    const proof = await again.inclusionProof(300); // reads tile 0/001, which was rewritten
    assert.ok(proof.length > 0);
    await again.close();
    const checkpoint = storedCheckpoint(log.dir, log.key);
    assert.equal(checkpoint.size, 602);
    const reader = new Log({ store: log.dir, readOnly: true });
    assert.equal((await reader.verify({ checkpoint })).ok, true);
    await reader.close();
    assert.notDeepEqual(readFileSync(level0).subarray(0, 512 * 32), damaged.subarray(0, 512 * 32), 'repaired');
  });

  it('a witness takes a re-anchored checkpoint that extends what it cosigned, and refuses one that forks it', async () => {
    const { signer } = generateNoteKey('witness.example', ALG_COSIGNATURE_V1);
    const witness = new Witness({ key: parseSignerKey(signer), dir: tempDir() });
    const log = signingLog('guard.example/witnessed');
    await log.init();
    const writer = new Log({ store: log.dir });
    await writer.appendBatch(Array.from({ length: 5 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
    const first = (await writer.checkpoint()) as string;
    await witness.cosign(first, log.key, []);
    await writer.close();

    rmSync(join(log.dir, 'checkpoint')); // lost, the history unchanged: the re-anchor extends what was cosigned
    const kept = await Log.reanchor({ store: log.dir, actor: 'ops', reason: 'checkpoint lost' });
    const reader = new Log({ store: log.dir, readOnly: true });
    await witness.cosign(kept, log.key, await reader.consistencyProof(6, 7));
    await reader.close();

    rewrite(log.dir, 3, (entry) => {
      entry.actor = 'mallory';
    });
    const forked = await Log.reanchor({ store: log.dir, actor: 'ops', reason: 'accepting an edited history' });
    const proof = await new Log({ store: log.dir, readOnly: true }).consistencyProof(7, 8);
    await assert.rejects(witness.cosign(forked, log.key, proof), {
      code: 'EVIDENT_BAD_PROOF',
      message: /does not show .* extends what was cosigned at 7 \(a fork, or a proof for other sizes\)/,
    });
  });
});
