/**
 * Checkpoints as witnesses cosigned them, kept beside the log so that
 * receipts can carry the cosignatures: one note per checkpoint, named by the
 * SHA-256 of its text, gathering every signature given for it.
 */
import { hash } from 'node:crypto';
import { EvidentError } from '../errors.js';
import { type Checkpoint, checkpointOfNote, parseCheckpoint } from '../note/checkpoint.js';
import { openNote, splitNote } from '../note/note.js';
import type { CosignatureStore, KeptNote } from '../store/store.js';
import type { SigningIdentity } from './signing.js';

/** Keeps the cosignatures on `note`, a checkpoint of this log (its signature is checked), with those kept before. */
export async function addCosignatures(
  store: CosignatureStore,
  identity: SigningIdentity | null,
  note: string,
): Promise<Checkpoint> {
  if (identity === null) throw new EvidentError('EVIDENT_NO_KEY', 'this log does not sign checkpoints');
  const opened = openNote(note, [identity.verifierKey]);
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== identity.origin) {
    throw new EvidentError('EVIDENT_UNTRUSTED', `a checkpoint for ${checkpoint.origin}, not ${identity.origin}`);
  }
  // Kept as given, never merged into another copy: two witnesses' cosignatures added at once by different
  // callers or processes cannot overwrite each other. Reading gathers the copies of one checkpoint.
  const kept = `${opened.text}\n${signatureLines(note).join('')}`;
  await store.put(keptKey(kept), kept);
  // Receipts use the largest cosigned checkpoint that covers their entry, and the largest covers every entry a
  // smaller one does: copies of smaller ones serve nothing, and would pile up with every checkpoint.
  const all = (await store.list()).map((k) => ({ ...k, size: checkpointOfNote(k.note).size }));
  const largest = Math.max(...all.map((k) => k.size));
  for (const k of all) if (k.size < largest) await store.remove(k.key);
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

/** Checkpoint `text` with the signature lines `first`, then those of every kept copy of it, each once. */
function gathered(kept: readonly KeptNote[], text: string, first: readonly string[]): string {
  const lines = new Set(first);
  for (const { note } of kept) {
    if (splitNote(note).text === text) for (const line of signatureLines(note)) lines.add(line);
  }
  return `${text}\n${[...lines].join('')}`;
}

/** The signature lines of a signed note, each with its newline. */
function signatureLines(note: string): string[] {
  return splitNote(note)
    .signatures.split('\n')
    .filter((line) => line.length > 0)
    .map((line) => `${line}\n`);
}
