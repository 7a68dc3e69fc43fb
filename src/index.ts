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
  ReadQuery,
  Recovery,
  SealedBatch,
  Store,
  VerifyOptions,
  VerifyProgress,
  VerifyResult,
} from './store/store.js';
