/**
 * The HTTP service's bearer tokens, kept in one JSON file (mode 0600) that
 * holds only each secret's SHA-256: a name, its scopes, and the actors it
 * may append as (`*` matches any run of characters; none: any actor).
 * A secret is printed once, when it is made.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { EvidentError, InvalidOptionError } from '../errors.js';
import { native } from '../store/file/native.js';

export const SCOPES = ['append', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Token {
  name: string;
  /** SHA-256 of the secret, hex. */
  hash: string;
  scopes: Scope[];
  /** Patterns the actor of every entry it appends must match; absent: any. */
  actors?: string[];
  created: string;
}

interface TokenFile {
  tokens: Token[];
}

const digest = (secret: string) => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Reads the token file; a missing file holds no tokens. */
export function readTokens(path: string): Token[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new EvidentError('EVIDENT_BAD_CONFIG', `cannot read the token file ${path}: ${(error as Error).message}`);
  }
  try {
    const file = JSON.parse(text) as TokenFile;
    if (!Array.isArray(file.tokens)) throw new Error('no "tokens" list');
    return file.tokens;
  } catch (error) {
    throw new EvidentError('EVIDENT_BAD_CONFIG', `${path} is not a token file: ${(error as Error).message}`);
  }
}

function writeTokens(path: string, tokens: Token[]): void {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ tokens }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/** How long a change waits for another change to the same file before it gives up. */
const LOCK_WAIT_MS = 10_000;

/**
 * Runs `change` holding an exclusive flock on the directory that holds the
 * file: changes are read, modified and written whole, so two at once (a
 * revoke and an add) would otherwise each write what it read, and one of
 * them would be lost — a revoked token back, or a new one gone though its
 * secret was handed out. The directory, not a lock file: it needs no file of
 * its own that another user may have created first, and it is not replaced
 * as the file is. Synchronous, as the CLI's token commands are: it polls.
 */
function changing<T>(path: string, change: () => T): T {
  const directory = dirname(path);
  let fd: number;
  try {
    fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    throw new EvidentError('EVIDENT_BAD_CONFIG', `cannot open ${directory}: ${(error as Error).message}`);
  }
  try {
    const addon = native();
    const until = Date.now() + LOCK_WAIT_MS;
    while (!addon.tryLock(fd)) {
      if (Date.now() > until) {
        throw new EvidentError(
          'EVIDENT_BAD_CONFIG',
          `${path} is being changed by another process (${directory} is locked)`,
        );
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
    try {
      return change();
    } finally {
      addon.unlock(fd);
    }
  } finally {
    closeSync(fd);
  }
}

/** Makes a token; returns its secret, which is stored nowhere. */
export function addToken(path: string, name: string, scopes: string[], actors?: string[]): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new InvalidOptionError(`token name ${JSON.stringify(name)}: letters, digits, '.', '_' and '-', up to 64`);
  }
  if (scopes.length === 0) throw new InvalidOptionError('a token needs at least one scope: append, read, admin');
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new InvalidOptionError(`no scope ${JSON.stringify(scope)}; there are ${SCOPES.join(', ')}`);
    }
  }
  for (const pattern of actors ?? []) {
    if (pattern === '') throw new InvalidOptionError('an empty --actors pattern');
  }
  return changing(path, () => {
    const tokens = readTokens(path);
    if (tokens.some((t) => t.name === name)) throw new InvalidOptionError(`a token named ${name} exists already`);
    const secret = `evt_${randomBytes(32).toString('base64url')}`;
    const token: Token = {
      name,
      hash: digest(secret),
      scopes: [...new Set(scopes)] as Scope[],
      created: new Date().toISOString(),
    };
    if (actors !== undefined && actors.length > 0) token.actors = actors;
    writeTokens(path, [...tokens, token]);
    return secret;
  });
}

/** Removes a token; false if there was none of that name. */
export function revokeToken(path: string, name: string): boolean {
  return changing(path, () => {
    const tokens = readTokens(path);
    const kept = tokens.filter((t) => t.name !== name);
    if (kept.length === tokens.length) return false;
    writeTokens(path, kept);
    return true;
  });
}

/** The token whose secret this is, or null. */
export function findToken(tokens: readonly Token[], secret: string): Token | null {
  const hash = Buffer.from(digest(secret), 'hex');
  let found: Token | null = null;
  for (const token of tokens) {
    const stored = Buffer.from(token.hash, 'hex');
    if (stored.length === hash.length && timingSafeEqual(stored, hash)) found = token;
  }
  return found;
}

/** Whether `token` may append as `actor`. */
export function mayActAs(token: Token, actor: string): boolean {
  if (token.actors === undefined) return true;
  return token.actors.some((pattern) => globMatch(pattern, actor));
}

/**
 * `*` matches any run of characters; everything else itself. Greedy, going
 * back only to the last star: at most pattern × text steps, where a regular
 * expression of several `.*` backtracked for seconds on a long actor.
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1; // the pattern's last star seen, and where in the text its run ends so far
  let starEnd = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      starEnd = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++starEnd;
    } else return false;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
