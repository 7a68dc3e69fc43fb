/** Shared test plumbing: temporary directories, the built CLI, and a file layer that counts and fails on demand. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Files, nodeFiles } from '../src/store/file/files.js';

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
  options: { stdin?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
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
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs the built `evident` CLI. */
export function evident(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return runNode(CLI, args, options);
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
  /** Appends and in-place writes, a native commit's append included. */
  writes: number;
  /** fdatasync calls, a native commit's included. */
  syncs: number;
  bytesRead: number;
  /** Native commits (native/commit.c), by how they ended; declined ones by reason. */
  commits: { committed: number; declined: string[]; failed: number };
}

/** The real file layer, counting opens per path and writes and syncs. */
export function countingFiles(): { files: Files; counts: Counts } {
  const counts: Counts = {
    opens: new Map(),
    writes: 0,
    syncs: 0,
    bytesRead: 0,
    commits: { committed: 0, declined: [], failed: 0 },
  };
  const commitBatch = nodeFiles.commitBatch;
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
    commitBatch:
      commitBatch &&
      (async (request) => {
        const result = await commitBatch(request);
        if (result.status === 'committed') {
          counts.commits.committed++;
          counts.writes++;
          if (request.sync) counts.syncs++;
        } else if (result.status === 'declined') counts.commits.declined.push(result.declined);
        else counts.commits.failed++;
        return result;
      }),
  };
  return { files, counts };
}

/** An operating-system style error, as fs raises them. */
export function osError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}
