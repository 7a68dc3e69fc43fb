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
  const key = cosignatureKey(opened.text);
  const existing = await store.get(key);
  const signatures = existing === null ? [] : signatureLines(existing);
  for (const line of signatureLines(note)) if (!signatures.includes(line)) signatures.push(line);
  await store.put(key, `${opened.text}\n${signatures.join('')}`);
  return checkpoint;
}

/** What a cosigned note is kept under: the SHA-256 of the checkpoint's text. */
export function cosignatureKey(text: string): string {
  return hash('sha256', text, 'hex');
}

/** The kept note with the largest checkpoint covering more than `minSize` entries, or null. */
export async function bestCosigned(store: CosignatureStore, minSize: number): Promise<string | null> {
  let best: { size: number; note: string } | null = null;
  for (const note of await store.list()) {
    const size = checkpointOfNote(note).size;
    if (size > minSize && (best === null || size > best.size)) best = { size, note };
  }
  return best?.note ?? null;
}

/** The signature lines of a signed note, each with its newline. */
function signatureLines(note: string): string[] {
  return splitNote(note)
    .signatures.split('\n')
    .filter((line) => line.length > 0)
    .map((line) => `${line}\n`);
}
