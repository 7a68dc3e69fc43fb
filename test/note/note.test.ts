/**
 * Signed notes and checkpoints: the C2SP example verifies; evident's notes
 * open in Go's golang.org/x/mod/sumdb/note and Go's open in evident; unknown
 * signers are ignored, a bad signature by a known key rejects the note;
 * cosignatures carry their time; malformed notes and checkpoints are refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NoteError } from '../../src/errors.js';
import { leafHash } from '../../src/merkle/hash.js';
import { formatCheckpoint, parseCheckpoint } from '../../src/note/checkpoint.js';
import {
  ALG_COSIGNATURE_V1,
  generateNoteKey,
  parseSignerKey,
  parseVerifierKey,
  verifierKeyOf,
} from '../../src/note/keys.js';
import { cosignatureTime, cosigner, ed25519Signer, openNote, signNote } from '../../src/note/note.js';
import { buildGo, tempDir, VECTORS } from '../helpers.js';

const noteCode = (code: string) => (e: unknown) => e instanceof NoteError && e.code === code;

describe('signed notes', () => {
  it('verifies the C2SP signed-note example', () => {
    const vector = JSON.parse(readFileSync(join(VECTORS, 'note', 'c2sp-signed-note-example.json'), 'utf8')) as {
      vkey: string;
      note: string;
      text: string;
      wantErr: boolean;
    };
    assert.equal(vector.wantErr, false);
    const opened = openNote(vector.note, [parseVerifierKey(vector.vkey)]);
    assert.equal(opened.text, vector.text);
    assert.equal(opened.sigs.length, 1);
    // Changing one character of the text breaks it.
    assert.throws(
      () => openNote(vector.note.replace('example message', 'exemple message'), [parseVerifierKey(vector.vkey)]),
      noteCode('EVIDENT_NOTE_BAD_SIGNATURE'),
    );
  });

  it('makes keys of the two algorithms only', () => {
    for (const alg of [0, 2, 99]) {
      assert.throws(() => generateNoteKey('x.example/k', alg as Parameters<typeof generateNoteKey>[1]), {
        code: 'EVIDENT_BAD_KEY',
      });
    }
  });

  it('signs and opens; ignores unknown signers; rejects a bad signature by a known key', () => {
    const a = generateNoteKey('log.example/a');
    const b = generateNoteKey('witness.example/b');
    const signerA = parseSignerKey(a.signer);
    const text = 'hello\nworld\n';
    const both = signNote(text, [ed25519Signer(signerA), ed25519Signer(parseSignerKey(b.signer))]);
    const opened = openNote(both, [parseVerifierKey(a.verifier)]);
    assert.equal(opened.text, text);
    assert.deepEqual(
      opened.sigs.map((s) => s.name),
      ['log.example/a'],
    );
    assert.deepEqual(
      opened.unverified.map((s) => s.name),
      ['witness.example/b'],
    );
    assert.equal(verifierKeyOf(signerA), a.verifier);

    const lines = both.split('\n');
    const sig = lines[3] as string; // the first signature line
    const broken = sig.slice(0, -6) + (sig.at(-6) === 'A' ? 'B' : 'A') + sig.slice(-5);
    const tampered = both.replace(sig, broken);
    assert.throws(() => openNote(tampered, [parseVerifierKey(a.verifier)]), noteCode('EVIDENT_NOTE_BAD_SIGNATURE'));
    // ...but the same note opens for someone who only knows b.
    assert.equal(openNote(tampered, [parseVerifierKey(b.verifier)]).sigs[0]?.name, 'witness.example/b');
    assert.throws(
      () => openNote(both, [parseVerifierKey(generateNoteKey('other').verifier)]),
      noteCode('EVIDENT_NOTE_UNVERIFIED'),
    );
  });

  it('refuses malformed notes and keys', () => {
    const key = generateNoteKey('k');
    const good = signNote('text\n', [ed25519Signer(parseSignerKey(key.signer))]);
    const known = [parseVerifierKey(key.verifier)];
    for (const bad of [
      good.replace('\n\n', '\n'), // no blank line
      good.slice(0, -1), // no final newline
      `te\txt\n${good.slice(5)}`, // a control character
      good.replace('— ', '- '),
      good.replace(/ [^ ]+\n$/, ' not*base64\n'),
      `text\n\n${'— x AAAAAAA=\n'.repeat(101)}`,
    ]) {
      assert.throws(() => openNote(bad, known), noteCode('EVIDENT_NOTE_MALFORMED'), JSON.stringify(bad));
    }
    assert.throws(() => parseVerifierKey('name+12345678+AQ=='), /too short|32 bytes/);
    assert.throws(() => parseVerifierKey(key.verifier.replace(/\+([0-9a-f]{8})\+/, '+00000000+')), /hash/);
    assert.throws(() => generateNoteKey('has space'), /space/);
    assert.throws(() => generateNoteKey('a+b'), /'\+'/);
    // A name with a control character could sign nothing that opens: refused when the key is made.
    assert.throws(() => generateNoteKey('bad\u0001name'), { code: 'EVIDENT_BAD_KEY', message: /control character/ });
    // DEL and C1 are allowed, as Go allows them: a note naming such a key still opens.
    const odd = generateNoteKey('w\u0080x\u007f');
    const oddNote = signNote('text\n', [ed25519Signer(parseSignerKey(odd.signer))]);
    assert.equal(openNote(oddNote, [parseVerifierKey(odd.verifier)]).sigs.length, 1);
    assert.equal(openNote(`${good}${oddNote.split('\n\n')[1]}`, known).unverified.length, 1, 'an unknown line');
    // Base64 as Go's StdEncoding reads it: whole groups, padded; trailing characters are refused.
    for (const tail of ['A', 'A=', 'AAAA=', '=']) {
      assert.throws(() => parseVerifierKey(`${key.verifier}${tail}`), { code: 'EVIDENT_BAD_KEY' }, tail);
    }
  });

  it("reads signature lines' base64 as Go does: non-zero bits after the last byte are taken", () => {
    const log = generateNoteKey('pad.example');
    const note = signNote('text\n', [ed25519Signer(parseSignerKey(log.signer))]);
    const line = note.trimEnd().split('\n').at(-1) as string;
    const base64 = line.split(' ')[2] as string; // 68 bytes: one padding character, two spare bits
    assert.ok(base64.endsWith('=') && !base64.endsWith('=='));
    const last = base64.at(-2) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const flipped = `${base64.slice(0, -2)}${alphabet[alphabet.indexOf(last) ^ 1]}=`;
    assert.deepEqual(Buffer.from(flipped, 'base64'), Buffer.from(base64, 'base64'), 'the same bytes');
    const known = [parseVerifierKey(log.verifier)];
    assert.equal(openNote(note.replace(base64, flipped), known).sigs.length, 1, 'the log key');
    // An unknown signer's line written so is ignored, not a reason to refuse the note.
    const other = `— other.example/w ${flipped}\n`;
    assert.equal(openNote(`${note}${other}`, known).unverified.length, 1);
  });

  it('cosignatures (cosignature/v1) carry their time and verify only with the cosigner key', () => {
    const log = generateNoteKey('log.example');
    const witness = generateNoteKey('witness.example', ALG_COSIGNATURE_V1);
    const text = formatCheckpoint({ origin: 'log.example', size: 5, root: leafHash(Buffer.from('x')), extensions: [] });
    const signed = signNote(text, [ed25519Signer(parseSignerKey(log.signer))]);
    const opened = openNote(signed, [parseVerifierKey(log.verifier)]);
    const cosigned = signNote(text, [cosigner(parseSignerKey(witness.signer), () => 1_700_000_000)], opened.sigs);
    const both = openNote(cosigned, [parseVerifierKey(log.verifier), parseVerifierKey(witness.verifier)]);
    assert.deepEqual(
      both.sigs.map((s) => s.name),
      ['log.example', 'witness.example'],
    );
    assert.equal(cosignatureTime(both.sigs[1] as never), 1_700_000_000);
    // The cosignature covers the time: moving it breaks the signature.
    const sigLine = cosigned.trimEnd().split('\n').at(-1) as string;
    const raw = Buffer.from(sigLine.split(' ')[2] as string, 'base64');
    raw.writeBigUInt64BE(1_700_000_001n, 4);
    const moved = cosigned.replace(sigLine.split(' ')[2] as string, raw.toString('base64'));
    assert.throws(() => openNote(moved, [parseVerifierKey(witness.verifier)]), noteCode('EVIDENT_NOTE_BAD_SIGNATURE'));
    // A time beyond 2^63 − 1 is refused even when signed (c2sp.org/tlog-cosignature).
    const late = signNote(text, [cosigner(parseSignerKey(witness.signer), () => 2 ** 63)], opened.sigs);
    assert.throws(() => openNote(late, [parseVerifierKey(witness.verifier)]), noteCode('EVIDENT_NOTE_BAD_SIGNATURE'));
  });
});

describe('checkpoints', () => {
  it('formats and parses the C2SP checkpoint body', () => {
    const root = Buffer.from('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=', 'base64');
    const text = formatCheckpoint({ origin: 'example.com/behind-the-sofa', size: 20852163, root, extensions: [] });
    assert.equal(text, 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
    assert.deepEqual(parseCheckpoint(`${text}ext line\n`), {
      origin: 'example.com/behind-the-sofa',
      size: 20852163,
      root,
      extensions: ['ext line'],
    });
  });

  it('formats and parses checkpoints of every size a log can reach, and refuses what one cannot say', () => {
    const key = parseSignerKey(generateNoteKey('log.example/sizes').signer);
    for (const size of [0, 1, 9, 10, 255, 256, 65_537, 20_852_163, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]) {
      const root = randomBytes(32);
      const note = signNote(formatCheckpoint({ origin: key.name, size, root, extensions: [] }), [ed25519Signer(key)]);
      const parsed = parseCheckpoint(openNote(note, [key]).text);
      assert.equal(parsed.size, size);
      assert.ok(parsed.root.equals(root));
    }
    const root = randomBytes(32);
    const format = (origin: string, size: number, r = root) =>
      formatCheckpoint({ origin, size, root: r, extensions: [] });
    assert.throws(() => format('o', -1), /malformed checkpoint: size -1/);
    assert.throws(() => format('o', 1.5), /malformed checkpoint: size 1.5/);
    assert.throws(() => format('o', 1, randomBytes(31)), /malformed checkpoint: root is 31 bytes/);
    assert.throws(() => format('', 1), /origin must be one non-empty line/);
    assert.throws(() => format('a\nb', 1), /origin must be one non-empty line/);
    assert.throws(() => signNote(format('tab\there', 1), [ed25519Signer(key)]), /control character/);
    assert.throws(
      () => signNote(format('o', 1), [{ ...ed25519Signer(key), name: 'has space' }]),
      /invalid signer name/,
    );
  });

  it('refuses malformed checkpoints, naming the problem', () => {
    const root = 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=';
    for (const [text, why] of [
      [`o\n5\n${root}`, /newline/],
      ['o\n5\n', /at least 3 lines/],
      [`\n5\n${root}\n`, /origin/],
      [`o\n05\n${root}\n`, /leading zeros/],
      [`o\n-5\n${root}\n`, /decimal/],
      ['o\n5\nAAAA\n', /32 bytes/],
      [`o\n5\n${root}\n\n`, /extension/],
    ] as const) {
      assert.throws(() => parseCheckpoint(text), why, JSON.stringify(text));
    }
  });
});

describe('interoperability with Go sumdb/note', () => {
  const peer = buildGo('note-go.go');
  const skip = peer === null ? 'Go and golang-golang-x-mod-dev are not installed (.ci/run installs them)' : false;

  it('Go opens notes evident signed, also with a cosignature Go does not know', { skip }, () => {
    const dir = tempDir();
    const log = generateNoteKey('log.example/evident');
    const witness = generateNoteKey('witness.example', ALG_COSIGNATURE_V1);
    const text = formatCheckpoint({
      origin: 'log.example/evident',
      size: 3,
      root: leafHash(Buffer.from('y')),
      extensions: [],
    });
    const signed = signNote(text, [ed25519Signer(parseSignerKey(log.signer))]);
    const cosigned = signNote(
      text,
      [cosigner(parseSignerKey(witness.signer))],
      openNote(signed, [parseVerifierKey(log.verifier)]).sigs,
    );
    for (const message of [signed, cosigned]) {
      writeFileSync(join(dir, 'note'), message);
      const out = execFileSync(peer as string, ['verify', log.verifier, join(dir, 'note')], { encoding: 'utf8' });
      assert.equal(out, text);
    }
    // And Go refuses what it must: a tampered note.
    writeFileSync(join(dir, 'note'), signed.replace('\n3\n', '\n4\n'));
    assert.throws(() => execFileSync(peer as string, ['verify', log.verifier, join(dir, 'note')], { stdio: 'pipe' }));
  });

  it('evident opens notes Go signed, with keys Go generated', { skip }, () => {
    const dir = tempDir();
    const [signer, verifier] = execFileSync(peer as string, ['keygen', 'go.example/log'], { encoding: 'utf8' })
      .trim()
      .split('\n') as [string, string];
    writeFileSync(join(dir, 'text'), 'go.example/log\n7\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
    const message = execFileSync(peer as string, ['sign', signer, join(dir, 'text')], { encoding: 'utf8' });
    const opened = openNote(message, [parseVerifierKey(verifier)]);
    assert.equal(parseCheckpoint(opened.text).size, 7);
    // evident reads Go's private key format too, and signs exactly as Go does (Ed25519 is deterministic).
    const again = signNote(opened.text, [ed25519Signer(parseSignerKey(signer))]);
    assert.equal(again, message);
  });
});
