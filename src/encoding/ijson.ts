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
 *   - nesting deeper than MAX_DEPTH.
 *
 * Lone surrogates are refused when the value is canonicalised; invalid UTF-8
 * is refused where the bytes are read (the text here is already decoded).
 *
 * Pure code. It validates in one pass over the text, then JSON.parse builds
 * the value (the same value, now that nothing is ambiguous).
 */
import { InvalidEntryError } from '../errors.js';
import { fieldPath } from './canonical.js';

/** How deep an entry's JSON may nest: far more than a record needs, far less than the stack takes. */
export const MAX_DEPTH = 64;

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
  new Checker(text, where).value('$', 0);
  return value;
}

/** One pass over text JSON.parse accepted: what it would have lost or merged. */
class Checker {
  readonly #text: string;
  readonly #where: string;
  #at = 0;

  constructor(text: string, where: string) {
    this.#text = text;
    this.#where = where;
  }

  #fail(path: string, problem: string): never {
    throw new InvalidEntryError(`${this.#where}: ${path}`, problem);
  }

  #space(): void {
    const text = this.#text;
    while (this.#at < text.length && ' \t\n\r'.includes(text[this.#at] as string)) this.#at++;
  }

  value(path: string, depth: number): void {
    this.#space();
    const c = this.#text[this.#at];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) this.#fail(path, `nests deeper than ${MAX_DEPTH} levels, the most an entry may`);
      if (c === '{') this.#object(path, depth + 1);
      else this.#array(path, depth + 1);
    } else if (c === '"') this.#string();
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) this.#number(path);
    else this.#at += c === 'n' || c === 't' ? 4 : 5; // null, true, false: JSON.parse checked the spelling
  }

  #object(path: string, depth: number): void {
    this.#at++; // {
    const names = new Set<string>();
    this.#space();
    if (this.#text[this.#at] === '}') {
      this.#at++;
      return;
    }
    for (;;) {
      this.#space();
      const start = this.#at;
      this.#string();
      const name = JSON.parse(this.#text.slice(start, this.#at)) as string;
      const field = fieldPath(path, name);
      if (names.has(name)) this.#fail(field, 'appears twice in one object');
      names.add(name);
      this.#space();
      this.#at++; // :
      this.value(field, depth);
      this.#space();
      if (this.#text[this.#at++] === '}') return; // else ,
    }
  }

  #array(path: string, depth: number): void {
    this.#at++; // [
    this.#space();
    if (this.#text[this.#at] === ']') {
      this.#at++;
      return;
    }
    for (let i = 0; ; i++) {
      this.value(`${path}[${i}]`, depth);
      this.#space();
      if (this.#text[this.#at++] === ']') return; // else ,
    }
  }

  #string(): void {
    const text = this.#text;
    this.#at++; // "
    for (;;) {
      const c = text[this.#at++];
      if (c === '"') return;
      if (c === '\\') this.#at++;
    }
  }

  #number(path: string): void {
    NUMBER.lastIndex = this.#at;
    const match = NUMBER.exec(this.#text);
    const literal = match?.[0] as string;
    this.#at += literal.length;
    if (match?.[2] === undefined && match?.[3] === undefined) {
      const magnitude = BigInt(literal.replace('-', ''));
      if (magnitude > MAX_SAFE) {
        this.#fail(
          path,
          `the integer ${literal} is beyond ±(2^53−1), so it cannot be kept exactly: write it as a string`,
        );
      }
      return;
    }
    const number = Number(literal);
    if (!Number.isFinite(number)) this.#fail(path, `the number ${literal} is too large for a double`);
    if (number === 0 && /[1-9]/.test(literal.replace(/[eE].*$/, ''))) {
      this.#fail(path, `the number ${literal} is too small for a double: it would be recorded as 0`);
    }
  }
}
