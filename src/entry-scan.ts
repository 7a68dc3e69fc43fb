/**
 * The verifier's fast path: checks that a line is an evident entry in RFC 8785
 * canonical form in one pass over its bytes, and pulls out the members the
 * chain rules need. Pure code.
 *
 * A canonical entry has a fixed shape — members in sorted order, no white
 * space — so most of the line can be matched literally:
 *
 *   {"action":S,"actor":S[,"data":{…}],"hash":"H64","id":S,"log":"H32"
 *    [,"outcome":S],"prev":"H64","seq":N[,"targets":[S,…]],"ts":"T","v":1
 *    [,"via":{["key":S,]"token":S}]}
 *
 * Only `data` is free-form; it alone goes through JSON.parse and the
 * canonical check. The scan accepts a strict subset of what the full check
 * (parseEntry + isCanonicalText) accepts: any line with a backslash or a byte
 * below 0x20, invalid UTF-8, a noncharacter, or any other deviation returns null, and the
 * caller runs the full check, which decides and names the failure. So the fast
 * path can speed verification up but never change its verdict.
 */
import { isUtf8 } from 'node:buffer';
import { isCanonicalText, MAX_DEPTH, NONCHARACTER } from './encoding/canonical.js';

export interface ScannedEntry {
  log: string;
  seq: number;
  ts: string;
  prev: string;
  hash: string;
  actor: string;
  action: string;
  /** The canonical JSON text of `targets`, or null when the entry has none. */
  targets: string | null;
  /** The text the entry's hash covers: the line without its `"hash":"…",` member. */
  covered: string;
}

// A string whose characters need no escaping: then its text is its canonical form.
const C = '[^"\\\\\\u0000-\\u001f]*';
const S = `"${C}"`;
// 64 characters needing no escapes: the full check asks no more of hash and prev, whose digits are settled
// by comparing them with computed hashes (and this class is twice as fast as [0-9a-f] in V8's regexp engine).
const H64 = '([^"\\\\\\u0000-\\u001f]{64})';
/**
 * The whole canonical shape of an entry line. Groups: 1 action, 2 actor
 * (between their quotes), 3 data (checked separately), 4 hash, 5 log, 6 prev, 7 seq,
 * 8 targets, 9 ts. `data` is the only
 * free-form member, matched lazily: it ends at the first `},"hash":"` after
 * which the rest of the line has the fixed shape. There is only one such
 * place: the rest of the line holds `"hash":` once, as its first key, and its
 * strings cannot contain quotes, so no earlier `"hash":` can start it.
 */
const SHAPE = new RegExp(
  `^\\{"action":"(${C})","actor":"(${C})"(?:,"data":(\\{[^]*?\\}))?,"hash":"${H64}","id":"[^"\\\\\\u0000-\\u001f]+",` +
    `"log":"([0-9a-f]{32})"(?:,"outcome":${S})?,"prev":"${H64}","seq":(0|[1-9][0-9]{0,15})` +
    `(?:,"targets":(\\[(?:${S}(?:,${S})*)?\\]))?,"ts":"(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z)","v":1` +
    `(?:,"via":\\{(?:"key":${S},)?"token":${S}\\})?\\}$`,
);
// A flat object of canonical scalars: strings needing no escapes, integers of at most 15 digits (exactly
// representable, so JSON.stringify writes them back the same; no -0), true, false, null.
const SCALAR = `(?:${S}|0|-?[1-9][0-9]{0,14}|true|false|null)`;
const FLAT_OBJECT = new RegExp(`^\\{(?:${S}:${SCALAR}(?:,${S}:${SCALAR})*)?\\}$`);

/**
 * True when `text` is a flat object of canonical scalars with strictly sorted
 * member names: canonical JSON without a parse. False means "not shown", and
 * the caller parses. Names and string values hold no quotes, and other scalars
 * no commas, so members split on the quotes and commas that the shape allows.
 */
function isCanonicalFlatObject(text: string): boolean {
  if (!FLAT_OBJECT.test(text)) return false;
  let previous: string | null = null;
  for (let i = 1; i < text.length - 1; ) {
    const nameEnd = text.indexOf('"', i + 1);
    const name = text.slice(i + 1, nameEnd);
    if (previous !== null && !(previous < name)) return false; // UTF-16 order, as RFC 8785 §3.2.3
    previous = name;
    const value = nameEnd + 2;
    const valueEnd = text.charCodeAt(value) === 0x22 ? text.indexOf('"', value + 1) + 1 : nextComma(text, value);
    i = valueEnd + 1;
  }
  return true;
}

function nextComma(text: string, from: number): number {
  const comma = text.indexOf(',', from);
  return comma < 0 ? text.length - 1 : comma;
}

/** The text that starts the top-level hash member (after the comma that precedes it). */
export const HASH_KEY = Buffer.from(',"hash":"');
/** `"hash":"` + 64 characters + `",`, in UTF-16 code units as the shape counts them. */
const HASH_MEMBER_LENGTH = 74;

/** The entry's chain members if the line [from, to) is a canonical entry of the usual shape; null to fall back. */
export function scanEntry(bytes: Buffer, from: number, to: number): ScannedEntry | null {
  // Decoding replaces invalid UTF-8 with U+FFFD, so invalid bytes could look like valid text: refuse them first.
  if (!isUtf8(bytes.subarray(from, to))) return null;
  const text = bytes.toString('utf8', from, to);
  if (NONCHARACTER.test(text)) return null; // not I-JSON: the full check names it
  const m = SHAPE.exec(text);
  if (m === null) return null;
  const dataText = m[3];
  // Digits that may be an integer I-JSON refuses: the full check looks.
  if (dataText !== undefined && /\d{16}/.test(dataText)) return null;
  if (dataText !== undefined && !isCanonicalFlatObject(dataText)) {
    let data: unknown;
    try {
      data = JSON.parse(dataText);
    } catch {
      return null;
    }
    if (
      typeof data !== 'object' ||
      data === null ||
      Array.isArray(data) ||
      !isCanonicalText(dataText, data, MAX_DEPTH)
    ) {
      return null;
    }
  }
  const seq = Number(m[7]);
  if (!Number.isSafeInteger(seq)) return null;
  const member = text.lastIndexOf(',"hash":"') + 1; // the top-level one: see SHAPE
  const covered = text.slice(0, member) + text.slice(member + HASH_MEMBER_LENGTH);
  return {
    log: m[5] as string,
    seq,
    ts: m[9] as string,
    prev: m[6] as string,
    hash: m[4] as string,
    // Strings of the shape need no escapes: between the quotes is the value.
    action: m[1] as string,
    actor: m[2] as string,
    targets: m[8] ?? null,
    covered,
  };
}
