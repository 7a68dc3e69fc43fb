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
import { emptyRoot } from '../../merkle/hash.js';
import { TreeEdge } from '../../merkle/tiles.js';
import { pairHasher } from '../../native.js';
import type { TrustedCheckpoint } from '../../note/trust.js';
import type { VerifyOptions, VerifyResult } from '../store.js';
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
 * Verifies the complete lines in [start, end). `fromGenesis`: the range starts
 * the log (the first entry must be seq 0); otherwise the first line is taken
 * as given and linked up by the caller.
 */
export async function verifyRange(
  files: Files,
  fd: number,
  start: number,
  end: number,
  fromGenesis: boolean | Head,
  onBytes?: (bytes: number) => void,
  onLeaf?: (hash: string) => void,
): Promise<RangeResult> {
  const chain = new ChainVerifier(fromGenesis === true ? EMPTY_HEAD : fromGenesis === false ? null : fromGenesis);
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
    onLeaf?.(chain.lastHash);
    if (onBytes !== undefined && next - reported >= PROGRESS_EVERY) {
      onBytes(next - reported);
      reported = next;
    }
    return undefined;
  });
  onBytes?.(stop - reported);
  return { start, stop, first: chain.first, last: chain.head, accepted, failure };
}

/** Streams a log file through the chain rules; with `threads` > 1 and a large file, in parallel ranges. */
export async function verifyLog(
  files: Files,
  fd: number,
  path: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const { size } = await files.fstat(fd);
  const threads = Math.max(1, Math.floor(options.threads ?? 1));
  const onBytes = progressOf(options, size);
  let ranges: RangeResult[];
  if (threads === 1 || size === 0) {
    ranges = [await verifyRange(files, fd, 0, size, true, onBytes)];
  } else {
    const cuts = await lineStarts(files, fd, size, threads);
    ranges = await Promise.all(
      cuts.slice(0, -1).map((start, i) => inWorker(path, start, cuts[i + 1] as number, i === 0, onBytes)),
    );
  }
  return link(ranges, size);
}

/** Joins range results in order into one verdict, naming the first failure as a single pass would. */
function link(ranges: RangeResult[], size: number): VerifyResult {
  let head: Head = EMPTY_HEAD;
  let bytes = 0;
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
    if (range.first !== null && range.start > 0) {
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

/** `parts` + 1 offsets: 0, then the start of the line at or after each k/parts of the file, then size. */
async function lineStarts(files: Files, fd: number, size: number, parts: number): Promise<number[]> {
  const cuts = [0];
  for (let k = 1; k < parts; k++) {
    const guess = Math.floor((size * k) / parts);
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
  fromGenesis: boolean,
  onBytes?: (bytes: number) => void,
): Promise<RangeResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url), {
      workerData: { path, start, end, fromGenesis, progress: onBytes !== undefined },
    });
    let result: RangeResult | null = null;
    worker.on('message', (message: { bytes?: number; result?: RangeResult }) => {
      if (message.bytes !== undefined) onBytes?.(message.bytes);
      if (message.result !== undefined) result = message.result;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (result !== null) resolve(result);
      else reject(new Error(`verify worker for bytes ${start}-${end} exited with code ${code}`));
    });
  });
}

/**
 * Verifies the whole log against a trusted checkpoint: the chain as usual,
 * and the RFC 9162 tree recomputed from the entries' hashes as they stream by
 * (constant memory: the tree's right edge). The entries the checkpoint covers
 * must still be there (else `truncated`) and hash to its root (else
 * `rewritten`).
 */
export async function verifyLogWithCheckpoint(
  files: Files,
  fd: number,
  checkpoint: TrustedCheckpoint,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const { size } = await files.fstat(fd);
  const edge = new TreeEdge(0, [], pairHasher);
  let rootAtCheckpoint: Buffer | null = checkpoint.size === 0 ? emptyRoot() : null;
  const onLeaf = (hash: string) => {
    edge.append([Buffer.from(hash, 'hex')]);
    if (edge.size === checkpoint.size) rootAtCheckpoint = edge.root();
  };
  const range = await verifyRange(files, fd, 0, size, true, progressOf(options, size), onLeaf);
  const result = link([range], size);
  return judgeAgainstCheckpoint(result, checkpoint, rootAtCheckpoint, edge.root());
}

/** Adds the checkpoint's verdict to a chain verdict: chain failures first, then truncation, then a rewritten prefix. */
export function judgeAgainstCheckpoint(
  result: VerifyResult,
  checkpoint: TrustedCheckpoint,
  rootAtCheckpoint: Buffer | null,
  root: Buffer,
): VerifyResult {
  const fail = (failure: VerifyFailure): VerifyResult => ({ ...result, ok: false, failure });
  const judged = { ...result, root: root.toString('base64') };
  if (!result.ok) {
    // A rewritten prefix matters more than a later failure: it is earlier in the log.
    if (rootAtCheckpoint !== null && !rootAtCheckpoint.equals(checkpoint.root)) return fail(rewritten(checkpoint));
    return judged;
  }
  if (result.size < checkpoint.size) {
    return fail({
      seq: result.size,
      line: result.size + 1,
      offset: result.bytes,
      reason: 'truncated',
      message: `the log has ${result.size} entries but the checkpoint covers ${checkpoint.size}: entries were cut off`,
    });
  }
  if (rootAtCheckpoint === null || !rootAtCheckpoint.equals(checkpoint.root)) return fail(rewritten(checkpoint));
  return judged;
}

function rewritten(checkpoint: TrustedCheckpoint): VerifyFailure {
  return {
    seq: checkpoint.size - 1,
    line: checkpoint.size,
    offset: 0,
    reason: 'rewritten',
    message: `the first ${checkpoint.size} entries do not hash to the checkpoint's root: that history was rewritten`,
  };
}

function progressOf(options: VerifyOptions, size: number): ((bytes: number) => void) | undefined {
  if (options.onProgress === undefined) return undefined;
  let done = 0;
  return (bytes) => {
    done += bytes;
    options.onProgress?.({ entries: -1, bytes: done, totalBytes: size });
  };
}
