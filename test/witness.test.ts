/**
 * A witness cosigns one consistent history per origin, keeping its state as
 * generation files it creates at most once: witness processes sharing a
 * state never both advance from the same checkpoint. A state it cannot read
 * is named, and a missing proof is called what it is.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../src/log.js';
import { emptyRoot } from '../src/merkle/hash.js';
import { formatCheckpoint } from '../src/note/checkpoint.js';
import { ALG_COSIGNATURE_V1, generateNoteKey, parseSignerKey } from '../src/note/keys.js';
import { ed25519Signer, signNote } from '../src/note/note.js';
import { Witness } from '../src/witness.js';
import { ROOT, runNode, signingLog, tempDir } from './helpers.js';

const witnessKey = () => generateNoteKey('w.example', ALG_COSIGNATURE_V1).signer;

/** A signing log with `n` entries after its first, and its checkpoint note. */
async function checkpointOf(log: ReturnType<typeof signingLog>, n: number): Promise<string> {
  const writer = new Log({ store: log.dir });
  if (n > 0)
    await writer.appendBatch(Array.from({ length: n }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
  const note = (await writer.checkpoint()) as string;
  await writer.close();
  return note;
}

describe('a witness', () => {
  it('keeps one record per cosigned checkpoint, per origin, and the last few only', async () => {
    const state = tempDir();
    const witness = new Witness({ key: witnessKey(), dir: state }); // the key's text will do
    assert.throws(() => new Witness({ key: 'not a key', dir: state }), { code: 'EVIDENT_BAD_KEY' });
    const log = signingLog('witness.example/records');
    await log.init();
    let last = await checkpointOf(log, 0);
    await witness.cosign(last, log.key, []);
    for (let k = 1; k <= 5; k++) {
      const note = await checkpointOf(log, 1);
      const reader = new Log({ store: log.dir, readOnly: true });
      await witness.cosign(note, log.key, await reader.consistencyProof(k, k + 1));
      await reader.close();
      last = note;
    }
    assert.deepEqual(witness.lastSeen('witness.example/records')?.size, 6);
    const [origin] = readdirSync(state);
    assert.deepEqual(readdirSync(join(state, origin as string)).sort(), [
      '0000000000000004',
      '0000000000000005',
      '0000000000000006',
    ]);
  });

  it('processes sharing a state never both cosign diverging checkpoints of one size', async () => {
    const a = signingLog('witness.example/race');
    await a.init();
    const base = await checkpointOf(a, 2);
    const bDir = `${a.dir}-fork`;
    cpSync(a.dir, bDir, { recursive: true });
    const forkA = await checkpointOf(a, 3);
    const forkB = await checkpointOf({ ...a, dir: bDir }, 3); // same key and size, another history
    const state = tempDir();
    const key = witnessKey();
    await new Witness({ key: parseSignerKey(key), dir: state }).cosign(base, a.key, []);
    const proofOf = async (dir: string) => {
      const reader = new Log({ store: dir, readOnly: true });
      const proof = (await reader.consistencyProof(3, 6)).map((h) => h.toString('base64'));
      await reader.close();
      return proof;
    };
    const script = join(tempDir(), 'cosign.mjs');
    writeFileSync(
      script,
      `import { Witness, parseSignerKey, parseVerifierKey } from ${JSON.stringify(join(ROOT, 'dist/src/verify.js'))};
       const [state, key, vkey, note, proof] = JSON.parse(process.argv[2]);
       try {
         await new Witness({ key: parseSignerKey(key), dir: state }).cosign(note, parseVerifierKey(vkey), proof.map((p) => Buffer.from(p, 'base64')));
         console.log('cosigned');
       } catch (error) { console.log(error.code); }`,
    );
    const runs = await Promise.all(
      [
        [forkA, await proofOf(a.dir)],
        [forkB, await proofOf(bDir)],
      ].map(([note, proof]) => runNode(script, [JSON.stringify([state, key, a.verifier, note, proof])])),
    );
    const outcomes = runs.map((run) => run.stdout.trim()).sort();
    assert.deepEqual(outcomes, ['EVIDENT_WITNESS_FORK', 'cosigned'], runs.map((r) => r.stderr).join(''));
  });

  it('takes a size-0 checkpoint only with the empty tree as its root, and no proof where none can be', async () => {
    const state = tempDir();
    const witness = new Witness({ key: parseSignerKey(witnessKey()), dir: state });
    const log = signingLog('witness.example/empty');
    const signer = ed25519Signer(parseSignerKey(readFileSync(log.keyFile, 'utf8')));
    const emptyWith = (root: Buffer) =>
      signNote(formatCheckpoint({ origin: 'witness.example/empty', size: 0, root, extensions: [] }), [signer]);
    const notEmpty = emptyWith(Buffer.alloc(32));
    // A false tree head vouched for would stand in the witness's state against the true one.
    await assert.rejects(witness.addCheckpoint(0, [], notEmpty, log.key), { code: 'EVIDENT_BAD_PROOF' });
    await assert.rejects(witness.cosign(notEmpty, log.key, []), { code: 'EVIDENT_BAD_PROOF' });
    assert.equal(witness.lastSeen('witness.example/empty'), null, 'nothing recorded');
    await witness.addCheckpoint(0, [], emptyWith(emptyRoot()), log.key);
    await log.init();
    const one = await checkpointOf(log, 0);
    await assert.rejects(witness.addCheckpoint(0, [Buffer.alloc(32)], one, log.key), {
      code: 'EVIDENT_BAD_PROOF',
      message: /a consistency proof from size 0 to 1 is empty/,
    });
    await witness.addCheckpoint(0, [], one, log.key);
    await assert.rejects(witness.addCheckpoint(1, [Buffer.alloc(32)], one, log.key), { code: 'EVIDENT_BAD_PROOF' });
    // The size it holds comes first: a client starting from the wrong size learns the right one (409).
    await assert.rejects(witness.addCheckpoint(0, [Buffer.alloc(32)], one, log.key), {
      code: 'EVIDENT_WITNESS_CONFLICT',
    });
  });

  it('names a state it cannot read, and a proof it was not given', async () => {
    const state = tempDir();
    const witness = new Witness({ key: parseSignerKey(witnessKey()), dir: state });
    const log = signingLog('witness.example/state');
    await log.init();
    await witness.cosign(await checkpointOf(log, 0), log.key, []);
    const later = await checkpointOf(log, 4);
    await assert.rejects(witness.cosign(later, log.key, []), {
      code: 'EVIDENT_BAD_PROOF',
      message: /no consistency proof was given from size 1, .*--from 1 --to 5/,
    });
    // A proof of the wrong shape is a bad proof, not evidence of a fork; the witness still takes the right one.
    const reader = new Log({ store: log.dir, readOnly: true });
    const proof = await reader.consistencyProof(1, 5);
    const otherSizes = await reader.consistencyProof(2, 5); // a true proof, of another tree than the one cosigned
    await reader.close();
    for (const bad of [[Buffer.alloc(0), ...proof.slice(1)], [...proof, ...proof], proof.slice(1), otherSizes]) {
      await assert.rejects(witness.cosign(later, log.key, bad), { code: 'EVIDENT_BAD_PROOF' });
    }
    await witness.cosign(later, log.key, proof);
    const [origin] = readdirSync(state);
    const record = join(state, origin as string, '0000000000000002');
    writeFileSync(record, '{"origin":');
    await assert.rejects(witness.cosign(later, log.key, []), {
      code: 'EVIDENT_WITNESS_STATE',
      message: new RegExp(`the witness state ${record} cannot be used`),
    });
  });
});
