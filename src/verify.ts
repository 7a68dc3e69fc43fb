/**
 * evident/verify: everything that checks a log without writing one — chain
 * and receipt verification, RFC 9162 proofs, C2SP signed notes, checkpoints
 * and witness cosigning. Pure TypeScript over node:crypto: it never loads
 * the file store's addon.
 */

export { entriesPath, splitBundle } from './api/layout.js';
export { ChainVerifier, type FailureReason, parseEntry, type VerifyFailure } from './chain.js';
export { type FetchPath, type TilesVerifyOptions, type TilesVerifyResult, verifyTiles } from './client/verify-tiles.js';
export { canonicalize } from './encoding/canonical.js';
export { type Entry, GENESIS_PREV, type Head, hashedText, leafHashOfText } from './entry.js';
export * from './errors.js';
export { emptyRoot, HASH_SIZE, type Hash, leafHash, nodeHash } from './merkle/hash.js';
export { TILE_WIDTH, tilePath } from './merkle/tiles.js';
export { consistencyProof, inclusionProof, type SubtreeHash, subtreesOf, treeRoot } from './merkle/tree.js';
export { verifyConsistency, verifyInclusion } from './merkle/verify.js';
export { type Checkpoint, checkpointOfNote, formatCheckpoint, parseCheckpoint } from './note/checkpoint.js';
export {
  ALG_COSIGNATURE_V1,
  ALG_ED25519,
  generateNoteKey,
  type PrivateNoteKey,
  type PublicNoteKey,
  parseSignerKey,
  parseVerifierKey,
  verifierKeyOf,
} from './note/keys.js';
export { cosigner, ed25519Signer, type NoteSigner, openNote, signNote } from './note/note.js';
export { type Policy, type PolicyLog, type PolicyWitness, parsePolicy, quorumMet } from './note/policy.js';
export { type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from './note/trust.js';
export { formatReceipt, parseReceipt, type Receipt, verifyReceipt } from './receipt.js';
export { type Seen, Witness, type WitnessOptions } from './witness.js';
