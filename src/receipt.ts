/**
 * Receipts: offline proof that an entry is in a log, in the C2SP tlog-proof
 * format (c2sp.org/tlog-proof@v1):
 *
 *   c2sp.org/tlog-proof@v1
 *   [extra <base64>]
 *   index <entry's index>
 *   <inclusion proof: one base64 hash per line>
 *   <blank line>
 *   <the signed checkpoint, with any cosignatures>
 *
 * verifyReceipt needs only the receipt, the entry, and the keys to trust.
 */

import { parseEntry } from './chain.js';
import { canonicalize, MAX_DEPTH } from './encoding/canonical.js';
import { type Entry, hashedText, leafHashOfText } from './entry.js';
import { InvalidEntryError, ReceiptError } from './errors.js';
import { HASH_SIZE, type Hash } from './merkle/hash.js';
import { verifyInclusion } from './merkle/verify.js';
import { type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from './note/trust.js';

export const RECEIPT_HEADER = 'c2sp.org/tlog-proof@v1';

export interface Receipt {
  index: number;
  proof: Hash[];
  /** The signed checkpoint note. */
  checkpoint: string;
  extra?: Buffer | undefined;
}

export function formatReceipt(r: Receipt): string {
  const lines = [RECEIPT_HEADER];
  if (r.extra !== undefined) lines.push(`extra ${r.extra.toString('base64')}`);
  lines.push(`index ${r.index}`, ...r.proof.map((h) => h.toString('base64')));
  return `${lines.join('\n')}\n\n${r.checkpoint}`;
}

/** Parses a receipt strictly; throws ReceiptError naming the line. */
export function parseReceipt(text: string): Receipt {
  const split = text.indexOf('\n\n');
  if (split < 0) throw new ReceiptError('no blank line between the proof and the checkpoint');
  const lines = text.slice(0, split).split('\n');
  const checkpoint = text.slice(split + 2);
  if (lines[0] !== RECEIPT_HEADER) throw new ReceiptError(`the first line is not ${RECEIPT_HEADER}`);
  let at = 1;
  let extra: Buffer | undefined;
  if (lines[at]?.startsWith('extra ')) {
    const encoded = (lines[at] as string).slice(6);
    extra = encoded === '' ? Buffer.alloc(0) : strictBase64(encoded, 'extra'); // empty data is base64 too
    at++;
  }
  const index = /^index (0|[1-9][0-9]*)$/.exec(lines[at] ?? '');
  if (index === null || !Number.isSafeInteger(Number(index[1])))
    throw new ReceiptError(`line ${at + 1} is not "index <n>"`);
  const proof = lines.slice(at + 1).map((line, k) => {
    const hash = strictBase64(line, `proof line ${k + 1}`);
    if (hash.length !== HASH_SIZE) throw new ReceiptError(`proof line ${k + 1} is not a 32-byte hash`);
    return hash;
  });
  return { index: Number(index[1]), proof, checkpoint, extra };
}

function strictBase64(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'base64');
  if (text.length === 0 || bytes.toString('base64') !== text) throw new ReceiptError(`${what} is not base64`);
  return bytes;
}

/**
 * Checks a receipt for `entry` (as stored, or any JSON rendering of it):
 * the entry is intact (its hash covers it), it is the receipt's index, the
 * checkpoint is trusted under `policy`, and the inclusion proof leads from
 * the entry's hash to the checkpoint's root. Returns the trusted checkpoint.
 */
export function verifyReceipt(receipt: Receipt, entry: unknown, policy: TrustPolicy): TrustedCheckpoint {
  let text: string;
  try {
    text = canonicalize(entry, '$', MAX_DEPTH + 1);
  } catch (error) {
    if (!(error instanceof InvalidEntryError)) throw error;
    throw new ReceiptError(`the entry is not an evident entry: ${error.message}`);
  }
  const parsed = parseEntry(text);
  if (typeof parsed === 'string') throw new ReceiptError(`the entry is not an evident entry: ${parsed}`);
  const e: Entry = parsed;
  if (leafHashOfText(hashedText(e)) !== e.hash)
    throw new ReceiptError('the entry does not match its own hash: it was altered');
  if (e.seq !== receipt.index)
    throw new ReceiptError(`the entry is seq ${e.seq}, the receipt is for index ${receipt.index}`);
  const checkpoint = trustCheckpoint(receipt.checkpoint, policy);
  if (receipt.index >= checkpoint.size) {
    throw new ReceiptError(`index ${receipt.index} is outside the checkpoint's tree of ${checkpoint.size}`);
  }
  verifyInclusion(receipt.index, checkpoint.size, Buffer.from(e.hash, 'hex'), receipt.proof, checkpoint.root);
  return checkpoint;
}
