/**
 * The entry: what a caller supplies, what the log adds, and how a line is
 * encoded and hashed. Pure code, no I/O.
 *
 * A stored entry is one line of RFC 8785 canonical JSON. Its hash is the
 * RFC 9162 §2.1.1 leaf hash of the line without its `hash` member:
 *   hash = SHA-256(0x00 || canonical bytes of the entry minus `hash`)
 * so the chain's hashes are also the Merkle tree's leaves.
 */
import { hash as digest, randomBytes, randomUUID } from 'node:crypto';
import { canonicalize, canonicalizeInput, fieldPath, MAX_DEPTH } from './encoding/canonical.js';
import { type EvidentError, InvalidEntryError } from './errors.js';

/** What a caller records. */
export interface EntryInput {
  /** Who acted: a user, agent, service or bot identifier. */
  actor: string;
  /** What was done, as a dotted verb such as `proposal.approve`. */
  action: string;
  /** What it was done to. */
  targets?: readonly string[] | undefined;
  /** How it ended, such as `success`, `denied`, `error`. */
  outcome?: string | undefined;
  /** Any further detail, as a plain JSON object. */
  data?: Record<string, unknown> | undefined;
}

/**
 * Through what an entry came, assigned by the service that appended it (never
 * by the caller): the name of the token it was appended with, and the
 * idempotency key the request carried. Covered by the hash like the rest.
 */
export interface Via {
  token: string;
  key?: string | undefined;
}

/** A stored entry, as it appears on its line. */
export interface Entry {
  /** Format version. */
  v: 1;
  /** The log this entry belongs to: copied from the log's first entry. */
  log: string;
  /** 0-based position in the log. */
  seq: number;
  /** RFC 3339 UTC time with milliseconds, assigned under the lock; never earlier than the previous entry's. */
  ts: string;
  /** Unique identifier (a random UUID). */
  id: string;
  actor: string;
  action: string;
  targets?: string[];
  outcome?: string;
  data?: Record<string, unknown>;
  /** Hash of the previous entry; GENESIS_PREV for seq 0. */
  prev: string;
  /** This entry's leaf hash, hex. */
  hash: string;
  /** Set by `evident serve`: the token the entry was appended with, and the request's idempotency key. */
  via?: Via;
}

/** The position an entry is appended after: the log's current last entry. */
export interface Head {
  /** The log's identifier (null until the first entry is written). */
  log: string | null;
  /** Number of entries, which is the next entry's seq. */
  size: number;
  /** Hash of the last entry, or GENESIS_PREV for an empty log. */
  hash: string;
  /** Time of the last entry, or null for an empty log. */
  ts: string | null;
}

/** `prev` of the first entry. */
export const GENESIS_PREV = '0'.repeat(64);

export const EMPTY_HEAD: Head = Object.freeze({
  log: null,
  size: 0,
  hash: GENESIS_PREV,
  ts: null,
});

export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024;

/** The head a log has once `entry` is its last. */
export function headOf(entry: Entry): Head {
  return { log: entry.log, size: entry.seq + 1, hash: entry.hash, ts: entry.ts };
}

/**
 * An input validated and encoded ahead of the lock: the canonical JSON of
 * the caller's members, split around the members the log assigns, so that
 * sealing under the lock is string concatenation and one hash.
 * Canonical member order: action actor data | hash | id log outcome prev seq targets ts v via.
 */
export interface PreparedEntry {
  /** What the caller gave (for a failed record()'s report). */
  readonly input: EntryInput;
  /** The caller's fields as they were when validated: what the stored line holds, whatever the caller changes later. */
  readonly fields: {
    actor: string;
    action: string;
    targets: string[] | undefined;
    outcome: string | undefined;
    via: Via | undefined;
  };
  /** `"action":…,"actor":…[,"data":…]` */
  readonly before: string;
  /** `,"outcome":…` or '' */
  readonly outcome: string;
  /** `,"targets":…` or '' */
  readonly targets: string;
  /** `,"via":{…}` or '' */
  readonly via: string;
  /** Canonical JSON of data, or null: parsed back for the returned entry, so it is a copy of what was stored. */
  readonly data: string | null;
  /** Upper bound of the final line's UTF-8 length, newline included. */
  readonly maxBytes: number;
}

const ACTION = /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;
const MAX_NAME = 256;
const INPUT_FIELDS = new Set(['actor', 'action', 'targets', 'outcome', 'data']);

// `,"hash":"<64>"` + `,"id":"<36>"` + `,"log":"<32>"` + `,"prev":"<64>"` + `,"seq":<16 digits>`
// + `,"ts":"<24>"` + `,"v":1` + `}` + `\n`: the most the log's own members add to a line.
const ASSIGNED_BYTES = 75 + 42 + 39 + 74 + 23 + 30 + 6 + 2;

/** Actions the log writes itself (its signing declaration, a re-anchor): callers cannot append them. */
export const RESERVED_ACTIONS = 'evident.';

/**
 * Validates `input` and encodes it; throws InvalidEntryError naming the
 * field. `system`: an entry the log writes itself, whose action may be one
 * of its own.
 */
export function prepareEntry(
  input: unknown,
  maxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
  system = false,
  via?: Via,
): PreparedEntry {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidEntryError('$', 'an entry must be a JSON object with actor and action');
  }
  const record = input as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!INPUT_FIELDS.has(name)) {
      const why = ['v', 'log', 'seq', 'ts', 'id', 'prev', 'hash', 'via'].includes(name)
        ? 'is assigned by the log and cannot be supplied'
        : 'is not an entry field (expected actor, action, targets, outcome, data)';
      throw new InvalidEntryError(fieldPath('$', name), why);
    }
  }
  const actor = requireName(record.actor, '$.actor');
  const action = requireName(record.action, '$.action');
  if (!ACTION.test(action)) {
    throw new InvalidEntryError('$.action', `${JSON.stringify(action)} is not a dotted verb such as proposal.approve`);
  }
  if (!system && action.startsWith(RESERVED_ACTIONS)) {
    throw new InvalidEntryError('$.action', `actions under ${RESERVED_ACTIONS} are the log's own`);
  }
  let targets = '';
  if (record.targets !== undefined) {
    if (!Array.isArray(record.targets)) throw new InvalidEntryError('$.targets', 'must be an array of strings');
    for (const [i, target] of record.targets.entries()) requireName(target, `$.targets[${i}]`, 4096);
    targets = `,"targets":${canonicalizeInput(record.targets, '$.targets')}`;
  }
  let outcome = '';
  if (record.outcome !== undefined) {
    outcome = `,"outcome":${canonicalizeInput(requireName(record.outcome, '$.outcome'), '$.outcome')}`;
  }
  let before = `"action":${canonicalizeInput(action, '$.action')},"actor":${canonicalizeInput(actor, '$.actor')}`;
  let data: string | null = null;
  if (record.data !== undefined) {
    if (typeof record.data !== 'object' || record.data === null || Array.isArray(record.data)) {
      throw new InvalidEntryError('$.data', 'must be a plain JSON object');
    }
    data = canonicalizeInput(record.data, '$.data', MAX_DEPTH);
    before += `,"data":${data}`;
  }
  const viaText = via === undefined ? '' : `,"via":${canonicalizeInput(checkVia(via), '$.via')}`;
  const maxBytes =
    Buffer.byteLength(before) +
    Buffer.byteLength(outcome) +
    Buffer.byteLength(targets) +
    Buffer.byteLength(viaText) +
    ASSIGNED_BYTES;
  if (maxBytes > maxEntryBytes) {
    throw new InvalidEntryError('$', `entry encodes to ${maxBytes} bytes, over the ${maxEntryBytes}-byte limit`);
  }
  const fields = {
    actor,
    action,
    targets: record.targets === undefined ? undefined : [...(record.targets as string[])],
    outcome: record.outcome as string | undefined,
    via: via === undefined ? undefined : { ...via },
  };
  return { input: input as EntryInput, fields, before, outcome, targets, via: viaText, data, maxBytes };
}

/** prepareEntry() for each of a batch; an error in a batch of several names the entry's index. */
export function prepareBatch(
  inputs: readonly unknown[],
  maxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
  via?: Via,
): PreparedEntry[] {
  const prepared: PreparedEntry[] = [];
  for (const [index, input] of inputs.entries()) {
    try {
      prepared.push(prepareEntry(input, maxEntryBytes, false, via));
    } catch (error) {
      if (error instanceof InvalidEntryError && inputs.length > 1) {
        throw new InvalidEntryError(error.field, error.problem, index);
      }
      throw error;
    }
  }
  return prepared;
}

/**
 * Which entry of a batch of `count` an error is about, from 0, if it is
 * about one: its index, or for a batch of one, that entry when it was
 * refused (prepareBatch names no index for a lone entry).
 */
export function entryIndexOf(error: EvidentError, count: number): number | undefined {
  return error.index ?? (error instanceof InvalidEntryError && count === 1 ? 0 : undefined);
}

/** The canonical JSON of what the caller gave (the prepared entry without the members the log assigns). */
export function inputText(p: PreparedEntry): string {
  return `{${p.before}${p.outcome}${p.targets}}`;
}

/** `via` as a service gives it: a token name, and an idempotency key of visible ASCII (no space, quote or backslash). */
function checkVia(via: Via): Via {
  const printable = /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/;
  if (typeof via.token !== 'string' || !printable.test(via.token)) {
    throw new InvalidEntryError(
      '$.via.token',
      'must be 1 to 255 visible ASCII characters (no space, quote or backslash)',
    );
  }
  if (via.key !== undefined && (typeof via.key !== 'string' || !printable.test(via.key))) {
    throw new InvalidEntryError(
      '$.via.key',
      'must be 1 to 255 visible ASCII characters (no space, quote or backslash)',
    );
  }
  return via.key === undefined ? { token: via.token } : { key: via.key, token: via.token };
}

function requireName(value: unknown, field: string, max = MAX_NAME): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidEntryError(field, 'must be a non-empty string');
  if (value.length > max) throw new InvalidEntryError(field, `is ${value.length} characters, over the limit of ${max}`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) {
    throw new InvalidEntryError(field, 'must not contain control characters (C0, DEL or C1)');
  }
  return value;
}

/** The fields the log assigns when it seals an entry. */
export interface Assigned {
  log: string;
  seq: number;
  ts: string;
  id: string;
  prev: string;
}

/** A sealed entry: its line (with trailing newline), hash, and the entry as an object. */
export interface Sealed {
  line: string;
  hash: string;
  entry: Entry;
}

/** Seals a prepared entry at a position: the canonical line, its leaf hash, and the entry it encodes. */
export function sealEntry(p: PreparedEntry, a: Assigned): Sealed {
  const { line, hash } = sealLine(p, a);
  return { line, hash, entry: sealedEntry(p, a, hash) };
}

/** The canonical line (with its newline) of a prepared entry at a position, and its leaf hash. */
export function sealLine(p: PreparedEntry, a: Assigned): { line: string; hash: string } {
  const out = Buffer.allocUnsafe(p.maxBytes);
  const { end, hash } = sealInto(p, a, out, 0);
  return { line: out.toString('utf8', 0, end), hash };
}

/** Where sealInto puts the bytes a hash covers: 0x00, then the line without its hash member. */
let covered = Buffer.allocUnsafe(64 * 1024);
const HASH_MEMBER = Buffer.from('"hash":"');

/**
 * Writes the canonical line (with its newline) of a prepared entry at a
 * position into `out` at `at`, which has room for p.maxBytes; returns where
 * it ends, and its leaf hash. The line's text is encoded once: the bytes
 * its hash covers are written and hashed, then copied around the hash member.
 */
export function sealInto(p: PreparedEntry, a: Assigned, out: Buffer, at: number): { end: number; hash: string } {
  if (covered.length < p.maxBytes + 1) covered = Buffer.allocUnsafe(2 * p.maxBytes);
  const after = `"id":"${a.id}","log":"${a.log}"${p.outcome},"prev":"${a.prev}","seq":${a.seq}${p.targets},"ts":"${a.ts}","v":1${p.via}}`;
  covered[0] = 0x00;
  covered[1] = 0x7b; // {
  let n = 2 + covered.write(p.before, 2);
  covered[n++] = 0x2c; // ,
  const split = n; // `{before,` | `after`
  n += covered.write(after, n);
  const hash = digest('sha256', covered.subarray(0, n), 'hex');
  let end = at + covered.copy(out, at, 1, split);
  end += HASH_MEMBER.copy(out, end);
  end += out.write(hash, end, 'latin1');
  out[end++] = 0x22; // "
  out[end++] = 0x2c; // ,
  end += covered.copy(out, end, split, n);
  out[end++] = 0x0a;
  return { end, hash };
}

/** The entry a sealed line encodes, as an object (data parsed back from its canonical JSON: a copy of what was stored). */
export function sealedEntry(p: PreparedEntry, a: Assigned, hash: string): Entry {
  const { actor, action, targets, outcome, via } = p.fields;
  // Members in canonical order, as a stored line holds them: JSON.stringify of it is the entry as read back.
  const entry = { action, actor } as Entry;
  if (p.data !== null) entry.data = JSON.parse(p.data) as Record<string, unknown>;
  entry.hash = hash;
  entry.id = a.id;
  entry.log = a.log;
  if (outcome !== undefined) entry.outcome = outcome;
  entry.prev = a.prev;
  entry.seq = a.seq;
  if (targets !== undefined) entry.targets = [...targets];
  entry.ts = a.ts;
  entry.v = 1;
  if (via !== undefined) entry.via = via.key === undefined ? { token: via.token } : { key: via.key, token: via.token };
  return entry;
}

/** RFC 9162 §2.1.1 leaf hash, hex: SHA-256(0x00 || UTF-8 of text). U+0000 encodes as the single byte 0x00. */
export function leafHashOfText(text: string): string {
  return digest('sha256', `\u0000${text}`, 'hex');
}

/** The canonical text an entry's hash covers: the entry without its `hash` member. */
export function hashedText(entry: Entry): string {
  const { hash: _omit, ...rest } = entry;
  return canonicalize(rest);
}

/** A new random log identifier: 128 bits, hex. */
export function newLogId(): string {
  return randomBytes(16).toString('hex');
}

/** A new unique entry identifier. */
export function newEntryId(): string {
  return randomUUID();
}

/** The timestamp for an entry sealed now after `previous`: RFC 3339 UTC, ms, never earlier than `previous`. */
export function nextTimestamp(previous: string | null, now: number = Date.now()): string {
  const ts = new Date(now).toISOString();
  return previous !== null && previous > ts ? previous : ts;
}
