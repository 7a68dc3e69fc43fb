/**
 * The hash chain's rules, checked one line at a time. Pure code, no I/O:
 * the verifier feeds it lines however it reads them.
 *
 * A line is good when, in this order of checks:
 *   it parses as an entry               (else `malformed`)
 *   it is canonical JSON, RFC 8785      (else `not-canonical`)
 *   its hash covers its bytes           (else `hash-mismatch`)
 *   it belongs to this log              (else `foreign-entry`)
 *   its seq is the next position        (else `seq-gap`)
 *   its prev is the previous hash       (else `prev-mismatch`)
 *   its ts is not before the previous   (else `time-regression`)
 * and the file ends with a newline      (else `torn-tail`).
 */

import { isUtf8 } from 'node:buffer';
import { hash as digest } from 'node:crypto';
import {
  canonicalizeInput,
  isCanonicalText,
  MAX_DEPTH,
  MAYBE_NOT_IJSON,
  nestsDeeperThan,
} from './encoding/canonical.js';
import { EMPTY_HEAD, type Entry, GENESIS_PREV, type Head, leafHashOfText } from './entry.js';
import { HASH_KEY, scanEntry } from './entry-scan.js';
import { InvalidEntryError } from './errors.js';

export type FailureReason =
  | 'malformed'
  | 'not-canonical'
  | 'seq-gap'
  | 'prev-mismatch'
  | 'hash-mismatch'
  | 'foreign-entry'
  | 'torn-tail'
  | 'time-regression'
  /** Fewer entries than a trusted checkpoint covers: the tail was cut off. */
  | 'truncated'
  /** The entries a trusted checkpoint covers do not hash to its root: history was rewritten. */
  | 'rewritten'
  /** A signing log whose own checkpoint is gone, or not one it signed. */
  | 'no-checkpoint'
  /** Over HTTP: the log's key signed a checkpoint that does not extend one verified before. */
  | 'split-view'
  /** Over HTTP: a tile the server serves is not the tree's hashes over the entries it serves. */
  | 'tile-mismatch';

/** The first bad entry: its expected seq, 1-based line number, byte offset and why. */
export interface VerifyFailure {
  /** The first bad entry (0 for a `rewritten` history not located: the message says so). */
  seq: number;
  /** Its line (1-based). */
  line: number;
  /** Its byte offset in the record; -1 when the tree, not the line, showed it (`rewritten`). */
  offset: number;
  reason: FailureReason;
  message: string;
}

const LOG_ID = /^[0-9a-f]{32}$/;
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FIELDS = new Set([
  'v',
  'log',
  'seq',
  'ts',
  'id',
  'actor',
  'action',
  'targets',
  'outcome',
  'data',
  'prev',
  'hash',
  'via',
]);

/** Parses a line into an Entry, or returns why it is not one. */
export function parseEntry(text: string): Entry | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const e = value as Record<string, unknown>;
  if (e.v !== 1) return `unknown format version ${JSON.stringify(e.v)}`;
  if (typeof e.log !== 'string' || !LOG_ID.test(e.log)) return 'log is not a 32-digit hex identifier';
  if (!Number.isSafeInteger(e.seq) || (e.seq as number) < 0) return 'seq is not a non-negative integer';
  if (typeof e.ts !== 'string' || !TS.test(e.ts)) return 'ts is not an RFC 3339 UTC time with milliseconds';
  if (typeof e.id !== 'string' || e.id.length === 0) return 'id is missing';
  if (typeof e.actor !== 'string' || typeof e.action !== 'string') return 'actor or action is missing';
  // Length only: the verifier compares prev and hash with hashes it computed, which settles their digits.
  if (typeof e.prev !== 'string' || e.prev.length !== 64) return 'prev is not a 64-digit hex hash';
  if (typeof e.hash !== 'string' || e.hash.length !== 64) return 'hash is not a 64-digit hex hash';
  if (e.targets !== undefined && !(Array.isArray(e.targets) && e.targets.every((t) => typeof t === 'string'))) {
    return 'targets is not an array of strings';
  }
  if (e.outcome !== undefined && typeof e.outcome !== 'string') return 'outcome is not a string';
  if (e.data !== undefined && (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data))) {
    return 'data is not an object';
  }
  if (e.data !== undefined && nestsDeeperThan(e.data, MAX_DEPTH)) return `data nests deeper than ${MAX_DEPTH} levels`;
  if (e.via !== undefined) {
    const via = e.via as Record<string, unknown> | null;
    if (typeof via !== 'object' || via === null || Array.isArray(via) || typeof via.token !== 'string') {
      return 'via is not an object with a token';
    }
    if (
      Object.keys(via).some((k) => k !== 'token' && k !== 'key') ||
      (via.key !== undefined && typeof via.key !== 'string')
    ) {
      return 'via holds something other than token and key';
    }
  }
  for (const name in e) if (!FIELDS.has(name)) return `unknown member ${JSON.stringify(name)}`;
  return e as unknown as Entry;
}

/** Why a parsed line holds what evident never writes (a lone surrogate, a noncharacter, an inexact integer); else null. */
function notIJson(parsed: Entry): string | null {
  try {
    canonicalizeInput(parsed, '$', MAX_DEPTH + 1);
    return null;
  } catch (error) {
    if (!(error instanceof InvalidEntryError)) throw error;
    return `line is not I-JSON: ${error.field} ${error.problem}`;
  }
}

const HASH_MEMBER_BYTES = 74; // "hash":"<64 hex>",

/**
 * The leaf hash a canonical line should carry, from its UTF-8 bytes [from, to)
 * and where its top-level `"hash":` member starts, without decoding or re-encoding:
 * SHA-256 over 0x00, the bytes before the member and the bytes after it,
 * gathered in `scratch` (grown as needed).
 */
function recomputeHashOfBytes(
  bytes: Buffer,
  from: number,
  to: number,
  memberStart: number,
  scratch: { buffer: Buffer },
): string {
  if (memberStart <= from) return '';
  const memberEnd = memberStart + HASH_MEMBER_BYTES;
  const length = 1 + (memberStart - from) + (to - memberEnd);
  if (scratch.buffer.length < length) scratch.buffer = Buffer.allocUnsafe(length * 2);
  const out = scratch.buffer;
  out[0] = 0;
  bytes.copy(out, 1, from, memberStart);
  bytes.copy(out, 1 + memberStart - from, memberEnd, to);
  return digest('sha256', out.subarray(0, length), 'hex');
}

/** The members that tie an entry to its neighbours. */
export type ChainLink = Pick<Entry, 'log' | 'seq' | 'ts' | 'prev' | 'hash'>;

/** The members a store indexes entries by, as the line holds them; `targets` as canonical JSON text, or null. */
export interface IndexedMembers {
  ts: string;
  actor: string;
  action: string;
  targets: string | null;
}

/** Checks a log's lines in order. Holds only the previous entry's hash and time: constant memory. */
export class ChainVerifier {
  #logId: string | null;
  #size: number;
  #hash: string;
  #ts: string | null;
  /** Verifying a range from the middle of a log: the first line is taken as it is, to be linked up later. */
  #free: boolean;
  #first: ChainLink | null = null;
  #indexed: IndexedMembers | null = null;

  /**
   * `start`: the head the next line must follow (default: an empty log, so the
   * first entry must be seq 0 with the genesis prev). `null` starts anywhere:
   * the first line's own seq, prev, log and time are taken as given, and
   * `first` keeps them so a caller can check the link afterwards (linkFailure).
   */
  constructor(start: Head | null = EMPTY_HEAD) {
    this.#free = start === null;
    this.#logId = start?.log ?? null;
    this.#size = start?.size ?? 0;
    this.#hash = start?.hash ?? GENESIS_PREV;
    this.#ts = start?.ts ?? null;
  }

  /** Hash of the last entry accepted (the genesis prev before any). */
  get lastHash(): string {
    return this.#hash;
  }

  /** The first entry this verifier accepted. */
  get first(): ChainLink | null {
    return this.#first;
  }

  /** The indexed members of the last entry accepted: for a store to check the columns it copied from it. */
  get indexed(): IndexedMembers | null {
    return this.#indexed;
  }

  /** Entries accepted so far, and the last one's hash. */
  get head(): Head {
    return {
      log: this.#logId,
      size: this.#size,
      hash: this.#hash,
      ts: this.#ts,
    };
  }

  readonly #scratch = { buffer: Buffer.allocUnsafe(4096) };

  /** Checks the next complete line (without its newline); null when it is good. */
  check(text: string, offset: number): VerifyFailure | null {
    const bytes = Buffer.from(text, 'utf8');
    return this.checkBytes(bytes, 0, bytes.length, offset);
  }

  /**
   * check(), for a line given as bytes [from, to) of `bytes`. Lines of the usual
   * shape take the one-pass scan (entry-scan.ts); anything else takes the full
   * parse, which alone names malformed and non-canonical lines.
   */
  checkBytes(bytes: Buffer, from: number, to: number, offset: number): VerifyFailure | null {
    const seq = this.#size;
    const fail = (reason: FailureReason, message: string): VerifyFailure => ({
      seq,
      line: seq + 1,
      offset,
      reason,
      message,
    });
    const scanned = scanEntry(bytes, from, to);
    let entry: ChainLink;
    let hash: string;
    let indexed: IndexedMembers;
    if (scanned !== null) {
      entry = scanned;
      hash = leafHashOfText(scanned.covered);
      indexed = scanned;
    } else {
      // Decoding would put U+FFFD for invalid bytes, and the entry read back would not be the bytes hashed.
      if (!isUtf8(bytes.subarray(from, to))) return fail('malformed', 'line is not valid UTF-8');
      const text = bytes.toString('utf8', from, to);
      const parsed = parseEntry(text);
      if (typeof parsed === 'string') return fail('malformed', parsed);
      if (!isCanonicalText(text, parsed, MAX_DEPTH + 1)) {
        const refused = notIJson(parsed);
        if (refused !== null) return fail('malformed', refused);
        return fail('not-canonical', 'line is not RFC 8785 canonical JSON');
      }
      // What append refuses, in a line sealed some other way (or before the rule): malformed, named.
      const refused = MAYBE_NOT_IJSON.test(text) ? notIJson(parsed) : null;
      if (refused !== null) return fail('malformed', refused);
      entry = parsed;
      const targets = parsed.targets === undefined ? null : JSON.stringify(parsed.targets);
      indexed = { ts: parsed.ts, actor: parsed.actor, action: parsed.action, targets };
      hash = recomputeHashOfBytes(
        bytes,
        from,
        to,
        bytes.lastIndexOf(HASH_KEY, to - HASH_KEY.length) + 1,
        this.#scratch,
      );
    }
    if (hash !== entry.hash) {
      return fail('hash-mismatch', 'hash does not match the entry');
    }
    if (this.#free) {
      this.#free = false;
      this.#size = entry.seq; // numbering follows the range's own first entry
    } else {
      const broken = this.#linkProblem(entry);
      if (broken !== null) return fail(broken[0], broken[1]);
    }
    this.#first ??= { log: entry.log, seq: entry.seq, ts: entry.ts, prev: entry.prev, hash: entry.hash };
    this.#logId = entry.log;
    this.#size = entry.seq + 1;
    this.#hash = entry.hash;
    this.#ts = entry.ts;
    this.#indexed = indexed;
    return null;
  }

  /** Why `entry` cannot follow the current head, in the order of the rules; null when it can. */
  #linkProblem(entry: ChainLink): [FailureReason, string] | null {
    const seq = this.#size;
    if (this.#logId !== null && entry.log !== this.#logId) {
      return ['foreign-entry', `entry belongs to log ${entry.log}, not ${this.#logId}`];
    }
    if (entry.seq !== seq) return ['seq-gap', `expected seq ${seq}, found ${entry.seq}`];
    if (entry.prev !== this.#hash) return ['prev-mismatch', `prev does not match the hash of entry ${seq - 1}`];
    if (this.#ts !== null && entry.ts < this.#ts) {
      return ['time-regression', `ts ${entry.ts} is before the previous entry's ${this.#ts}`];
    }
    return null;
  }

  /**
   * The failure, if any, of a range whose first entry is `first` (at `offset`)
   * following this verifier's head: the chain rules a line-by-line pass would
   * have applied to that entry.
   */
  linkFailure(first: ChainLink, offset: number): VerifyFailure | null {
    const broken = this.#linkProblem(first);
    if (broken === null) return null;
    return { seq: this.#size, line: this.#size + 1, offset, reason: broken[0], message: broken[1] };
  }

  /** The failure for bytes after the last newline: a write that never completed. */
  tornTail(offset: number, bytes: number): VerifyFailure {
    return {
      seq: this.#size,
      line: this.#size + 1,
      offset,
      reason: 'torn-tail',
      message: `last line is incomplete (${bytes} bytes without a newline)`,
    };
  }
}
