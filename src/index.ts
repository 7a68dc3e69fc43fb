/**
 * evident: a tamper-evident audit log.
 *
 *   const log = new Log({ store: '.evident', create: true });
 *   await log.append({ actor: 'ci-bot', action: 'deploy.start', targets: ['api'] });
 *   const { ok, failure } = await log.verify();
 *
 * Verification, receipts, signed notes and the Merkle primitives, which need
 * no log of one's own, are in 'evident/verify'.
 */
export type { FailureReason, VerifyFailure } from './chain.js';
export {
  type RemoteAppendOptions,
  RemoteLog,
  type RemoteLogOptions,
  type RemoteVerifyOptions,
} from './client/remote-log.js';
export type { TilesVerifyResult } from './client/verify-tiles.js';
export { type CopyOptions, type CopyResult, copyLog } from './copy.js';
export type { Entry, EntryInput, Head, Via } from './entry.js';
export * from './errors.js';
export type { Appended } from './lifecycle/sequencer.js';
export {
  type AppendOptions,
  type AuditLog,
  type CheckpointEvent,
  type InitOptions,
  Log,
  type LogEvents,
  type LogOptions,
  type ReanchorOptions,
  type TreeHead,
  type VerifyOptions,
} from './log.js';
export { SharedLog } from './shared-log.js';
export type {
  ChainCheck,
  CheckpointStore,
  CommittedBatch,
  CosignatureStore,
  EntryStore,
  KeptNote,
  Lease,
  Leaves,
  OpenOptions,
  ReadQuery,
  Recovery,
  SealedBatch,
  Store,
  TileStore,
  UnsealedBatch,
  VerifyProgress,
  VerifyResult,
} from './store/store.js';
export { type Seen, Witness, type WitnessOptions } from './witness.js';
