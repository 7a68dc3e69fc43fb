/**
 * Parsing JSON text as I-JSON (RFC 7493), so that what is recorded is
 * exactly what was given, or nothing. JSON.parse would quietly keep the last
 * of two members with one name, round 9007199254740993 to …992, turn 1e400
 * into Infinity and 1e-400 into 0, and overflow the stack on deep nesting.
 * Here each of those is refused, naming the JSON path:
 *
 *   - duplicate member names (RFC 7493 §2.3);
 *   - an integer literal beyond ±(2^53−1), which a double does not hold
 *     exactly (§2.2); a number that overflows, or a non-zero literal that
 *     underflows to zero;
 *   - nesting deeper than an entry may (its object, and MAX_DEPTH levels of
 *     data within it).
 *
 * Lone surrogates and noncharacters are refused when the value is
 * canonicalised (canonical.ts), as are integers beyond ±(2^53−1) a caller
 * builds as values; invalid UTF-8
 * is refused where the bytes are read (the text here is already decoded).
 *
 * Pure code. It validates in one pass over the text, then JSON.parse builds
 * the value (the same value, now that nothing is ambiguous).
 */
import { InvalidEntryError } from '../errors.js';
import { fieldPath, MAX_DEPTH } from './canonical.js';

export { MAX_DEPTH };

const MAX_SAFE = 2n ** 53n - 1n;
const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** JSON.parse of `text`, refusing what I-JSON does not allow; errors name `where` and the path. */
export function parseIJson(text: string, where: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidEntryError(where, `not valid JSON (${(error as Error).message})`);
  }
  new Checker(text, where).value(0);
  return value;
}

/** One pass over text JSON.parse accepted: what it would have lost or merged. */
class Checker {
  readonly #text: string;
  readonly #where: string;
  #at = 0;
  /** The next backslash and quote at or after where a string was last searched (2^32 - 1: none), so that
   * every character is looked at once however many escapes a string holds. */
  #backslash = -1;
  #quote = -1;
  /** Where the value being read is: member names and array positions from the top. */
  readonly #path: (string | number)[] = [];

  constructor(text: string, where: string) {
    this.#text = text;
    this.#where = where;
  }

  #fail(problem: string): never {
    let path = '$';
    for (const part of this.#path) path = typeof part === 'number' ? `${path}[${part}]` : fieldPath(path, part);
    throw new InvalidEntryError(`${this.#where}: ${path}`, problem);
  }

  #space(): void {
    const text = this.#text;
    for (let c = text.charCodeAt(this.#at); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; ) {
      c = text.charCodeAt(++this.#at);
    }
  }

  value(depth: number): void {
    this.#space();
    const c = this.#text.charCodeAt(this.#at);
    if (c === 0x7b || c === 0x5b) {
      // An entry's own object, and its data nested up to MAX_DEPTH levels within it, as the library takes it.
      if (depth > MAX_DEPTH) this.#fail(`nests deeper than ${MAX_DEPTH} levels, the most an entry may`);
      if (c === 0x7b) this.#object(depth + 1);
      else this.#array(depth + 1);
    } else if (c === 0x22) this.#string();
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) this.#number();
    else this.#at += c === 0x6e || c === 0x74 ? 4 : 5; // null, true, false: JSON.parse checked the spelling
  }

  #object(depth: number): void {
    const text = this.#text;
    this.#at++; // {
    this.#space();
    if (text.charCodeAt(this.#at) === 0x7d) {
      this.#at++;
      return;
    }
    const names = new Set<string>();
    for (;;) {
      this.#space();
      const start = this.#at;
      const escaped = this.#string();
      const raw = text.slice(start + 1, this.#at - 1);
      const name = escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
      this.#path.push(name);
      if (names.has(name)) this.#fail('appears twice in one object');
      names.add(name);
      this.#space();
      this.#at++; // :
      this.value(depth);
      this.#path.pop();
      this.#space();
      if (text.charCodeAt(this.#at++) === 0x7d) return; // else ,
    }
  }

  #array(depth: number): void {
    const text = this.#text;
    this.#at++; // [
    this.#space();
    if (text.charCodeAt(this.#at) === 0x5d) {
      this.#at++;
      return;
    }
    for (let i = 0; ; i++) {
      this.#path.push(i);
      this.value(depth);
      this.#path.pop();
      this.#space();
      if (text.charCodeAt(this.#at++) === 0x5d) return; // else ,
    }
  }

  /** Steps over a string; whether it holds an escape. */
  #string(): boolean {
    const text = this.#text;
    let escaped = false;
    for (let at = this.#at + 1; ; ) {
      if (this.#quote < at) this.#quote = text.indexOf('"', at);
      if (this.#backslash < at) this.#backslash = text.indexOf('\\', at) >>> 0; // none: past any quote
      if (this.#backslash > this.#quote) {
        this.#at = this.#quote + 1;
        return escaped;
      }
      escaped = true;
      at = this.#backslash + 2;
    }
  }

  #number(): void {
    NUMBER.lastIndex = this.#at;
    const match = NUMBER.exec(this.#text) as RegExpExecArray;
    const literal = match[0];
    this.#at += literal.length;
    if (match[2] === undefined && match[3] === undefined) {
      // Up to 15 digits always fit; 16 or more are compared exactly.
      if (literal.length - (literal[0] === '-' ? 1 : 0) >= 16 && BigInt(literal.replace('-', '')) > MAX_SAFE) {
        this.#fail(`the integer ${literal} is beyond ±(2^53−1), so it cannot be kept exactly: write it as a string`);
      }
      return;
    }
    const number = Number(literal);
    if (!Number.isFinite(number)) this.#fail(`the number ${literal} is too large for a double`);
    if (number === 0 && /[1-9]/.test(literal.replace(/[eE].*$/, ''))) {
      this.#fail(`the number ${literal} is too small for a double: it would be recorded as 0`);
    }
    // RFC 8785 writes the double's shortest form (ECMAScript Number::toString): the record must mean what was given.
    if (decimalValue(String(number)) !== decimalValue(literal)) {
      this.#fail(
        `the number ${literal} has more precision than a double: it would be recorded as ${number} (write it as a string)`,
      );
    }
    // Below 1e21 that form has no exponent, so it would read back as an integer literal beyond ±(2^53−1).
    if (Number.isInteger(number) && Math.abs(number) > Number.MAX_SAFE_INTEGER && Math.abs(number) < 1e21) {
      this.#fail(
        `the number ${literal} is an integer beyond ±(2^53−1), so it cannot be kept exactly: write it as a string`,
      );
    }
  }
}

/** A JSON number's exact decimal value as sign, significant digits and exponent, e.g. "-1.50e2" → "-15e1". */
function decimalValue(literal: string): string {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal) as RegExpExecArray;
  const fraction = match[3] ?? '';
  let digits = (match[2] as string) + fraction;
  let exponent = Number(match[4] ?? 0) - fraction.length;
  const leading = /^0*/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(leading);
  if (digits === '') return '0';
  const trailing = /0*$/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  return `${match[1]}${digits}e${exponent}`;
}
