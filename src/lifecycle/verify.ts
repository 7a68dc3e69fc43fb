/**
 * Verifying a log against a checkpoint one trusts, for every backend: the
 * chain rules as the store walks its entries, and the RFC 9162 tree
 * recomputed from their hashes. The entries the checkpoint covers must still
 * be there (else `truncated`) and hash to its root (else `rewritten`).
 */
import type { VerifyFailure } from '../chain.js';
import { type Entry, headOf } from '../entry.js';
import { emptyRoot, type Hash } from '../merkle/hash.js';
import { TreeEdge } from '../merkle/tiles.js';
import { verifyInclusion } from '../merkle/verify.js';
import type { TrustedCheckpoint } from '../note/trust.js';
import type { ChainCheck, EntryStore, VerifyResult } from '../store/store.js';
import type { Tree } from './tree.js';

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
    if (rootAtCheckpoint !== null && !rootAtCheckpoint.equals(checkpoint.root)) return fail(rewritten(checkpoint));
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
  if (rootAtCheckpoint === null || !rootAtCheckpoint.equals(checkpoint.root)) return fail(rewritten(checkpoint));
  return judged;
}

function rewritten(checkpoint: TrustedCheckpoint): VerifyFailure {
  return {
    seq: checkpoint.size - 1,
    line: checkpoint.size,
    offset: 0,
    reason: 'rewritten',
    message: `the first ${checkpoint.size} entries do not hash to the checkpoint's root: that history was rewritten`,
  };
}
