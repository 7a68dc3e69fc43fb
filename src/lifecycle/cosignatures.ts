/**
 * Checkpoints as witnesses cosigned them, kept beside the log so that
 * receipts can carry the cosignatures. Each copy a witness returned is kept
 * as given, named by the SHA-256 of the whole note; reading gathers the
 * copies of one checkpoint into one note with one signature per key: a
 * witness asked again (a server restarted, `witness cosign` run twice) signs
 * the same checkpoint with a new time, and every such line kept would soon
 * pass the 100 signatures a note may carry (signed-note; Go's note.Open
 * refuses more), making the checkpoint and every receipt unreadable.
 */
import { hash } from 'node:crypto';
import { EvidentError, NoteError } from '../errors.js';
import { type Checkpoint, checkpointOfNote, parseCheckpoint } from '../note/checkpoint.js';
import type { PublicNoteKey } from '../note/keys.js';
import { openNote, splitNote } from '../note/note.js';
import type { CosignatureStore, KeptNote } from '../store/store.js';
import type { SigningIdentity } from './signing.js';

/**
 * Keeps the cosignatures on `note`, a checkpoint of this log, with those
 * kept before: the lines by the `witnesses` keys, each of which must verify,
 * and the log's own (which must too). Lines by other keys are not kept: the
 * kept lines are compared by key and time alone, so one that does not verify
 * must never come in, where it would displace a true one.
 */
export async function addCosignatures(
  store: CosignatureStore,
  identity: SigningIdentity | null,
  note: string,
  witnesses: readonly PublicNoteKey[],
): Promise<Checkpoint> {
  if (identity === null) throw new EvidentError('EVIDENT_NO_KEY', 'this log does not sign checkpoints');
  const opened = openNote(note, [identity.verifierKey]);
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== identity.origin) {
    throw new EvidentError('EVIDENT_UNTRUSTED', `a checkpoint for ${checkpoint.origin}, not ${identity.origin}`);
  }
  const keys = [identity.verifierKey, ...witnesses];
  const lines: string[] = [];
  let cosignatures = 0;
  for (const line of signatureLines(note)) {
    const { id } = signerOf(line);
    const key = keys.find((k) => signerId(k.name, k.keyHash) === id);
    if (key === undefined) continue;
    openNote(`${opened.text}\n${line}`, [key]); // throws if this line does not verify
    lines.push(line);
    if (key !== identity.verifierKey) cosignatures++;
  }
  if (cosignatures === 0) {
    throw new NoteError('EVIDENT_NOTE_UNVERIFIED', 'the note has no cosignature by a witness key given');
  }
  // Kept as given, never merged into another copy: two witnesses' cosignatures added at once by different
  // callers or processes cannot overwrite each other. Reading gathers the copies of one checkpoint.
  const kept = `${opened.text}\n${lines.join('')}`;
  await store.put(keptKey(kept), kept);
  // Receipts use the largest cosigned checkpoint that covers their entry, and the largest covers every entry a
  // smaller one does: copies of smaller ones serve nothing, and would pile up with every checkpoint.
  const all = (await store.list()).map((k) => ({ ...k, size: checkpointOfNote(k.note).size }));
  const largest = Math.max(...all.map((k) => k.size));
  for (const k of all) if (k.size < largest) await store.remove(k.key);
  // Copies of the largest that another copy supersedes go too, so that asking witnesses again keeps no more.
  const copies = all
    .filter((k) => k.size === largest)
    .map((k): KeptCopy & { removed: boolean } => ({ key: k.key, signers: signersOf(k.note), removed: false }));
  for (const copy of copies) {
    if (copies.some((other) => other !== copy && !other.removed && supersedes(other, copy))) {
      copy.removed = true;
      await store.remove(copy.key);
    }
  }
  return checkpoint;
}

/** What a cosigned note is kept under: the SHA-256 of the whole note, so that each copy is kept apart. */
export function keptKey(note: string): string {
  return hash('sha256', note, 'hex');
}

/**
 * The largest checkpoint covering more than `minSize` entries with every
 * signature kept for it (each copy's lines, once, the log's first), or null.
 */
export async function bestCosigned(store: CosignatureStore, minSize: number): Promise<string | null> {
  const kept = await store.list();
  let best: { size: number; text: string } | null = null;
  for (const { note } of kept) {
    const size = checkpointOfNote(note).size;
    if (size > minSize && (best === null || size > best.size)) best = { size, text: splitNote(note).text };
  }
  return best === null ? null : gathered(kept, best.text, []);
}

/** `note` (a signed checkpoint) with every signature kept for the same checkpoint added, the note's own first. */
export async function withKeptCosignatures(store: CosignatureStore, note: string): Promise<string> {
  return gathered(await store.list(), splitNote(note).text, signatureLines(note));
}

/**
 * Checkpoint `text` with the signature lines `first`, then those of every
 * kept copy of it: one line per key (its latest cosignature), at most
 * MAX_LINES in all: `first`, the log's, then the others in the order of their keys.
 */
function gathered(kept: readonly KeptNote[], text: string, first: readonly string[]): string {
  const lines = new Map<string, Signer>();
  const add = (line: string) => {
    const signer = signerOf(line);
    const had = lines.get(signer.id);
    if (had === undefined ? lines.size < MAX_LINES : signer.time > had.time) lines.set(signer.id, signer);
  };
  for (const line of first) add(line);
  const own = lines.size;
  for (const { note } of kept) {
    if (splitNote(note).text === text) for (const line of signatureLines(note)) add(line);
  }
  // The note's own lines first, then the log's signature (the one line that is not a cosignature), then the
  // cosignatures by key: every reader of the same copies serves the same note.
  const signers = [...lines.values()];
  const rank = (signer: Signer) => (signer.time < 0n ? 0 : 1);
  const others = signers.slice(own).sort((a, b) => rank(a) - rank(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return `${text}\n${[...signers.slice(0, own), ...others].map((signer) => signer.line).join('')}`;
}

/** The most signature lines a gathered note carries: signed-note's limit for what a verifier must read. */
const MAX_LINES = 100;

/** A signature line, the key that made it (name and key hash) and, for a cosignature/v1, its time. */
interface Signer {
  line: string;
  id: string;
  time: bigint;
}

/** Who made a signature line (`— NAME BASE64\n`) and when: a cosignature/v1 carries its time after the key hash. */
function signerOf(line: string): Signer {
  const [name, base64] = line.slice(2, -1).split(' ') as [string, string];
  const raw = Buffer.from(base64, 'base64');
  const time = raw.length === COSIGNATURE_BYTES ? raw.readBigUInt64BE(4) : -1n;
  return { line, id: signerId(name, raw.readUInt32BE(0)), time };
}

/** A key's identity among signature lines: its name and key hash. */
function signerId(name: string, keyHash: number): string {
  return `${name} ${keyHash.toString(16).padStart(8, '0')}`;
}

/** Key hash, time and Ed25519 signature: the bytes of a cosignature/v1 line (c2sp.org/tlog-cosignature). */
const COSIGNATURE_BYTES = 4 + 8 + 64;

/** A kept copy of a checkpoint: its key in the store, and its signers' times, by key. */
interface KeptCopy {
  key: string;
  signers: Map<string, bigint>;
}

/** A kept copy's signers, by key: the latest time of each. */
function signersOf(note: string): Map<string, bigint> {
  const signers = new Map<string, bigint>();
  for (const { id, time } of signatureLines(note).map(signerOf)) {
    if (!(time <= (signers.get(id) ?? -2n))) signers.set(id, time);
  }
  return signers;
}

/**
 * Whether copy `a` makes copy `b` needless: it holds a signature by every
 * key `b` does, none older. Of two copies with the same keys and times the
 * one with the larger name goes, so that two writers tidying at once keep one.
 */
function supersedes(a: KeptCopy, b: KeptCopy): boolean {
  let same = a.signers.size === b.signers.size;
  for (const [id, time] of b.signers) {
    const theirs = a.signers.get(id);
    if (theirs === undefined || theirs < time) return false;
    if (theirs !== time) same = false;
  }
  return !same || a.key < b.key;
}

/** The signature lines of a signed note, each with its newline. */
function signatureLines(note: string): string[] {
  return splitNote(note)
    .signatures.split('\n')
    .filter((line) => line.length > 0)
    .map((line) => `${line}\n`);
}
