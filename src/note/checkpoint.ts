/**
 * Checkpoints (C2SP tlog-checkpoint): the note text naming a log's tree head.
 *
 *   <origin>\n
 *   <tree size, decimal, no leading zeros>\n
 *   <root hash, base64>\n
 *   [<extension line>\n ...]
 */
import { HASH_SIZE, type Hash } from '../merkle/hash.js';
import { NoteError, type NoteSigner, signNote, splitNote } from './note.js';

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

/**
 * A maker of signed checkpoint notes for `origin`, with no extension lines,
 * signed by `signer`: for a size and root, the bytes of
 * signNote(formatCheckpoint(...), [signer]), built directly. A signing log
 * makes one per commit, and the general path's checks and joins were a
 * fifth of the step that makes it (CPU profile); here the origin and the
 * signer's name are checked once, by the general path's own checks (with a
 * stand-in signature: nothing is signed until a note is made).
 */
export function checkpointNoteMaker(origin: string, signer: NoteSigner): (size: number, root: Hash) => Buffer {
  const text = formatCheckpoint({ origin, size: 0, root: Buffer.alloc(HASH_SIZE), extensions: [] });
  signNote(text, [{ ...signer, sign: () => Buffer.alloc(64) }]);
  const keyHash = Buffer.alloc(4);
  keyHash.writeUInt32BE(signer.keyHash);
  const head = `${origin}\n`;
  const signatureLine = `\n— ${signer.name} `;
  return (size, root) => {
    if (!Number.isSafeInteger(size) || size < 0) throw bad(`size ${size} is not a tree size`);
    if (root.length !== HASH_SIZE) throw bad(`root is ${root.length} bytes`);
    const text = `${head}${size}\n${root.toString('base64')}\n`;
    const signature = Buffer.concat([keyHash, signer.sign(Buffer.from(text, 'utf8'))]).toString('base64');
    return Buffer.from(`${text}${signatureLine}${signature}\n`, 'utf8');
  };
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
