/**
 * <dir>/config.json: what the log is, beyond its entries. Only signing logs
 * have one (written by `evident init --key`):
 *
 *   { "origin": "<the key's name>", "verifierKey": "<name+hash+key>", "keyFile": "<absolute path>" }
 *
 * Writers sign with the key in keyFile, or the one EVIDENT_KEY (or the key
 * option) names, which must be the same key.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EvidentError, InvalidOptionError } from '../../errors.js';
import { type PrivateNoteKey, parseSignerKey, parseVerifierKey, verifierKeyOf } from '../../note/keys.js';

export const CONFIG_FILE = 'config.json';

export interface LogConfig {
  origin: string;
  verifierKey: string;
  keyFile?: string | undefined;
}

/** The log's config, or null for a log that does not sign. */
export function readConfig(dir: string): LogConfig | null {
  let text: string;
  try {
    text = readFileSync(join(dir, CONFIG_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const value = JSON.parse(text) as Partial<LogConfig>;
  if (typeof value.origin !== 'string' || typeof value.verifierKey !== 'string') {
    throw new EvidentError('EVIDENT_BAD_CONFIG', `${join(dir, CONFIG_FILE)} lacks origin or verifierKey`);
  }
  parseVerifierKey(value.verifierKey);
  return { origin: value.origin, verifierKey: value.verifierKey, keyFile: value.keyFile };
}

export function writeConfig(dir: string, config: LogConfig): void {
  writeFileSync(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
}

/**
 * Loads a signer key from `source`: the key itself (PRIVATE+KEY+...) or the
 * path of a file holding it. The key text is never put in an error message.
 */
export function loadSignerKey(source: string): PrivateNoteKey {
  const text = source.startsWith('PRIVATE+KEY+') ? source : readKeyFile(source);
  return parseSignerKey(text);
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new EvidentError(
      'EVIDENT_NO_KEY',
      `cannot read the signing key ${path}: ${(error as NodeJS.ErrnoException).code}`,
    );
  }
}

/** The signer for a log: from `key` (option or $EVIDENT_KEY) else the config's keyFile; checked against the config. */
export function signerFor(config: LogConfig, key: string | undefined): PrivateNoteKey {
  const source = key ?? config.keyFile;
  if (source === undefined) {
    throw new EvidentError(
      'EVIDENT_NO_KEY',
      `the log signs checkpoints as ${config.origin}: give its key (--key or EVIDENT_KEY)`,
    );
  }
  const signer = loadSignerKey(source);
  if (verifierKeyOf(signer) !== config.verifierKey) {
    throw new InvalidOptionError(`the key given is not this log's key (${config.verifierKey})`);
  }
  return signer;
}

/**
 * Makes the log in `dir` a signing log with the key `source` (a key file, or
 * the key text): writes config.json, naming the file when there is one. A log
 * that already signs with another key is refused.
 */
export function initSigning(dir: string, source: string): LogConfig {
  const key = loadSignerKey(source);
  const config: LogConfig = {
    origin: key.name,
    verifierKey: verifierKeyOf(key),
    keyFile: source.startsWith('PRIVATE+KEY+') ? undefined : resolve(source),
  };
  const existing = readConfig(dir);
  if (existing !== null && existing.verifierKey !== config.verifierKey) {
    throw new InvalidOptionError(`the log in ${dir} already signs with ${existing.verifierKey}`);
  }
  if (existing === null) writeConfig(dir, config);
  return existing ?? config;
}
