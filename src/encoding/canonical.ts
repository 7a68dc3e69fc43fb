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
 * lone surrogates (§3.2.2.2, I-JSON), undefined, functions, symbols, bigints,
 * and objects that are not plain (Date, Map, class instances...).
 */
import { InvalidEntryError } from '../errors.js';

/** Canonical JSON text of `value`; throws InvalidEntryError naming the first field JSON cannot represent. */
export function canonicalize(value: unknown, path = '$'): string {
  return encode(value, path, []);
}

function encode(value: unknown, path: string, ancestors: object[]): string {
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value))
        throw new InvalidEntryError(path, 'string contains a lone surrogate (not valid Unicode)');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidEntryError(path, `${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (ancestors.includes(value)) throw new InvalidEntryError(path, 'circular reference');
      ancestors.push(value);
      try {
        return Array.isArray(value) ? encodeArray(value, path, ancestors) : encodeObject(value, path, ancestors);
      } finally {
        ancestors.pop();
      }
    }
    default:
      throw new InvalidEntryError(path, `${typeof value} is not a JSON value`);
  }
}

function encodeArray(items: unknown[], path: string, ancestors: object[]): string {
  const parts: string[] = [];
  for (let i = 0; i < items.length; i++) {
    // Holes in sparse arrays would silently become null in JSON.stringify.
    if (!(i in items)) throw new InvalidEntryError(`${path}[${i}]`, 'sparse array hole is not a JSON value');
    parts.push(encode(items[i], `${path}[${i}]`, ancestors));
  }
  return `[${parts.join(',')}]`;
}

function encodeObject(object: object, path: string, ancestors: object[]): string {
  const proto = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) {
    const kind = (proto?.constructor as { name?: string } | undefined)?.name ?? 'exotic';
    throw new InvalidEntryError(path, `${kind} is not a plain JSON object`);
  }
  if (Object.getOwnPropertySymbols(object).length > 0) {
    throw new InvalidEntryError(path, 'symbol-keyed properties are not JSON');
  }
  const record = object as Record<string, unknown>;
  // Array.prototype.sort compares strings by UTF-16 code units, as §3.2.3 requires.
  const names = Object.keys(record).sort();
  const parts: string[] = [];
  for (const name of names) {
    const field = fieldPath(path, name);
    if (!isWellFormed(name)) throw new InvalidEntryError(field, 'member name contains a lone surrogate');
    parts.push(`${JSON.stringify(name)}:${encode(record[name], field, ancestors)}`);
  }
  return `{${parts.join(',')}}`;
}

/** JSON path of member `name` under `path`, quoted when it is not a plain identifier. */
export function fieldPath(path: string, name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`;
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isWellFormed(text: string): boolean {
  return !loneSurrogate.test(text);
}

/**
 * True when `text` is exactly the canonical encoding of `parsed` (its own
 * JSON.parse result). This is the fast check the verifier runs on every line:
 * when every object's members already come in sorted order, JSON.stringify
 * emits JCS, so one native call decides it. Otherwise (unsorted members, or
 * integer-like names that V8 enumerates first) it falls back to canonicalize.
 */
export function isCanonicalText(text: string, parsed: unknown): boolean {
  if (membersSorted(parsed)) return JSON.stringify(parsed) === text;
  try {
    return canonicalize(parsed) === text;
  } catch {
    return false; // parsed JSON that JCS rejects (a lone surrogate escape) is not canonical
  }
}

function membersSorted(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!membersSorted(item)) return false;
    return true;
  }
  let previous: string | undefined;
  for (const name in value) {
    if (previous !== undefined && !(previous < name)) return false;
    previous = name;
    if (!membersSorted((value as Record<string, unknown>)[name])) return false;
  }
  return true;
}
