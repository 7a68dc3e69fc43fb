/**
 * Verifying a log against a checkpoint one trusts, for every backend: the
 * chain rules as the store walks its entries, and the RFC 9162 tree
 * recomputed from their hashes. The entries the checkpoint covers must still
 * be there (else `truncated`) and hash to its root (else `rewritten`).
 */
import type { VerifyFailure } from '../chain.js';
import { type Entry, GENESIS_PREV, headOf } from '../entry.js';
import { LogCorruptError, ProofError } from '../errors.js';
import { emptyRoot, type Hash } from '../merkle/hash.js';
import { TreeEdge } from '../merkle/tiles.js';
import { verifyInclusion } from '../merkle/verify.js';
import type { TrustedCheckpoint } from '../note/trust.js';
import type { ChainCheck, EntryStore, TileStore, VerifyResult } from '../store/store.js';
import { Tree } from './tree.js';

/** Verifies the whole log and recomputes its tree as the entries stream by (constant memory: the right edge). */
export async function verifyAgainst(
  entries: EntryStore,
  checkpoint: TrustedCheckpoint,
  check: ChainCheck,
): Promise<VerifyResult> {
  const edge = new TreeEdge();
  let rootAtCheckpoint: Hash | null = checkpoint.size === 0 ? emptyRoot() : null;
  const result = await entries.verify({
    ...check,
    after: undefined,
    onLeaf: (hash) => {
      edge.append(hash);
      if (edge.size === checkpoint.size) rootAtCheckpoint = edge.root();
    },
  });
  return judge(result, checkpoint, rootAtCheckpoint, edge.root());
}

/**
 * Verifies only what follows the checkpoint: the stored tree at its size must
 * hash to its root and hold the log's entry at its end, then the entries
 * after it are checked one by one and extend that tree. Anything that does
 * not fit falls back to verifyAgainst, which decides from the entries alone.
 */
export async function verifySince(
  entries: EntryStore,
  tree: Tree,
  checkpoint: TrustedCheckpoint,
  check: ChainCheck,
): Promise<VerifyResult> {
  const full = () => verifyAgainst(entries, checkpoint, check);
  const size = checkpoint.size;
  if (tree.size < size) return full();
  const edge = await tree.edgeAt(size);
  if (!edge.root().equals(checkpoint.root)) return full();
  let after = undefined as ReturnType<typeof headOf> | undefined;
  if (size > 0) {
    let last: Entry | undefined;
    for await (const entry of entries.read({ fromSeq: size - 1, limit: 1 })) last = entry;
    if (last === undefined || last.seq !== size - 1) return full();
    try {
      verifyInclusion(
        size - 1,
        size,
        Buffer.from(last.hash, 'hex'),
        await tree.inclusionProof(size - 1, size),
        checkpoint.root,
      );
    } catch {
      return full();
    }
    after = headOf(last);
  }
  const result = await entries.verify({ ...check, after, onLeaf: (hash) => edge.append(hash) });
  return { ...result, root: edge.root().toString('base64') };
}

/** Adds the checkpoint's verdict to a chain verdict: chain failures first, then truncation, then a rewritten prefix. */
function judge(
  result: VerifyResult,
  checkpoint: TrustedCheckpoint,
  rootAtCheckpoint: Hash | null,
  root: Hash,
): VerifyResult {
  const fail = (failure: VerifyFailure): VerifyResult => ({ ...result, ok: false, failure });
  const judged = { ...result, root: root.toString('base64') };
  if (!result.ok) {
    // A rewritten prefix matters more than a later failure: it is earlier in the log.
    if (rootAtCheckpoint !== null && !rootAtCheckpoint.equals(checkpoint.root)) return rewritten(result, checkpoint);
    return judged;
  }
  if (result.size < checkpoint.size) {
    return fail({
      seq: result.size,
      line: result.size + 1,
      offset: result.bytes,
      reason: 'truncated',
      message: `the log has ${result.size} entries but the checkpoint covers ${checkpoint.size}: entries were cut off`,
    });
  }
  if (rootAtCheckpoint === null || !rootAtCheckpoint.equals(checkpoint.root)) return rewritten(result, checkpoint);
  return judged;
}

/** A rewrite not yet located: somewhere in the entries the checkpoint covers, so none of them is known intact. */
function rewritten(result: VerifyResult, checkpoint: TrustedCheckpoint): VerifyResult {
  const failure: VerifyFailure = {
    seq: 0,
    line: 1,
    offset: -1,
    reason: 'rewritten',
    message:
      `the first ${checkpoint.size} entries do not hash to the checkpoint's root: that history was rewritten ` +
      "(the stored tree no longer holds the checkpoint's, so which entry was changed first is not known)",
  };
  return { ...result, ok: false, size: 0, head: GENESIS_PREV, failure };
}

/**
 * Names the first rewritten entry of a `rewritten` verdict, when the stored
 * tiles still hold the tree the checkpoint signed: the first entry whose
 * hash has no inclusion proof (RFC 9162 §2.1.3.2) to the signed root at its
 * place. The chain held up to the checkpoint (else the chain failure comes
 * first), so every entry after a rewritten one has a new hash too (each
 * covers the one before): a binary search finds the first. The verdict is
 * returned as it was when the tiles cannot vouch.
 */
export async function locateRewrite(
  result: VerifyResult,
  entries: EntryStore,
  tiles: TileStore,
  checkpoint: TrustedCheckpoint,
): Promise<VerifyResult> {
  const size = checkpoint.size;
  if (result.failure?.reason !== 'rewritten') return result;
  const tree = new Tree(tiles); // the stored tiles as they are, never checked against the entries, never written
  try {
    await tree.load();
    if (tree.size < size || !(await tree.rootAt(size)).equals(checkpoint.root)) return result;
  } catch (error) {
    if (error instanceof LogCorruptError) return result;
    throw error;
  }
  const leaf = async (seq: number) => (await entries.leaves(seq, seq + 1)).leaves;
  const holds = async (seq: number) => {
    try {
      verifyInclusion(seq, size, await leaf(seq), await tree.inclusionProof(seq, size), checkpoint.root);
      return true;
    } catch (error) {
      if (error instanceof ProofError || error instanceof LogCorruptError) return false;
      throw error;
    }
  };
  let low = 0; // entries [0, low) hold
  let high = size; // entries [high, size) do not
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (await holds(middle)) low = middle + 1;
    else high = middle;
  }
  if (low === size) return result;
  const failure: VerifyFailure = {
    seq: low,
    line: low + 1,
    offset: -1,
    reason: 'rewritten',
    message:
      `entry ${low} is not the one the checkpoint signed at its place (the stored tree still holds the signed ` +
      `history): the log was rewritten from entry ${low} on`,
  };
  const head = low === 0 ? GENESIS_PREV : (await leaf(low - 1)).toString('hex');
  return { ...result, size: low, head, failure };
}
