/**
 * Cosignatures kept with a signing log: every copy a witness returns is kept
 * until another supersedes it, and the checkpoint the log serves carries one
 * signature per key, the latest — so that asking the same witnesses again,
 * however often, never grows the note past what a verifier reads.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../../src/log.js';
import { ALG_COSIGNATURE_V1, generateNoteKey, parseSignerKey, parseVerifierKey } from '../../src/note/keys.js';
import { cosignatureTime, cosigner, openNote, signNote, splitNote } from '../../src/note/note.js';
import { signingLog } from '../helpers.js';

/** A witness key pair, parsed. */
function witnessKey(name: string) {
  const { signer, verifier } = generateNoteKey(name, ALG_COSIGNATURE_V1);
  return { signer: parseSignerKey(signer), verifier: parseVerifierKey(verifier) };
}

/** A signing log named `name`, opened with its key, and its first checkpoint; closed after `work`. */
async function withSigningLog(
  name: string,
  work: (log: Log, note: string, setup: ReturnType<typeof signingLog>) => Promise<void>,
): Promise<void> {
  const setup = signingLog(name);
  await setup.init();
  const log = new Log({ store: setup.dir, key: setup.keyFile });
  try {
    await work(log, (await log.latestCheckpoint()) as string, setup);
  } finally {
    await log.close();
  }
}

/** `note` (signed by the log) with a cosignature by `witness` at POSIX time `time` added after its signatures. */
function cosigned(note: string, witness: ReturnType<typeof witnessKey>, time: number): string {
  return `${note}${splitNote(signNote(splitNote(note).text, [cosigner(witness.signer, () => time)])).signatures}`;
}

const signatureLines = (note: string) => splitNote(note).signatures.trimEnd().split('\n');

describe('cosignatures kept with a signing log', () => {
  it('serve one signature per witness, its latest, however often the witness is asked again', () =>
    withSigningLog('cosign.example/again', async (log, note, setup) => {
      const w1 = witnessKey('w1.example');
      const w2 = witnessKey('w2.example');
      for (let time = 1_000; time < 1_150; time++) await log.addCosignatures(cosigned(note, w1, time), [w1.verifier]);
      await log.addCosignatures(cosigned(note, w2, 500), [w2.verifier]);
      const served = (await log.latestCheckpoint()) as string;
      const lines = signatureLines(served);
      assert.equal(lines.length, 3, 'the log, w1 and w2, each once');
      const opened = openNote(served, [setup.key, w1.verifier, w2.verifier]);
      assert.equal(opened.sigs[0]?.name, 'cosign.example/again', "the log's own first");
      const times = new Map(opened.sigs.slice(1).map((s) => [s.name, cosignatureTime(s)]));
      assert.deepEqual(
        times,
        new Map([
          ['w1.example', 1_149],
          ['w2.example', 500],
        ]),
        "w1's latest, and w2's",
      );
      // Stored: the last copy of w1's and w2's, not one per time w1 was asked.
      assert.equal(readdirSync(join(setup.dir, 'cosignatures')).length, 2);
      // An older cosignature given late does not replace a newer one.
      await log.addCosignatures(cosigned(note, w1, 1_001), [w1.verifier]);
      const again = openNote((await log.latestCheckpoint()) as string, [w1.verifier]);
      assert.equal(cosignatureTime(again.sigs[0] as (typeof again.sigs)[0]), 1_149);
    }));

  it('keep only lines that verify under the witness keys given: a forged later one never displaces a true one', () =>
    withSigningLog('cosign.example/forged', async (log, note, setup) => {
      const w1 = witnessKey('w1.example');
      const w2 = witnessKey('w2.example');
      await log.addCosignatures(cosigned(note, w1, 100), [w1.verifier]);
      // A line by w1's key with a later time and a signature that is not w1's.
      const good = cosigned(note, w1, 200);
      const line = good.trimEnd().split('\n').at(-1) as string;
      const raw = Buffer.from(line.split(' ')[2] as string, 'base64');
      raw.writeUInt8(raw.readUInt8(raw.length - 1) ^ 1, raw.length - 1);
      const forged = good.replace(line, `${line.split(' ').slice(0, 2).join(' ')} ${raw.toString('base64')}`);
      await assert.rejects(log.addCosignatures(forged, [w1.verifier]), { code: 'EVIDENT_NOTE_BAD_SIGNATURE' });
      // Lines by keys not given are not kept; a note with none by a given key is refused.
      await assert.rejects(log.addCosignatures(cosigned(note, w2, 300), [w1.verifier]), {
        code: 'EVIDENT_NOTE_UNVERIFIED',
      });
      const served = (await log.latestCheckpoint()) as string;
      const opened = openNote(served, [setup.key, w1.verifier, w2.verifier]);
      assert.deepEqual(
        opened.sigs.map((s) => [s.name, s.name === 'w1.example' ? cosignatureTime(s) : null]),
        [
          ['cosign.example/forged', null],
          ['w1.example', 100],
        ],
      );
      // The largest checkpoint a receipt serves lists the log's signature first too.
      const best = (await log.cosignedCheckpoint()) as string;
      assert.match(best.split('\n\n')[1] as string, /^— cosign\.example\/forged /);
    }));

  it('never serve more signatures than a note may carry', () =>
    withSigningLog('cosign.example/many', async (log, note, setup) => {
      const witnesses = Array.from({ length: 120 }, (_, i) => witnessKey(`w${i}.example`));
      for (const witness of witnesses) await log.addCosignatures(cosigned(note, witness, 7), [witness.verifier]);
      const served = (await log.latestCheckpoint()) as string;
      assert.equal(signatureLines(served).length, 100);
      const opened = openNote(served, [setup.key, ...witnesses.map((w) => w.verifier)]);
      assert.equal(opened.sigs[0]?.name, 'cosign.example/many', "the log's own signature first");
    }));
});
