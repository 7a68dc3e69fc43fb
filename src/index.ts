/**
 * evident: a tamper-evident audit log.
 *
 *   const log = new Log({ dir: '.evident', create: true });
 *   await log.append({ actor: 'ci-bot', action: 'deploy.start', targets: ['api'] });
 *   const { ok, failure } = await log.verify();
 */
export {
  ChainVerifier,
  type FailureReason,
  parseEntry,
  type VerifyFailure,
} from './chain.js';
export { canonicalize } from './encoding/canonical.js';
export {
  DEFAULT_MAX_ENTRY_BYTES,
  type Entry,
  type EntryInput,
  GENESIS_PREV,
  type Head,
  hashedText,
  leafHashOfText,
} from './entry.js';
export * from './errors.js';
export { Log, type LogOptions, resolveLogDir } from './log.js';
export { emptyRoot, HASH_SIZE, type Hash, leafHash, nodeHash } from './merkle/hash.js';
export { consistencyProof, inclusionProof, type SubtreeHash, subtreesOf, treeRoot } from './merkle/tree.js';
export { ProofError, verifyConsistency, verifyInclusion } from './merkle/verify.js';
export { type Checkpoint, formatCheckpoint, parseCheckpoint } from './note/checkpoint.js';
export {
  ALG_COSIGNATURE_V1,
  ALG_ED25519,
  generateNoteKey,
  KeyError,
  type PrivateNoteKey,
  type PublicNoteKey,
  parseSignerKey,
  parseVerifierKey,
  verifierKeyOf,
} from './note/keys.js';
export { cosigner, ed25519Signer, NoteError, type NoteSigner, openNote, signNote } from './note/note.js';
export { TrustError, type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from './note/trust.js';
export { formatReceipt, parseReceipt, type Receipt, ReceiptError, verifyReceipt } from './receipt.js';
export {
  type Durability,
  FileStore,
  type FileStoreOptions,
  LOG_FILE,
  matchesAction,
} from './store/file/file-store.js';
export type { Files } from './store/file/files.js';
export { nodeFiles } from './store/file/files.js';
export type {
  CommittedBatch,
  ReadQuery,
  Recovery,
  SealedBatch,
  Store,
  TreeHead,
  UnsealedBatch,
  VerifyOptions,
  VerifyProgress,
  VerifyResult,
} from './store/store.js';
export { Witness, WitnessError, type WitnessOptions } from './witness.js';
