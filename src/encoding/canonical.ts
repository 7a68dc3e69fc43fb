/**
 * Canonical JSON, RFC 8785 (JSON Canonicalization Scheme).
 *
 * JCS is the I-JSON subset serialised the way ECMAScript's JSON.stringify
 * serialises primitives (RFC 8785 §3.2.2), with object members sorted by the
 * UTF-16 code units of their names (§3.2.3) and no insignificant white space.
 * So primitives go through JSON.stringify and only object ordering is ours.
 *
 * Values that JSON cannot carry faithfully are rejected with the path of the
 * offending field, never coerced: NaN and ±Infinity (§3.2.2.3), strings with
 * lone surrogates (§3.2.2.2), undefined, functions, symbols, bigints, and
 * objects that are not plain (Date, Map, class instances...).
 *
 * What a caller gives to be recorded (canonicalizeInput) must also be I-JSON:
 * no noncharacters (RFC 7493 §2.1), no integers beyond ±(2^53−1) that a
 * reader could not take back exactly (§2.2; from 1e21 on JCS writes them
 * with an exponent, as any double). Entries already stored are written back
 * (canonicalize) whatever they hold, so that a log written before that rule
 * can still be read, copied and served, and verify names what breaks it.
 */
import { InvalidEntryError } from '../errors.js';

/** How deep an entry's data may nest: far more than a record needs, far less than the stack takes. */
export const MAX_DEPTH = 64;

/**
 * Canonical JSON text of `value`; throws InvalidEntryError naming the first
 * field JSON cannot represent (`path` names `value` itself). Objects and
 * arrays nested deeper than `maxDepth` are refused too.
 */
export function canonicalize(value: unknown, path = '$', maxDepth = Number.POSITIVE_INFINITY): string {
  return new Encoder(path, maxDepth, false).encode(value);
}

/** canonicalize(), refusing too what I-JSON does not allow: for what a caller gives to be recorded. */
export function canonicalizeInput(value: unknown, path = '$', maxDepth = Number.POSITIVE_INFINITY): string {
  return new Encoder(path, maxDepth, true).encode(value);
}

/** One canonicalisation: where it is (kept as parts, made a path only for an error) and what it is inside. */
class Encoder {
  readonly #root: string;
  readonly #maxDepth: number;
  readonly #path: (string | number)[] = [];
  readonly #ancestors: object[] = [];
  /** Whether I-JSON's rules on noncharacters and integers apply too. */
  readonly #input: boolean;

  constructor(root: string, maxDepth: number, input: boolean) {
    this.#root = root;
    this.#maxDepth = maxDepth;
    this.#input = input;
  }

  /** Why `text` cannot be encoded here, or null. */
  #badString(text: string): string | null {
    if (!MAYBE_BAD.test(text)) return null; // most text: no surrogate and nothing near a noncharacter
    if (!text.isWellFormed()) return 'contains a lone surrogate (not valid Unicode)';
    if (this.#input && NONCHARACTER.test(text)) {
      return 'contains a Unicode noncharacter (such as U+FFFF), which I-JSON does not allow';
    }
    return null;
  }

  #fail(problem: string): never {
    let path = this.#root;
    for (const part of this.#path) path = typeof part === 'number' ? `${path}[${part}]` : fieldPath(path, part);
    throw new InvalidEntryError(path, problem);
  }

  encode(value: unknown): string {
    switch (typeof value) {
      case 'string': {
        const bad = this.#badString(value);
        if (bad !== null) this.#fail(`string ${bad}`);
        return JSON.stringify(value);
      }
      case 'number':
        if (!Number.isFinite(value)) this.#fail(`${value} is not a JSON number`);
        if (
          this.#input &&
          Number.isInteger(value) &&
          Math.abs(value) > Number.MAX_SAFE_INTEGER &&
          Math.abs(value) < 1e21
        ) {
          this.#fail(`the integer ${value} is beyond ±(2^53−1), so it cannot be kept exactly: write it as a string`);
        }
        return JSON.stringify(value);
      case 'boolean':
        return value ? 'true' : 'false';
      case 'object': {
        if (value === null) return 'null';
        const ancestors = this.#ancestors;
        if (ancestors.includes(value)) this.#fail('circular reference');
        if (ancestors.length >= this.#maxDepth)
          this.#fail(`nests deeper than ${this.#maxDepth} levels, the most an entry may`);
        ancestors.push(value);
        const text = Array.isArray(value) ? this.#array(value) : this.#object(value);
        ancestors.pop();
        return text;
      }
      default:
        return this.#fail(`${typeof value} is not a JSON value`);
    }
  }

  #array(items: unknown[]): string {
    let text = '[';
    for (let i = 0; i < items.length; i++) {
      this.#path.push(i);
      // Holes in sparse arrays would silently become null in JSON.stringify.
      if (!(i in items)) this.#fail('sparse array hole is not a JSON value');
      text += i === 0 ? this.encode(items[i]) : `,${this.encode(items[i])}`;
      this.#path.pop();
    }
    return `${text}]`;
  }

  #object(object: object): string {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (proto?.constructor as { name?: string } | undefined)?.name ?? 'exotic';
      this.#fail(`${kind} is not a plain JSON object`);
    }
    if (Object.getOwnPropertySymbols(object).length > 0) this.#fail('symbol-keyed properties are not JSON');
    const record = object as Record<string, unknown>;
    // Array.prototype.sort compares strings by UTF-16 code units, as §3.2.3 requires.
    const names = Object.keys(record).sort();
    let text = '{';
    for (let k = 0; k < names.length; k++) {
      const name = names[k] as string;
      this.#path.push(name);
      const bad = this.#badString(name);
      if (bad !== null) this.#fail(`member name ${bad}`);
      text += `${k === 0 ? '' : ','}${JSON.stringify(name)}:${this.encode(record[name])}`;
      this.#path.pop();
    }
    return `${text}}`;
  }
}

/** JSON path of member `name` under `path`, quoted when it is not a plain identifier. */
export function fieldPath(path: string, name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`;
}

/** Any surrogate, or a character of the BMP's noncharacter ranges: text without one needs no closer look. */
const MAYBE_BAD = /[\uD800-\uDFFF\uFDD0-\uFDEF\uFFFE\uFFFF]/;
/**
 * Unicode noncharacters, which I-JSON strings must not hold (RFC 7493 §2.1):
 * U+FDD0..U+FDEF, and the last two code points of every plane (U+FFFE,
 * U+FFFF; U+1FFFE as the pair D83F DFFE, and so on to U+10FFFF).
 */
export const NONCHARACTER =
  /[\uFDD0-\uFDEF\uFFFE\uFFFF]|[\uD83F\uD87F\uD8BF\uD8FF\uD93F\uD97F\uD9BF\uD9FF\uDA3F\uDA7F\uDABF\uDAFF\uDB3F\uDB7F\uDBBF\uDBFF][\uDFFE\uDFFF]/;

/**
 * True when `text` is exactly the canonical encoding of `parsed` (its own
 * JSON.parse result) and nests at most `maxDepth` levels. This is the fast
 * check the verifier runs on every line: when every object's members already
 * come in sorted order, JSON.stringify emits JCS, so one native call decides
 * it. Otherwise (unsorted members, or integer-like names that V8 enumerates
 * first) it falls back to canonicalize. Both stop at `maxDepth`, so a line
 * nested to any depth cannot exhaust the stack.
 */
export function isCanonicalText(text: string, parsed: unknown, maxDepth: number): boolean {
  const sorted = membersSorted(parsed, maxDepth);
  if (sorted === 'too deep') return false;
  // JSON.stringify writes a lone surrogate, which canonicalize refuses, and only as a \u escape.
  if (sorted && !text.includes('\\u')) return JSON.stringify(parsed) === text;
  try {
    return canonicalize(parsed, '$', maxDepth) === text;
  } catch {
    return false; // parsed JSON that JCS rejects (a lone surrogate escape) is not canonical
  }
}

/** Text that may hold what I-JSON does not allow (a noncharacter, or 16 digits in a row): check it whole. */
export const MAYBE_NOT_IJSON = new RegExp(`\\d{16}|${NONCHARACTER.source}`);

/** Whether `value` nests more than `maxDepth` objects and arrays deep; it looks no deeper than that. */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  return membersSorted(value, maxDepth) === 'too deep';
}

/** Whether every object in `value` has its members in JCS order; 'too deep' past `depthLeft` levels. */
function membersSorted(value: unknown, depthLeft: number): boolean | 'too deep' {
  if (typeof value !== 'object' || value === null) return true;
  if (depthLeft === 0) return 'too deep';
  let sorted = true;
  if (Array.isArray(value)) {
    for (const item of value) {
      const inner = membersSorted(item, depthLeft - 1);
      if (inner === 'too deep') return inner;
      sorted &&= inner;
    }
    return sorted;
  }
  let previous: string | undefined;
  for (const name in value) {
    if (previous !== undefined && !(previous < name)) sorted = false;
    previous = name;
    const inner = membersSorted((value as Record<string, unknown>)[name], depthLeft - 1);
    if (inner === 'too deep') return inner;
    sorted &&= inner;
  }
  return sorted;
}
