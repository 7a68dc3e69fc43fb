/** Shared test plumbing: temporary directories, the built CLI, and a file layer that counts and fails on demand. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Entry } from '../src/entry.js';
import { type CheckpointEvent, Log } from '../src/log.js';
import { generateNoteKey, type PublicNoteKey, parseVerifierKey } from '../src/note/keys.js';
import { type TrustedCheckpoint, trustCheckpoint } from '../src/note/trust.js';
import { type Files, nodeFiles } from '../src/store/file/files.js';
import { FileStore } from '../src/store/file/store.js';
import { acquirePool, quoted, releasePool } from '../src/store/postgres/connection.js';
import type { VerifyResult } from '../src/store/store.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (tests run from dist/test). */
export const ROOT = resolve(here, '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const FIXTURES = join(here, 'fixtures');
export const VECTORS = join(ROOT, 'test', 'vectors');

const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** Verifies the log in `store`, opened read-only. */
export async function verifyStore(store: string): Promise<VerifyResult> {
  const log = new Log({ store, readOnly: true });
  try {
    return await log.verify();
  } finally {
    await log.close();
  }
}

/** Every entry of the log in `store`, opened read-only. */
export async function readStore(store: string): Promise<Entry[]> {
  const log = new Log({ store, readOnly: true });
  const entries: Entry[] = [];
  try {
    for await (const entry of log.read()) entries.push(entry);
  } finally {
    await log.close();
  }
  return entries;
}

/** A fresh directory, removed when the test process exits. */
export function tempDir(prefix = 'evident-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a node script to completion and collects its output. */
export function runNode(
  script: string,
  args: string[],
  options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] } = {},
): Promise<Ran> {
  return run(process.execPath, [...(options.nodeArgs ?? []), script, ...args], options);
}

/** Runs a program to completion and collects its output. */
export function run(
  program: string,
  args: string[],
  options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    // A program may stop reading early (a refused input): the rest of its input is not a failure of the test.
    child.stdin.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') reject(error);
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs the built `evident` CLI. */
export function evident(
  args: string[],
  options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {},
): Promise<Ran> {
  return runNode(CLI, args, options);
}

/**
 * Starts a long-running `evident` command (serve, witness serve) that says
 * on stderr where it listens: its process, that URL, its exit, its stdout.
 */
export function daemon(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args]);
  let err = '';
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const url = new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const found = / on (https?:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (found) resolve(found[1] as string);
    });
    child.on('exit', (code) => reject(new Error(`evident ${args[0]} exited ${code}: ${err}`)));
  });
  url.catch(() => {});
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, url, exited, stdout: () => out, stderr: () => err };
}

/** Resolves when `child` has exited, even if it did before this was called (its 'exit' event is gone then). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** The log file's lines (without the final empty string). */
export function readLines(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

export function writeLines(path: string, lines: string[]): void {
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
}

/** Calls made through a counting file layer, by operation and by path. */
export interface Counts {
  opens: Map<string, number>;
  /** Appends and in-place writes. */
  writes: number;
  /** fdatasync calls, a sync-then-unlock's included. */
  syncs: number;
  bytesRead: number;
}

/** The real file layer, counting opens per path and writes and syncs. */
export function countingFiles(): { files: Files; counts: Counts } {
  const counts: Counts = { opens: new Map(), writes: 0, syncs: 0, bytesRead: 0 };
  const files: Files = {
    ...nodeFiles,
    open: (path, flags, mode) => {
      counts.opens.set(path, (counts.opens.get(path) ?? 0) + 1);
      return nodeFiles.open(path, flags, mode);
    },
    read: async (fd, buffer, offset, length, position) => {
      const n = await nodeFiles.read(fd, buffer, offset, length, position);
      counts.bytesRead += n;
      return n;
    },
    write: (fd, buffer, offset, length) => {
      counts.writes++;
      return nodeFiles.write(fd, buffer, offset, length);
    },
    fdatasync: (fd) => {
      counts.syncs++;
      return nodeFiles.fdatasync(fd);
    },
    syncUnlock: (fd, lockFd) => {
      counts.syncs++;
      return nodeFiles.syncUnlock(fd, lockFd);
    },
  };
  return { files, counts };
}

/** A directory store over `files` (the real file layer, or one that counts or fails). */
export function fileStore(dir: string, files: Files = nodeFiles, durability?: 'fsync' | 'write'): FileStore {
  return new FileStore(dir, { files, durability });
}

/** An operating-system style error, as fs raises them. */
export function osError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** A fresh signing log's directory and key file (init() creates it), and its verifier key. */
export function signingLog(name: string): {
  dir: string;
  keyFile: string;
  verifier: string;
  key: PublicNoteKey;
  init: () => Promise<void>;
} {
  const root = tempDir();
  const { signer, verifier } = generateNoteKey(name);
  const keyFile = join(root, 'log.key');
  writeFileSync(keyFile, `${signer}\n`, { mode: 0o600 });
  const dir = join(root, 'log');
  return {
    dir,
    keyFile,
    verifier,
    key: parseVerifierKey(verifier),
    init: () => Log.init({ store: dir, signingKey: keyFile }),
  };
}

/** The checkpoint stored in a directory log, trusted with `key`. */
export function storedCheckpoint(dir: string, key: PublicNoteKey): TrustedCheckpoint {
  return trustCheckpoint(readFileSync(join(dir, 'checkpoint'), 'utf8'), { log: key });
}

/**
 * `promise`, with the process kept alive until it settles: a log's interval
 * timer does not keep a process alive, so a test awaiting what it does must.
 */
export function alive<T>(promise: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  return promise.finally(() => clearInterval(timer));
}

/** The next checkpoint `log` signs that covers at least `size` entries. */
export function signed(log: Log, size: number): Promise<CheckpointEvent> {
  return alive(
    new Promise<CheckpointEvent>((resolve) => {
      const listener = (event: CheckpointEvent) => {
        if (event.size < size) return;
        log.off('checkpoint', listener);
        resolve(event);
      };
      log.on('checkpoint', listener);
    }),
  );
}

/** The next process warning. */
export function warning(): Promise<Error> {
  return alive(new Promise<Error>((resolve) => process.once('warning', resolve)));
}

/** Processes holding (or, with `blocked`, waiting for) a flock on the file at `path`, from /proc/locks. */
export function flockers(path: string, blocked = false): number[] {
  const inode = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .map((f) => (f[1] === '->' ? { waits: true, f: f.slice(1) } : { waits: false, f }))
    .filter(({ waits, f }) => waits === blocked && f[1] === 'FLOCK' && Number(f[5]?.split(':')[2]) === inode)
    .map(({ f }) => Number(f[4]));
}

/** Resolves once `condition()` holds, checking as the event loop turns; fails after `ms` naming `what`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The database the PostgreSQL tests use (trust auth on this machine); each test gets a fresh schema in it. */
export const POSTGRES = process.env.EVIDENT_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schemas: string[] = [];

/** The store URL of a fresh, empty schema in the test database; dropTestSchemas() removes them. */
export function postgresLog(): string {
  const schema = `evident_test_${process.pid}_${schemas.length}_${Math.random().toString(36).slice(2, 8)}`;
  schemas.push(schema);
  return `${POSTGRES}?schema=${schema}`;
}

/** Drops the schemas postgresLog() named (for an after() hook). */
export async function dropTestSchemas(): Promise<void> {
  const pool = acquirePool(POSTGRES);
  try {
    for (const schema of schemas.splice(0)) await pool.query(`drop schema if exists ${quoted(schema)} cascade`);
  } finally {
    await releasePool(POSTGRES);
  }
}

/**
 * Builds a Go reference peer from test/interop/<source> against Debian's
 * golang.org/x/mod (GOPATH mode, nothing downloaded); null without Go.
 */
export function buildGo(source: string): string | null {
  const gopath = '/usr/share/gocode';
  if (!existsSync(join(gopath, 'src/golang.org/x/mod/sumdb/note/note.go'))) return null;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const dir = tempDir('evident-go-');
  mkdirSync(join(dir, 'src'));
  copyFileSync(join(ROOT, 'test', 'interop', source), join(dir, 'src', 'main.go'));
  const binary = join(dir, source.replace(/\.go$/, ''));
  execFileSync('go', ['build', '-o', binary, 'main.go'], {
    cwd: join(dir, 'src'),
    env: { ...process.env, GO111MODULE: 'off', GOPATH: gopath, GOCACHE: join(dir, 'cache'), GOFLAGS: '' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return binary;
}
