/**
 * Checkpoints (C2SP tlog-checkpoint): the note text naming a log's tree head.
 *
 *   <origin>\n
 *   <tree size, decimal, no leading zeros>\n
 *   <root hash, base64>\n
 *   [<extension line>\n ...]
 */
import { NoteError } from '../errors.js';
import { HASH_SIZE, type Hash } from '../merkle/hash.js';
import { splitNote } from './note.js';

export interface Checkpoint {
  origin: string;
  size: number;
  root: Hash;
  /** Extension lines (opaque, non-empty), in order. */
  extensions: string[];
}

/** The note text of a checkpoint. */
export function formatCheckpoint(c: Checkpoint): string {
  if (c.origin.length === 0 || c.origin.includes('\n')) throw bad('origin must be one non-empty line');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw bad(`size ${c.size} is not a tree size`);
  if (c.root.length !== HASH_SIZE) throw bad(`root is ${c.root.length} bytes`);
  for (const line of c.extensions) if (line.length === 0 || line.includes('\n')) throw bad('empty extension line');
  return [c.origin, String(c.size), c.root.toString('base64'), ...c.extensions].map((l) => `${l}\n`).join('');
}

/** Parses checkpoint note text strictly; throws NoteError (EVIDENT_NOTE_MALFORMED) naming the problem. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw bad('text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw bad(`a checkpoint has at least 3 lines, this has ${lines.length}`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw bad('empty origin line');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw bad(`tree size ${JSON.stringify(sizeText)} is not a decimal number without leading zeros`);
  }
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== HASH_SIZE || root.toString('base64') !== rootText) {
    throw bad(`root hash ${JSON.stringify(rootText)} is not 32 bytes of base64`);
  }
  if (extensions.some((l) => l.length === 0)) throw bad('empty extension line');
  return { origin, size: Number(sizeText), root, extensions };
}

/** The checkpoint a signed note carries, parsed without verifying any signature (open the note for that). */
export function checkpointOfNote(note: string): Checkpoint {
  return parseCheckpoint(splitNote(note).text);
}

function bad(why: string): NoteError {
  return new NoteError('EVIDENT_NOTE_MALFORMED', `malformed checkpoint: ${why}`);
}
