/**
 * Signed notes (C2SP signed-note), opened and signed by the rules Go's
 * golang.org/x/mod/sumdb/note applies:
 *
 *   <text, ending in "\n">
 *   "\n"
 *   "— " <key name> " " base64(key hash (4 bytes, big-endian) || signature) "\n"   (one or more)
 *
 * A message must be UTF-8 with no control characters but newline. The text
 * is everything up to the last blank line. Signatures by unknown keys are
 * kept as unverified; a known key whose signature does not verify rejects
 * the note; a note with no verified signature is rejected. At most 100
 * signature lines are read, and repeated ones are dropped.
 */

import { isUtf8 } from 'node:buffer';
import { sign as ed25519Sign, verify as ed25519Verify } from 'node:crypto';
import { decodeStdBase64 } from '../encoding/base64.js';
import { NoteError } from '../errors.js';
import { ALG_COSIGNATURE_V1, isValidKeyName, type PrivateNoteKey, type PublicNoteKey } from './keys.js';

export interface NoteSignature {
  name: string;
  keyHash: number;
  /** base64 of key hash || signature, as on the line. */
  base64: string;
}

export interface OpenedNote {
  text: string;
  /** Signatures verified by a known key, in order. */
  sigs: NoteSignature[];
  /** Signatures by keys not given, in order. */
  unverified: NoteSignature[];
}

/** Makes a signature over a note's text. */
export interface NoteSigner {
  name: string;
  keyHash: number;
  sign(text: Buffer): Buffer;
}

const SIG_PREFIX = '— ';
const MAX_COSIGNATURE_TIME = 2n ** 63n - 1n;
const MAX_SIGNATURES = 100;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters other than newline make a note malformed
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

const malformed = (why: string) => new NoteError('EVIDENT_NOTE_MALFORMED', `malformed note: ${why}`);
const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** Opens `message`, verifying its signatures against `known` keys; throws NoteError as described above. */
export function openNote(message: string | Uint8Array, known: readonly PublicNoteKey[]): OpenedNote {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : Buffer.from(message);
  if (!isUtf8(bytes)) throw malformed('not UTF-8');
  const msg = bytes.toString('utf8');
  if (CONTROL.test(msg)) throw malformed('control character');
  const { text, signatures: block } = splitNote(msg);
  if (block.length === 0 || !block.endsWith('\n')) throw malformed('signature block does not end with a newline');

  const note: OpenedNote = { text, sigs: [], unverified: [] };
  const seen = new Set<string>();
  const seenUnverified = new Set<string>();
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw malformed(`more than ${MAX_SIGNATURES} signatures`);
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX))
      throw malformed(`signature line does not start with "— ": ${JSON.stringify(line)}`);
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    const base64 = space < 0 ? '' : rest.slice(space + 1);
    const raw = base64 === '' ? null : decodeStdBase64(base64);
    if (raw === null || !isValidKeyName(name) || raw.length < 5) throw malformed(`bad signature line for ${name}`);
    const keyHash = raw.readUInt32BE(0);
    const signature: NoteSignature = { name, keyHash, base64 };
    const matches = known.filter((k) => k.name === name && k.keyHash === keyHash);
    if (matches.length === 0) {
      if (!seenUnverified.has(line)) note.unverified.push(signature);
      seenUnverified.add(line);
      continue;
    }
    if (matches.length > 1) throw malformed(`ambiguous key ${name}+${hex8(keyHash)}`);
    const id = `${name}+${keyHash}`;
    if (seen.has(id)) continue;
    seen.add(id);
    if (!verifySignature(matches[0] as PublicNoteKey, Buffer.from(text, 'utf8'), raw.subarray(4))) {
      throw new NoteError('EVIDENT_NOTE_BAD_SIGNATURE', `invalid signature for key ${name}+${hex8(keyHash)}`);
    }
    note.sigs.push(signature);
  }
  if (note.sigs.length === 0) throw new NoteError('EVIDENT_NOTE_UNVERIFIED', 'note has no signature by a given key');
  return note;
}

/**
 * A signed note's text (through its final newline) and signature block, split
 * at the last blank line as the signed-note rules say. Nothing is verified.
 */
export function splitNote(message: string): { text: string; signatures: string } {
  const split = message.lastIndexOf('\n\n');
  if (split < 0) throw malformed('no blank line before the signatures');
  return { text: message.slice(0, split + 1), signatures: message.slice(split + 2) };
}

function verifySignature(key: PublicNoteKey, text: Buffer, signature: Buffer): boolean {
  if (key.alg === ALG_COSIGNATURE_V1) {
    // The time is a uint64 that must not exceed 2^63 − 1 (c2sp.org/tlog-cosignature).
    if (signature.length !== 8 + 64 || signature.readBigUInt64BE(0) > MAX_COSIGNATURE_TIME) return false;
    const message = cosignedMessage(signature.readBigUInt64BE(0), text);
    return ed25519Verify(null, message, key.key, signature.subarray(8));
  }
  return signature.length === 64 && ed25519Verify(null, text, key.key, signature);
}

/** C2SP tlog-cosignature: the message a cosignature/v1 signs for a checkpoint `text` at POSIX time `time`. */
export function cosignedMessage(time: bigint, text: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`cosignature/v1\ntime ${time}\n`), text]);
}

/** The timestamp inside a cosignature/v1 signature line, in POSIX seconds. */
export function cosignatureTime(signature: NoteSignature): number {
  const raw = Buffer.from(signature.base64, 'base64');
  return Number(raw.readBigUInt64BE(4));
}

/** A note signer for a plain Ed25519 key (algorithm 0x01). */
export function ed25519Signer(key: PrivateNoteKey): NoteSigner {
  return { name: key.name, keyHash: key.keyHash, sign: (text) => ed25519Sign(null, text, key.privateKey) };
}

/** A cosignature/v1 signer (algorithm 0x04): the signature is the time, 8 bytes big-endian, then Ed25519. */
export function cosigner(key: PrivateNoteKey, now: () => number = () => Math.floor(Date.now() / 1000)): NoteSigner {
  return {
    name: key.name,
    keyHash: key.keyHash,
    sign: (text) => {
      const time = Buffer.alloc(8);
      time.writeBigUInt64BE(BigInt(now()));
      return Buffer.concat([time, ed25519Sign(null, cosignedMessage(time.readBigUInt64BE(0), text), key.privateKey)]);
    },
  };
}

/**
 * Signs `text` (which must end in a newline) with each signer, after the
 * `keep` signatures (a signature by one of the signers' keys is replaced).
 */
export function signNote(text: string, signers: readonly NoteSigner[], keep: readonly NoteSignature[] = []): string {
  if (!text.endsWith('\n')) throw malformed('text does not end with a newline');
  if (CONTROL.test(text)) throw malformed('text has a control character');
  const body = Buffer.from(text, 'utf8');
  const replaced = new Set(signers.map((s) => `${s.name}+${s.keyHash}`));
  const lines: string[] = [];
  for (const sig of keep) {
    if (replaced.has(`${sig.name}+${sig.keyHash}`)) continue;
    lines.push(`${SIG_PREFIX}${sig.name} ${sig.base64}\n`);
  }
  for (const signer of signers) {
    if (!isValidKeyName(signer.name)) throw malformed(`invalid signer name ${JSON.stringify(signer.name)}`);
    const hash = Buffer.alloc(4);
    hash.writeUInt32BE(signer.keyHash);
    lines.push(`${SIG_PREFIX}${signer.name} ${Buffer.concat([hash, signer.sign(body)]).toString('base64')}\n`);
  }
  return `${text}\n${lines.join('')}`;
}
