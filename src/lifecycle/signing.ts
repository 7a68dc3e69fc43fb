/**
 * A signing log knows it signs from its own chain: its first entry declares
 * its origin and verifier key,
 *
 *   {"actor":"evident","action":"evident.log.init","data":{"origin":O,"verifierKey":V},...}
 *
 * so no file beside the entries (a config file, the checkpoint) can turn it
 * into a log that does not sign, or give it another key. An operator who
 * accepts a history that no longer matches the log's signed checkpoint
 * re-anchors it, and that too is an entry:
 *
 *   {"actor":A,"action":"evident.log.reanchor","data":{"reason":R,"previous":NOTE|null,"size":N,"root":B64},...}
 *
 * Actions under `evident.` are the log's own; callers cannot append them.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import type { Entry, EntryInput } from '../entry.js';
import { EvidentError, KeyError, LogCorruptError } from '../errors.js';
import {
  ALG_ED25519,
  type PrivateNoteKey,
  type PublicNoteKey,
  parseSignerKey,
  parseVerifierKey,
  verifierKeyOf,
} from '../note/keys.js';

export const INIT_ACTION = 'evident.log.init';
export const REANCHOR_ACTION = 'evident.log.reanchor';
/** The actor of the entries the log writes itself. */
export const LOG_ACTOR = 'evident';

/** What a signing log's first entry declares. */
export interface SigningIdentity {
  origin: string;
  verifierKey: PublicNoteKey;
}

/** The identity a log's first entry declares, or null for a log that does not sign. */
export function identityOf(first: Entry | null): SigningIdentity | null {
  if (first === null || first.action !== INIT_ACTION) return null;
  const data = first.data ?? {};
  const { origin, verifierKey } = data as { origin?: unknown; verifierKey?: unknown };
  if (first.seq !== 0 || typeof origin !== 'string' || typeof verifierKey !== 'string') {
    throw new LogCorruptError(`entry ${first.seq} is an ${INIT_ACTION} entry without an origin and verifier key`);
  }
  let key: PublicNoteKey;
  try {
    key = parseVerifierKey(verifierKey);
  } catch (error) {
    throw new LogCorruptError(`entry 0 declares a verifier key that does not parse: ${(error as Error).message}`);
  }
  if (key.name !== origin || key.alg !== ALG_ED25519) {
    throw new LogCorruptError(`entry 0 declares origin ${origin} with a key that cannot sign its checkpoints`);
  }
  return { origin, verifierKey: key };
}

/** The first entry of a log that signs with `key`. */
export function initEntry(key: PrivateNoteKey): EntryInput {
  return { actor: LOG_ACTOR, action: INIT_ACTION, data: { origin: key.name, verifierKey: verifierKeyOf(key) } };
}

/** The entry recording that an operator re-anchored the log on the history it now holds. */
export function reanchorEntry(
  actor: string,
  reason: string,
  previous: string | null,
  tree: { size: number; root: Buffer },
): EntryInput {
  return {
    actor,
    action: REANCHOR_ACTION,
    data: { reason, previous, size: tree.size, root: tree.root.toString('base64') },
  };
}

/** A key that can sign a log's checkpoints: an Ed25519 note key (not a witness's cosignature key). */
export function checkpointKey(key: PrivateNoteKey): PrivateNoteKey {
  if (key.alg !== ALG_ED25519) {
    throw new KeyError(`${key.name} is a witness (cosignature) key; a log signs with a key from evident keygen`);
  }
  return key;
}

/** A key file is one line of about 100 bytes; anything far larger is not one. */
const MAX_KEY_FILE = 64 * 1024;

/**
 * Loads a signer key from `source`: the key itself (PRIVATE+KEY+...) or the
 * path of a file holding it. The key text never appears in an error message.
 * A key file others can read is reported through `warn`, as ssh would.
 */
export function loadSignerKey(source: string, warn: (message: string) => void = () => {}): PrivateNoteKey {
  if (source.startsWith('PRIVATE+KEY+')) return parseSignerKey(source);
  const unreadable = (why: string) =>
    new EvidentError('EVIDENT_NO_KEY', `cannot read the signing key ${source}: ${why}`);
  let fd: number;
  try {
    fd = openSync(source, constants.O_RDONLY | constants.O_NONBLOCK); // a FIFO would wait for a writer
  } catch (error) {
    throw unreadable((error as NodeJS.ErrnoException).code ?? String(error));
  }
  let text: string;
  let mode: number;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw unreadable('it is not a regular file');
    if (stat.size > MAX_KEY_FILE) throw unreadable(`it is ${stat.size} bytes, larger than a key file`);
    mode = stat.mode;
    text = readFileSync(fd, 'utf8');
  } catch (error) {
    if (error instanceof EvidentError) throw error;
    throw unreadable((error as NodeJS.ErrnoException).code ?? String(error));
  } finally {
    closeSync(fd);
  }
  if ((mode & 0o077) !== 0) {
    warn(`the signing key ${source} can be read by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  return parseSignerKey(text);
}

/** The log's signer from `source` (a key or its file), which must be the key its first entry declares. */
export function signerFor(identity: SigningIdentity, source: string, warn?: (message: string) => void): PrivateNoteKey {
  const key = loadSignerKey(source, warn);
  if (verifierKeyOf(key) !== verifierKeyOf(identity.verifierKey)) {
    throw new KeyError(
      `the key given is not this log's key: the log already signs as ${identity.origin} with ${verifierKeyOf(identity.verifierKey)}`,
    );
  }
  return key;
}
