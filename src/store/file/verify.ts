/**
 * Verifying a JSONL log file: one streaming pass in constant memory, or the
 * file cut at line boundaries into ranges that worker threads verify at once,
 * linked up afterwards. Either way the verdict and the failure named are the
 * same: ranges are checked with the same rules, and the link between two
 * ranges is checked exactly as the line-by-line pass would check it.
 */
import { Worker } from 'node:worker_threads';
import { type ChainLink, ChainVerifier, type VerifyFailure } from '../../chain.js';
import { EMPTY_HEAD, type Head } from '../../entry.js';
import { EvidentError } from '../../errors.js';
import type { ChainCheck, VerifyResult } from '../store.js';
import type { Files } from './files.js';
import { readLineAt, scanLineBytes } from './lines.js';

/** What verifying one range found. Failures are numbered within the range by `index`. */
export interface RangeResult {
  start: number;
  /** Just past the last complete line scanned. */
  stop: number;
  first: ChainLink | null;
  last: Head;
  accepted: number;
  failure: (VerifyFailure & { index: number }) | null;
}

const PROGRESS_EVERY = 4 << 20;

/**
 * Verifies the complete lines in [start, end). `after`: the head the first
 * line must follow (EMPTY_HEAD at the start of the log); null takes the first
 * line as given, for the caller to link up.
 */
export async function verifyRange(
  files: Files,
  fd: number,
  start: number,
  end: number,
  after: Head | null,
  onBytes?: (bytes: number) => void,
  onLeaf?: (hash: Buffer) => void,
): Promise<RangeResult> {
  const chain = new ChainVerifier(after);
  let accepted = 0;
  let failure: RangeResult['failure'] = null;
  let reported = start;
  const stop = await scanLineBytes(files, fd, start, end, (bytes, from, to, offset, next) => {
    const problem = chain.checkBytes(bytes, from, to, offset);
    if (problem !== null) {
      failure = { ...problem, index: accepted };
      return false;
    }
    accepted++;
    onLeaf?.(Buffer.from(chain.lastHash, 'hex'));
    if (onBytes !== undefined && next - reported >= PROGRESS_EVERY) {
      onBytes(next - reported);
      reported = next;
    }
    return undefined;
  });
  onBytes?.(stop - reported);
  return { start, stop, first: chain.first, last: chain.head, accepted, failure };
}

/**
 * Streams the lines of a log file from byte `start` (where the entry after
 * `check.after` begins) to `end` (default: its size) through the chain rules; with several threads and no
 * `onLeaf`, in ranges verified at once.
 */
export async function verifyFile(
  files: Files,
  fd: number,
  path: string,
  start: number,
  check: ChainCheck,
  end?: number,
): Promise<VerifyResult> {
  const size = end ?? (await files.fstat(fd)).size;
  const after = check.after ?? EMPTY_HEAD;
  const threads = check.onLeaf === undefined ? Math.max(1, Math.floor(check.threads ?? 1)) : 1;
  const onBytes = progressOf(check, size);
  let ranges: RangeResult[];
  if (threads === 1 || size - start === 0) {
    ranges = [await verifyRange(files, fd, start, size, after, onBytes, check.onLeaf)];
  } else {
    const cuts = await lineStarts(files, fd, start, size, threads);
    ranges = await Promise.all(
      cuts.slice(0, -1).map((from, i) => inWorker(path, from, cuts[i + 1] as number, i === 0 ? after : null, onBytes)),
    );
  }
  return link(ranges, after, start, size);
}

/** Joins range results in order into one verdict, naming the first failure as a single pass would. */
function link(ranges: RangeResult[], after: Head, start: number, size: number): VerifyResult {
  let head: Head = after;
  let bytes = start;
  const failed = (failure: VerifyFailure, at: number): VerifyResult => ({
    ok: false,
    size: head.size,
    head: head.hash,
    bytes: at,
    failure,
  });
  for (const range of ranges) {
    const renumber = (f: VerifyFailure & { index: number }): VerifyFailure => ({
      seq: head.size + f.index,
      line: head.size + f.index + 1,
      offset: f.offset,
      reason: f.reason,
      message: f.message,
    });
    if (range.failure !== null && range.failure.index === 0)
      return failed(renumber(range.failure), range.failure.offset);
    if (range.first !== null && range.start > start) {
      const broken = new ChainVerifier(head).linkFailure(range.first, range.start);
      if (broken !== null) return failed(broken, range.start);
    }
    if (range.failure !== null) {
      const failure = renumber(range.failure);
      head = { ...range.last, size: head.size + range.accepted };
      return failed(failure, failure.offset);
    }
    if (range.accepted > 0) head = { ...range.last, size: head.size + range.accepted };
    bytes = range.stop;
  }
  if (bytes < size) {
    const torn = new ChainVerifier(head).tornTail(bytes, size - bytes);
    return failed(torn, bytes);
  }
  return { ok: true, size: head.size, head: head.hash, bytes: size };
}

/** `parts` + 1 offsets: start, then the start of the line at or after each k/parts of the rest, then size. */
async function lineStarts(files: Files, fd: number, start: number, size: number, parts: number): Promise<number[]> {
  const cuts = [start];
  for (let k = 1; k < parts; k++) {
    const guess = start + Math.floor(((size - start) * k) / parts);
    const line = await readLineAt(files, fd, guess - 1, size); // ends at the first newline at or after guess - 1
    const cut = line === null ? size : line.next;
    if (cut > (cuts.at(-1) as number) && cut < size) cuts.push(cut);
  }
  cuts.push(size);
  return cuts;
}

function inWorker(
  path: string,
  start: number,
  end: number,
  after: Head | null,
  onBytes?: (bytes: number) => void,
): Promise<RangeResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url), {
      workerData: { path, start, end, after, progress: onBytes !== undefined },
    });
    let result: RangeResult | null = null;
    worker.on('message', (message: { bytes?: number; result?: RangeResult }) => {
      if (message.bytes !== undefined) onBytes?.(message.bytes);
      if (message.result !== undefined) result = message.result;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (result !== null) resolve(result);
      else
        reject(
          new EvidentError('EVIDENT_READ_FAILED', `verifying bytes ${start}-${end} of ${path} stopped (exit ${code})`),
        );
    });
  });
}

function progressOf(check: ChainCheck, size: number): ((bytes: number) => void) | undefined {
  if (check.onProgress === undefined) return undefined;
  let done = 0;
  return (bytes) => {
    done += bytes;
    check.onProgress?.({ entries: -1, bytes: done, totalBytes: size });
  };
}
