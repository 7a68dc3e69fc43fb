/**
 * Verifying an evident log through the C2SP tlog-tiles read API, trusting
 * nothing the server says but what the log's key signs. Pure code over a
 * `fetch` of paths, so it checks `evident serve`, a static mirror of the
 * tiles, or anything else that serves them.
 *
 * From the signed checkpoint down: every entry bundle is split into the
 * entries' hashed bytes; each entry is rebuilt with the leaf hash of those
 * bytes as its `hash` and checked by the chain's rules (chain.ts); the leaves
 * are put into an RFC 9162 tree, whose root must be the checkpoint's, and
 * whose tiles, full and partial, must be the ones the server serves (so a
 * tlog-tiles client proving inclusion from them gets the same answers).
 * A checkpoint verified before must be a prefix of the new one: the new
 * tree's root at its size must be its root.
 *
 * With `sincePrevious`, only what was added since that checkpoint is read:
 * the tree's edge before the tile that holds its last entry comes from the
 * served tiles, and that tile's entries onwards are read and checked as
 * above. Both roots — the previous checkpoint's at its size, the new one's at
 * its — bind the edge: tiles that are not the tree, or old entries changed,
 * cannot hash to them. Anything that does not fit is judged again from the
 * first entry, so a failure is always named as a whole check names it.
 */
import { isUtf8 } from 'node:buffer';
import { entriesPath, splitBundle } from '../api/layout.js';
import { ChainVerifier, type VerifyFailure } from '../chain.js';
import { canonicalize } from '../encoding/canonical.js';
import { GENESIS_PREV } from '../entry.js';
import { EvidentError, NoteError } from '../errors.js';
import { emptyRoot, HASH_SIZE, type Hash, leafHash } from '../merkle/hash.js';
import { hashesAtTileLevel, TILE_WIDTH, type TileWrite, TreeEdge, tilePath } from '../merkle/tiles.js';
import { type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from '../note/trust.js';
import type { VerifyProgress, VerifyResult } from '../store/store.js';

/** Fetches a path of the API (`checkpoint`, `tile/0/001.p/7`, …): its body, or null when the server has none (404). */
export type FetchPath = (path: string) => Promise<Buffer | null>;

export interface TilesVerifyOptions {
  /** The log's key, and the witnesses and quorum its checkpoint needs. */
  policy: TrustPolicy;
  /** A checkpoint verified before: the log must still hold it, as a prefix. */
  previous?: TrustedCheckpoint | undefined;
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
  /** With `previous`: read only the entries added since it (see the module comment). */
  sincePrevious?: boolean | undefined;
  /** Fetches under way at once (default 8). */
  parallel?: number | undefined;
}

export interface TilesVerifyResult extends VerifyResult {
  /** The checkpoint the server serves, trusted under the policy: the one to remember for the next check. */
  checkpoint: TrustedCheckpoint;
  /** Its signed note, as served. */
  note: string;
  /** The first entry read: 0, or with `sincePrevious` where the tile holding the previous checkpoint's last entry begins. */
  from: number;
}

/** The entries' hashed bytes and, alongside, the level-0 tile the server serves for them. */
interface Chunk {
  index: number;
  entries: Buffer | null;
  leaves: Buffer | null;
}

/** Verifies the log the API serves; see the module comment. Throws if its checkpoint is missing or not trusted. */
export async function verifyTiles(fetchPath: FetchPath, options: TilesVerifyOptions): Promise<TilesVerifyResult> {
  const fetch = withFullTileFallback(fetchPath);
  const note = await fetch('checkpoint');
  if (note === null)
    throw new EvidentError('EVIDENT_NOT_FOUND', 'the server has no checkpoint (the log does not sign)');
  if (!isUtf8(note)) throw new NoteError('EVIDENT_NOTE_MALFORMED', 'the served checkpoint is not UTF-8 text');
  const text = note.toString('utf8');
  const served = { checkpoint: trustCheckpoint(text, options.policy), note: text };
  const previous = options.previous;
  if (options.sincePrevious === true && previous !== undefined && previous.size <= served.checkpoint.size) {
    // The tile holding the previous checkpoint's last entry: its first entry is one verified before, taken as given.
    const from = Math.floor(Math.max(0, previous.size - 1) / TILE_WIDTH) * TILE_WIDTH;
    const edge = from === 0 ? null : await edgeFromTiles(fetch, from, served.checkpoint.size);
    if (edge !== null) {
      const result = await verifyFrom(fetch, options, served, edge);
      if (result.ok) return result;
    }
  }
  return verifyFrom(fetch, options, served, new TreeEdge());
}

/**
 * The right edge of the tree at `from` (a multiple of 256), from the tiles
 * served for the tree of `size` leaves: each level's last tile, as far as it
 * reaches at `from` (complete hashes never change). Null if one is missing.
 */
async function edgeFromTiles(fetch: FetchPath, from: number, size: number): Promise<TreeEdge | null> {
  const tiles: Buffer[] = [];
  for (const { level, index, width } of TreeEdge.partialTiles(from)) {
    if (width === 0) {
      tiles.push(Buffer.alloc(0));
      continue;
    }
    const servedWidth = Math.min(TILE_WIDTH, hashesAtTileLevel(size, level) - index * TILE_WIDTH);
    const tile = await fetch(tilePath(level, index, servedWidth));
    if (tile === null || tile.length !== servedWidth * HASH_SIZE) return null;
    tiles.push(tile.subarray(0, width * HASH_SIZE));
  }
  return new TreeEdge(from, tiles);
}

/** Verifies the entries from the edge's size on (0: all of them), extending the edge to the checkpoint's tree. */
async function verifyFrom(
  fetch: FetchPath,
  options: TilesVerifyOptions,
  served: { checkpoint: TrustedCheckpoint; note: string },
  edge: TreeEdge,
): Promise<TilesVerifyResult> {
  const { checkpoint, note: noteText } = served;
  const previous = options.previous;
  const size = checkpoint.size;
  const from = edge.size;
  const firstChunk = from / TILE_WIDTH;
  // From the middle of the log, the first entry read is one verified before: its own link is taken as given.
  const chain = new ChainVerifier(from === 0 ? undefined : null);
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const decode = (bytes: Buffer) => decoder.decode(bytes);
  let bytes = 0;
  let rootAtPrevious: Hash | null = previous?.size === 0 ? emptyRoot() : null;
  // The hash before each chunk (entry first-1's), so that a failure found later can name the head before it.
  const heads: string[] = [];
  // The first served tile that is not what the entries give, and the first leaf it differs at: a bad tile, or,
  // if the entries do not hash to the signed root either, where they were rewritten.
  let mismatch: { seq: number; path: string } | null = null;
  let mismatchHead = GENESIS_PREV;
  const result = (failure?: VerifyFailure, head = chain.lastHash): TilesVerifyResult => ({
    ok: failure === undefined,
    size: failure?.seq ?? size,
    head,
    bytes,
    ...(failure === undefined ? { root: edge.root().toString('base64') } : { failure }),
    checkpoint,
    note: noteText,
    from,
  });
  const fail = (seq: number, reason: VerifyFailure['reason'], message: string, head = chain.lastHash) =>
    result({ seq, line: seq + 1, offset: -1, reason, message }, head);

  /** Compares the tiles the entries just completed (or the partial ones) with those served. */
  const compare = async (tiles: TileWrite[]) => {
    for (const tile of tiles) {
      if (mismatch !== null) return;
      if (tile.level === 0) continue; // compared with its chunk
      const path = tilePath(tile.level, tile.index, tile.hashes.length / HASH_SIZE);
      const served = await fetch(path);
      if (served?.equals(tile.hashes)) continue;
      const span = TILE_WIDTH ** tile.level;
      const seq = (tile.index * TILE_WIDTH + firstDifference(served, tile.hashes)) * span;
      mismatch = { seq, path };
      mismatchHead = heads[Math.floor(seq / TILE_WIDTH) - firstChunk] ?? GENESIS_PREV;
    }
  };

  // Each chunk: its leaves, compared with the level-0 tile; the tiles they complete; its entries by the chain's
  // rules. A chain failure is the first bad entry; the tree's verdict waits for the root.
  for await (const chunk of chunks(fetch, firstChunk, size, options.parallel ?? 8)) {
    const first = chunk.index * TILE_WIDTH;
    const width = Math.min(TILE_WIDTH, size - first);
    heads.push(chain.lastHash);
    if (chunk.entries === null) {
      return fail(
        first,
        'truncated',
        `the server has no entries from seq ${first}, though its checkpoint covers ${size}`,
      );
    }
    bytes += chunk.entries.length;
    const entries = splitBundle(chunk.entries);
    if (entries === null || entries.length !== width) {
      const what = entries === null ? 'is malformed' : `holds ${entries.length} entries, not ${width}`;
      return fail(first, 'malformed', `${entriesPath(chunk.index, width)} ${what}`);
    }
    const leaves = Buffer.concat(entries.map((entry) => leafHash(entry)));
    let differsAt = -1;
    if (mismatch === null && (chunk.leaves === null || !chunk.leaves.equals(leaves))) {
      differsAt = firstDifference(chunk.leaves, leaves);
      mismatch = { seq: first + differsAt, path: tilePath(0, chunk.index, width) };
    }
    // The root at the previous checkpoint's size, on the way past it.
    const cut = previous === undefined ? 0 : (previous.size - first) * HASH_SIZE;
    if (cut > 0 && cut <= leaves.length) {
      await compare(edge.append(leaves.subarray(0, cut)));
      rootAtPrevious = edge.root();
      await compare(edge.append(leaves.subarray(cut)));
    } else {
      await compare(edge.append(leaves));
    }
    for (const [i, entry] of entries.entries()) {
      if (i === differsAt) mismatchHead = chain.lastHash;
      const line = entryLine(entry, leaves.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE), decode);
      if (typeof line !== 'string') return fail(first + i, line.reason, line.message);
      const broken = chain.check(line, -1);
      // An entry changed in place: the next one does not link to it, and the tree holds another leaf there.
      if (broken?.reason === 'prev-mismatch' && mismatch?.seq === broken.seq - 1) {
        const changed = `entry ${mismatch.seq} is neither what the next entry links to nor what the log's tree holds`;
        return fail(mismatch.seq, 'hash-mismatch', `${changed} (${mismatch.path}): it was changed`, mismatchHead);
      }
      if (broken !== null) return result(broken);
      if (first + i === from && chain.first?.seq !== from) {
        return fail(from, 'malformed', `the entry the tree holds at seq ${from} says it is seq ${chain.first?.seq}`);
      }
    }
    options.onProgress?.({ entries: edge.size, bytes, totalBytes: 0 });
  }
  await compare(edge.partials());
  const found = mismatch as { seq: number; path: string } | null;
  if (!edge.root().equals(checkpoint.root)) {
    const signed = `the entries served do not hash to the root the checkpoint at size ${size} signs`;
    if (found === null) return fail(0, 'rewritten', `${signed} (where they differ is not known)`, GENESIS_PREV);
    return fail(
      found.seq,
      'rewritten',
      `${signed}; this is the first entry the log's own tree (${found.path}) holds otherwise`,
      mismatchHead,
    );
  }
  if (found !== null) {
    return fail(found.seq, 'tile-mismatch', `${found.path} is not the tree's hashes over the entries`, mismatchHead);
  }
  if (previous !== undefined && previous.size > size) {
    // A smaller tree cannot show whether its entries are the first of the larger one: none is counted intact.
    return fail(
      0,
      'truncated',
      `the log's checkpoint covers ${size} entries, fewer than the ${previous.size} of the checkpoint verified ` +
        'before: its key signed a smaller tree (a rollback, or a split view); whether the entries it holds are the ' +
        'ones verified before cannot be told',
      GENESIS_PREV,
    );
  }
  if (previous !== undefined && !(rootAtPrevious as Hash).equals(previous.root)) {
    return fail(
      0,
      'split-view',
      `the log's key signed a checkpoint at size ${size} whose first ${previous.size} entries do not hash to the ` +
        'root of the checkpoint verified before: two histories under one key',
      GENESIS_PREV,
    );
  }
  return result();
}

/** The first of `hashes` that `served` does not hold at its place (the last, if it only has more); 0 if none served. */
function firstDifference(served: Buffer | null, hashes: Buffer): number {
  const count = hashes.length / HASH_SIZE;
  if (served === null) return 0;
  for (let i = 0; i < count; i++) {
    const at = i * HASH_SIZE;
    if (!served.subarray(at, at + HASH_SIZE).equals(hashes.subarray(at, at + HASH_SIZE))) return i;
  }
  return count - 1;
}

/**
 * The stored line of a bundle entry: its bytes must be canonical JSON of an
 * object; with `hash` (their leaf hash) added, it is the line the chain checks.
 */
function entryLine(
  bytes: Buffer,
  leaf: Buffer,
  decode: (bytes: Buffer) => string,
): string | { reason: 'malformed' | 'not-canonical'; message: string } {
  let text: string;
  let value: unknown;
  try {
    text = decode(bytes);
    value = JSON.parse(text);
  } catch (error) {
    return { reason: 'malformed', message: `not UTF-8 JSON (${(error as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || 'hash' in value) {
    return { reason: 'malformed', message: 'not a JSON object without a hash member' };
  }
  let canonical: string;
  try {
    canonical = canonicalize(value);
  } catch (error) {
    return { reason: 'malformed', message: (error as Error).message };
  }
  if (canonical !== text) return { reason: 'not-canonical', message: 'the entry is not RFC 8785 canonical JSON' };
  return canonicalize({ ...value, hash: leaf.toString('hex') });
}

/**
 * `fetch`, reading a partial tile or entry bundle the server no longer has
 * from the full one: tlog-tiles lets a log delete a partial tile once the
 * full one exists, and lets clients fall back to it. The full tile's first
 * W hashes, or first W entries, are the partial one (null if it has fewer).
 */
function withFullTileFallback(fetch: FetchPath): FetchPath {
  return async (path) => {
    const got = await fetch(path);
    const partial = /^(tile\/.+)\.p\/([1-9][0-9]*)$/.exec(path);
    if (got !== null || partial === null) return got;
    const full = await fetch(partial[1] as string);
    if (full === null) return null;
    const width = Number(partial[2]);
    if (!path.startsWith('tile/entries/'))
      return full.length >= width * HASH_SIZE ? full.subarray(0, width * HASH_SIZE) : null;
    const entries = splitBundle(full);
    if (entries === null || entries.length < width) return null;
    let end = 0;
    for (const entry of entries.slice(0, width)) end += 2 + entry.length;
    return full.subarray(0, end);
  };
}

/**
 * Each chunk of 256 entries (the last one partial) from chunk `next` on, with
 * its level-0 tile, fetched `parallel` at a time, in order.
 */
async function* chunks(fetch: FetchPath, next: number, size: number, parallel: number): AsyncGenerator<Chunk> {
  const count = Math.ceil(size / TILE_WIDTH);
  const pending: Promise<Chunk>[] = [];
  const start = () => {
    const index = next++;
    const width = Math.min(TILE_WIDTH, size - index * TILE_WIDTH);
    const chunk = Promise.all([fetch(entriesPath(index, width)), fetch(tilePath(0, index, width))]).then(
      ([entries, leaves]) => ({ index, entries, leaves }),
    );
    chunk.catch(() => undefined); // awaited in turn below; not an unhandled rejection meanwhile
    pending.push(chunk);
  };
  while (next < count && pending.length < parallel) start();
  while (pending.length > 0) {
    const chunk = await (pending.shift() as Promise<Chunk>);
    if (next < count) start();
    yield chunk;
  }
}
