/**
 * Checkpoints as witnesses cosigned them, kept beside the log so that
 * receipts can carry the cosignatures: one note per checkpoint, named by the
 * SHA-256 of its text, gathering every signature given for it.
 */
import { hash } from 'node:crypto';
import { EvidentError } from '../errors.js';
import { type Checkpoint, checkpointOfNote, parseCheckpoint } from '../note/checkpoint.js';
import { openNote, splitNote } from '../note/note.js';
import type { CosignatureStore } from '../store/store.js';
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
  let best: { size: number; text: string } | null = null;
  const lines = new Map<string, Set<string>>();
  for (const { note } of await store.list()) {
    const { text } = splitNote(note);
    const size = checkpointOfNote(note).size;
    if (size <= minSize || (best !== null && size < best.size)) continue;
    if (best === null || size > best.size) best = { size, text };
    if (text !== best.text) continue; // another tree of that size: not this log's (verify with its key)
    const kept = lines.get(text) ?? new Set<string>();
    for (const line of signatureLines(note)) kept.add(line);
    lines.set(text, kept);
  }
  return best === null ? null : `${best.text}\n${[...(lines.get(best.text) ?? [])].join('')}`;
}

/** `note` (a signed checkpoint) with every signature kept for the same checkpoint added, the note's own first. */
export async function withKeptCosignatures(store: CosignatureStore, note: string): Promise<string> {
  const { text } = splitNote(note);
  const lines = new Set(signatureLines(note));
  for (const { note: kept } of await store.list()) {
    if (splitNote(kept).text !== text) continue;
    for (const line of signatureLines(kept)) lines.add(line);
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
