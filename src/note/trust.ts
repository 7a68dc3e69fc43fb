/**
 * What a verifier trusts, and the one check every verification starts with:
 * a checkpoint signed by the log's key, cosigned by at least `quorum` of the
 * given witnesses. Pure code.
 */
import { KeyError, TrustError } from '../errors.js';
import { type Checkpoint, parseCheckpoint } from './checkpoint.js';
import { ALG_COSIGNATURE_V1, ALG_ED25519, type PublicNoteKey } from './keys.js';
import { cosignatureTime, type NoteSignature, openNote } from './note.js';

export interface TrustPolicy {
  /** The log's verifier key; the checkpoint's origin must be its name. */
  log: PublicNoteKey;
  /** Witnesses' cosignature verifier keys. */
  witnesses?: readonly PublicNoteKey[] | undefined;
  /** How many of the witnesses must have cosigned. Default: 0. */
  quorum?: number | undefined;
}

export interface TrustedCheckpoint extends Checkpoint {
  /** The witnesses whose cosignatures verified, with their cosigning times (POSIX seconds). */
  cosigners: { name: string; time: number }[];
}

/** Opens `note` under `policy`: the log's signature, the origin, and the witness quorum. Throws NoteError, TrustError, or KeyError for a key of the wrong kind. */
export function trustCheckpoint(note: string, policy: TrustPolicy): TrustedCheckpoint {
  const witnesses = policy.witnesses ?? [];
  const quorum = policy.quorum ?? 0;
  if (!Number.isSafeInteger(quorum) || quorum < 0 || quorum > witnesses.length) {
    throw new TrustError(`a quorum of ${quorum} needs at least that many witness keys (${witnesses.length} given)`);
  }
  // A key of the other kind would verify a signature of the wrong kind: a log's signature counted as a witness's.
  if (policy.log.alg !== ALG_ED25519) throw new KeyError(`log key ${policy.log.name} is a witness key, not a log's`);
  for (const w of witnesses) {
    if (w.alg !== ALG_COSIGNATURE_V1) throw new KeyError(`witness key ${w.name} is not a witness key`);
  }
  const opened = openNote(note, [policy.log, ...witnesses]);
  const by = (key: PublicNoteKey) => (s: NoteSignature) => s.name === key.name && s.keyHash === key.keyHash;
  if (!opened.sigs.some(by(policy.log)))
    throw new TrustError(`the checkpoint is not signed by the log's key ${policy.log.name}`);
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== policy.log.name) {
    throw new TrustError(`the checkpoint is for origin ${checkpoint.origin}, not ${policy.log.name}`);
  }
  const cosigners = witnesses.flatMap((w) => {
    const sig = opened.sigs.find(by(w));
    return sig === undefined ? [] : [{ name: w.name, time: cosignatureTime(sig) }];
  });
  if (cosigners.length < quorum) {
    throw new TrustError(`the checkpoint has ${cosigners.length} of the ${quorum} witness cosignatures required`);
  }
  return { ...checkpoint, cosigners };
}
