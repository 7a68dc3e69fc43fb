/**
 * The verifier's fast path: checks that a line is an evident entry in RFC 8785
 * canonical form in one pass over its bytes, and pulls out the members the
 * chain rules need. Pure code.
 *
 * A canonical entry has a fixed shape — members in sorted order, no white
 * space — so most of the line can be matched literally:
 *
 *   {"action":S,"actor":S[,"data":{…}],"hash":"H64","id":S,"log":"H32"
 *    [,"outcome":S],"prev":"H64","seq":N[,"targets":[S,…]],"ts":"T","v":1}
 *
 * Only `data` is free-form; it alone goes through JSON.parse and the
 * canonical check. The scan accepts a strict subset of what the full check
 * (parseEntry + isCanonicalText) accepts: any line with a backslash or a byte
 * below 0x20, invalid UTF-8, or any other deviation returns null, and the
 * caller runs the full check, which decides and names the failure. So the fast
 * path can speed verification up but never change its verdict.
 */
import { isUtf8 } from 'node:buffer';
import { isCanonicalText } from './encoding/canonical.js';

export interface ScannedEntry {
  log: string;
  seq: number;
  ts: string;
  prev: string;
  hash: string;
  /** Byte index of `"hash":` in the buffer: where the member the hash does not cover begins. */
  hashMember: number;
}

// A string whose characters need no escaping: then its text is its canonical form.
const S = '"[^"\\\\\\u0000-\\u001f]*"';
/**
 * The whole canonical shape of an entry line. Groups: 1 data (checked
 * separately), 2 hash, 3 log, 4 prev, 5 seq, 6 ts. `data` is the only
 * free-form member, matched lazily: it ends at the first `},"hash":"` after
 * which the rest of the line has the fixed shape. There is only one such
 * place: the rest of the line holds `"hash":` once, as its first key, and its
 * strings cannot contain quotes, so no earlier `"hash":` can start it.
 */
const SHAPE = new RegExp(
  `^\\{"action":${S},"actor":${S}(?:,"data":(\\{[^]*?\\}))?,"hash":"([0-9a-f]{64})","id":"[^"\\\\\\u0000-\\u001f]+",` +
    `"log":"([0-9a-f]{32})"(?:,"outcome":${S})?,"prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,15})` +
    `(?:,"targets":\\[(?:${S}(?:,${S})*)?\\])?,"ts":"(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z)","v":1\\}$`,
);
/** The text that starts the top-level hash member (after the comma that precedes it). */
export const HASH_KEY = Buffer.from(',"hash":"');

/** The entry's chain members if the line [from, to) is a canonical entry of the usual shape; null to fall back. */
export function scanEntry(bytes: Buffer, from: number, to: number): ScannedEntry | null {
  // Decoding replaces invalid UTF-8 with U+FFFD, so invalid bytes could look like valid text: refuse them first.
  if (!isUtf8(bytes.subarray(from, to))) return null;
  const text = bytes.toString('utf8', from, to);
  const ascii = text.length === to - from; // valid UTF-8 of equal length in UTF-16 units is all ASCII
  const m = SHAPE.exec(text);
  if (m === null) return null;
  const dataText = m[1];
  if (dataText !== undefined) {
    let data: unknown;
    try {
      data = JSON.parse(dataText);
    } catch {
      return null;
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data) || !isCanonicalText(dataText, data)) {
      return null;
    }
  }
  const seq = Number(m[5]);
  if (!Number.isSafeInteger(seq)) return null;
  const key = ascii ? from + text.lastIndexOf(',"hash":"') : bytes.lastIndexOf(HASH_KEY, to - HASH_KEY.length);
  return {
    log: m[3] as string,
    seq,
    ts: m[6] as string,
    prev: m[4] as string,
    hash: m[2] as string,
    hashMember: key + 1,
  };
}
