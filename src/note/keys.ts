/**
 * Keys for signed notes (C2SP signed-note), in the text forms Go's
 * golang.org/x/mod/sumdb/note uses:
 *
 *   verifier key  <name>+<key hash, 8 hex>+base64(<alg> || public key)
 *   signer key    PRIVATE+KEY+<name>+<key hash>+base64(<alg> || Ed25519 seed)
 *
 * The key hash is the first 4 bytes, big-endian, of
 * SHA-256(name || "\n" || alg || public key). Algorithm 0x01 is a plain
 * Ed25519 note signature; 0x04 is a timestamped witness cosignature
 * (C2SP tlog-cosignature, cosignature/v1) made with an Ed25519 key.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { decodeStdBase64 } from '../encoding/base64.js';
import { KeyError } from '../errors.js';

export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;

export type KeyAlgorithm = typeof ALG_ED25519 | typeof ALG_COSIGNATURE_V1;

/** Go's unicode.IsSpace set, and '+': what a key name must not contain (signed-note §Signatures). */
const NOT_IN_NAME = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/;

/** A key name: non-empty, no white space, no '+', as Go's note package reads names. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !NOT_IN_NAME.test(name);
}

/** The 32-bit key hash (key ID) of a named public key with its algorithm byte. */
export function keyHash(name: string, alg: number, publicKey: Uint8Array): number {
  const digest = createHash('sha256')
    .update(name)
    .update('\n')
    .update(Buffer.from([alg]))
    .update(publicKey)
    .digest();
  return digest.readUInt32BE(0);
}

/** A named Ed25519 public key, as parsed from a verifier key. */
export interface PublicNoteKey {
  name: string;
  alg: KeyAlgorithm;
  keyHash: number;
  publicKey: Buffer;
  key: KeyObject;
}

/** A named Ed25519 private key, as parsed from a signer key. */
export interface PrivateNoteKey extends PublicNoteKey {
  seed: Buffer;
  privateKey: KeyObject;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** Parses `<name>+<hash>+<base64>`; checks the name, the algorithm, the key length and the hash. */
export function parseVerifierKey(text: string): PublicNoteKey {
  if (text.trim().startsWith('PRIVATE+KEY+')) {
    throw new KeyError('this is a private (signer) key: give its verifier key, which `evident keygen` printed');
  }
  const parts = splitKey(text.trim());
  if (parts === null) throw new KeyError(`verifier key ${JSON.stringify(text)} is not <name>+<hash>+<key>`);
  const [name, hash, encoded] = parts;
  const raw = decodeKey(encoded, hash, name);
  const alg = raw[0];
  if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) {
    throw new KeyError(`verifier key ${name}: unknown algorithm 0x${(alg ?? 0).toString(16).padStart(2, '0')}`);
  }
  const publicKey = raw.subarray(1);
  if (publicKey.length !== 32)
    throw new KeyError(`verifier key ${name}: Ed25519 keys are 32 bytes, not ${publicKey.length}`);
  if (keyHash(name, alg, publicKey) !== Number.parseInt(hash, 16)) {
    throw new KeyError(`verifier key ${name}: key hash ${hash} does not match the key`);
  }
  return { name, alg, keyHash: Number.parseInt(hash, 16), publicKey, key: ed25519Public(publicKey) };
}

/** Parses `PRIVATE+KEY+<name>+<hash>+<base64>`; derives the public key and checks the hash. */
export function parseSignerKey(text: string): PrivateNoteKey {
  const trimmed = text.trim();
  const parts = trimmed.startsWith('PRIVATE+KEY+') ? splitKey(trimmed.slice('PRIVATE+KEY+'.length)) : null;
  if (parts === null) throw new KeyError('signer key is not PRIVATE+KEY+<name>+<hash>+<key>');
  const [name, hash, encoded] = parts;
  const raw = decodeKey(encoded, hash, name);
  const alg = raw[0];
  if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) throw new KeyError(`signer key ${name}: unknown algorithm`);
  const seed = raw.subarray(1);
  if (seed.length !== 32) throw new KeyError(`signer key ${name}: an Ed25519 seed is 32 bytes, not ${seed.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x as string, 'base64url');
  if (keyHash(name, alg, publicKey) !== Number.parseInt(hash, 16)) {
    throw new KeyError(`signer key ${name}: key hash ${hash} does not match the key`);
  }
  return { name, alg, keyHash: Number.parseInt(hash, 16), publicKey, key: ed25519Public(publicKey), seed, privateKey };
}

/** `<name>+<hash>+<key>`, split at the first two '+' (base64 may hold more). */
function splitKey(text: string): [string, string, string] | null {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) return null;
  return [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
}

function decodeKey(encoded: string, hash: string, name: string): Buffer {
  if (!isValidKeyName(name)) throw new KeyError(`key name ${JSON.stringify(name)} is empty or has a space or '+'`);
  if (!/^[0-9a-f]{8}$/.test(hash)) throw new KeyError(`key ${name}: hash ${JSON.stringify(hash)} is not 8 hex digits`);
  const raw = decodeStdBase64(encoded);
  if (raw === null) throw new KeyError(`key ${name}: key is not padded standard base64`);
  if (raw.length < 2) throw new KeyError(`key ${name}: key is too short`);
  return raw;
}

/** The DER prefix of a PKCS #8 Ed25519 private key; the 32-byte seed follows (RFC 8410 §7). */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/** A new Ed25519 key pair for `name`, in signer and verifier text forms. */
export function generateNoteKey(name: string, alg: KeyAlgorithm = ALG_ED25519): { signer: string; verifier: string } {
  if (!isValidKeyName(name)) throw new KeyError(`key name ${JSON.stringify(name)} is empty or has a space or '+'`);
  // A note may hold no control character below U+0020 but newline, so a key so named could sign none that opens.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\u0000-\u001f]/.test(name)) throw new KeyError(`key name ${JSON.stringify(name)} has a control character`);
  if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) {
    throw new KeyError(`algorithm ${String(alg)}: a key is ALG_ED25519 (a log's) or ALG_COSIGNATURE_V1 (a witness's)`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const hash = hex8(keyHash(name, alg, pub));
  const algByte = Buffer.from([alg]);
  return {
    signer: `PRIVATE+KEY+${name}+${hash}+${Buffer.concat([algByte, seed]).toString('base64')}`,
    verifier: `${name}+${hash}+${Buffer.concat([algByte, pub]).toString('base64')}`,
  };
}

/** The verifier key text of a parsed key. */
export function verifierKeyOf(key: PublicNoteKey): string {
  return `${key.name}+${hex8(key.keyHash)}+${Buffer.concat([Buffer.from([key.alg]), key.publicKey]).toString('base64')}`;
}
