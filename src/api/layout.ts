/**
 * The C2SP tlog-tiles read API's paths and entry bundles. Pure code.
 *
 *   checkpoint                     the latest signed checkpoint
 *   tile/<L>/<N>[.p/<W>]           tile N of level L, partial with W hashes
 *   tile/entries/<N>[.p/<W>]       the entries of leaves N·256 … N·256 + W − 1
 *
 * N is written in 3-digit groups, all but the last prefixed with `x`
 * (1234067 → x001/x234/067); W is 1–255, without leading zeros. An entry
 * bundle is each entry's bytes with a big-endian uint16 length before them;
 * for evident, an entry's bytes are what its leaf hash covers (its canonical
 * JSON without `hash`), so a generic client's RFC 9162 leaf hash of a bundle
 * entry is the entry's leaf.
 */

import type { Entry } from '../entry.js';
import { hashedText } from '../entry.js';
import { LogCorruptError } from '../errors.js';
import { TILE_WIDTH, tilePath } from '../merkle/tiles.js';

export { tilePath } from '../merkle/tiles.js';

/** What a tile path names: a tile of hashes (level ≥ 0) or an entry bundle (level 'entries'). */
export interface TileAddress {
  level: number | 'entries';
  index: number;
  /** 1–256; 256 for a full tile. */
  width: number;
}

/** The deepest tile level a tree of up to 2^63 leaves can have. */
const MAX_LEVEL = 63;

/** Parses `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (the path after `tile/`); null if it is not one. */
export function parseTilePath(path: string): TileAddress | null {
  const match = /^(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*)([0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (match === null) return null;
  const [, levelText, groups, last, widthText] = match as unknown as [string, string, string, string, string?];
  const level = levelText === 'entries' ? 'entries' : Number(levelText);
  if (level !== 'entries' && level > MAX_LEVEL) return null;
  const digits = `${groups.replaceAll('x', '').replaceAll('/', '')}${last}`;
  // The shortest spelling only: no leading group of 000 (x000/001 is not tile 1).
  if (groups !== '' && groups.startsWith('x000')) return null;
  const index = Number(digits);
  if (!Number.isSafeInteger(index)) return null;
  const width = widthText === undefined ? TILE_WIDTH : Number(widthText);
  if (widthText !== undefined && width >= TILE_WIDTH) return null; // a partial tile is narrower than a full one
  return { level, index, width };
}

/** The path of entry bundle N (`tile/entries/<N>[.p/<W>]`). */
export function entriesPath(index: number, width = TILE_WIDTH): string {
  return tilePath(0, index, width).replace(/^tile\/0\//, 'tile/entries/');
}

/** An entry bundle: each entry's hashed bytes, after its length as a big-endian uint16. */
export function entryBundle(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const bytes = Buffer.from(hashedText(entry), 'utf8');
    if (bytes.length > 0xffff) {
      throw new LogCorruptError(`entry ${entry.seq} is ${bytes.length} bytes, more than an entry bundle carries`);
    }
    const length = Buffer.alloc(2);
    length.writeUInt16BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/** Splits an entry bundle back into its entries' bytes; null if it is malformed. */
export function splitBundle(bundle: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  for (let at = 0; at < bundle.length; ) {
    if (at + 2 > bundle.length) return null;
    const length = bundle.readUInt16BE(at);
    if (at + 2 + length > bundle.length) return null;
    out.push(bundle.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return out;
}
