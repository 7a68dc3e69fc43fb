/**
 * Reading a JSONL file by lines without reading it all: forward scans in
 * fixed-size chunks, the last line from the end, and binary search over line
 * starts. Lines are UTF-8 and end in '\n'; a line never contains '\n'
 * (canonical JSON escapes it), so line boundaries are byte-exact.
 */
import { constants } from 'node:fs';
import { type Files, openOwn } from './files.js';

const NL = 0x0a;
export const CHUNK = 1 << 20;
const PROBE = 4096;

/** One complete line: its text (no newline), where it starts, and where the next line starts. */
export interface Line {
  text: string;
  offset: number;
  next: number;
}

/**
 * Calls `onLine` for every complete line in [start, end) in order, as the
 * byte range [from, to) of `bytes` (no newline), with its file offset and the
 * next line's; stops early when it returns false. Returns the offset just past
 * the last complete line seen, so `end - returned` bytes at the end had no
 * newline. Memory: one chunk plus the longest line.
 */
export async function scanLineBytes(
  files: Files,
  fd: number,
  start: number,
  end: number,
  onLine: (bytes: Buffer, from: number, to: number, offset: number, next: number) => boolean | undefined,
  chunkSize = CHUNK,
): Promise<number> {
  const buffer = Buffer.allocUnsafe(chunkSize);
  let carry: Buffer | null = null; // bytes of a line that began in an earlier chunk
  let lineStart = start;
  let position = start;
  while (position < end) {
    const n = await readFully(files, fd, buffer, Math.min(chunkSize, end - position), position);
    if (n === 0) break;
    let from = 0;
    for (let nl = buffer.indexOf(NL, 0); nl !== -1 && nl < n; nl = buffer.indexOf(NL, from)) {
      const next = position + nl + 1;
      let stop: boolean;
      if (carry !== null) {
        const joined = Buffer.concat([carry, buffer.subarray(0, nl)]);
        carry = null;
        stop = onLine(joined, 0, joined.length, lineStart, next) === false;
      } else {
        stop = onLine(buffer, from, nl, lineStart, next) === false;
      }
      if (stop) return next;
      lineStart = next;
      from = nl + 1;
    }
    if (from < n) {
      const rest = Buffer.from(buffer.subarray(from, n));
      carry = carry === null ? rest : Buffer.concat([carry, rest]);
    }
    position += n;
  }
  return lineStart;
}

/** scanLineBytes, with each line decoded as UTF-8 text. */
export function scanLines(
  files: Files,
  fd: number,
  start: number,
  end: number,
  onLine: (text: string, offset: number, next: number) => boolean | undefined,
  chunkSize = CHUNK,
): Promise<number> {
  return scanLineBytes(
    files,
    fd,
    start,
    end,
    (bytes, from, to, offset, next) => onLine(bytes.toString('utf8', from, to), offset, next),
    chunkSize,
  );
}

/**
 * Async iteration over complete lines in [start, end), reading a chunk at a
 * time: 64 KiB first, doubling up to CHUNK, so that a caller that wants only
 * the first few lines reads little.
 */
export async function* iterateLines(files: Files, fd: number, start: number, end: number): AsyncGenerator<Line> {
  let position = start;
  let chunk = 64 * 1024;
  while (position < end) {
    const batch: Line[] = [];
    const stop = Math.min(end, position + chunk);
    chunk = Math.min(CHUNK, chunk * 2);
    const next = await scanLines(files, fd, position, stop, (text, offset, after) => {
      batch.push({ text, offset, next: after });
      return undefined;
    });
    yield* batch;
    if (next === position) {
      // No newline within a whole chunk: a line longer than the chunk. Read on until one ends.
      const long = await readLineAt(files, fd, position, end);
      if (long === null) return;
      yield long;
      position = long.next;
    } else {
      position = next;
    }
  }
}

/** The complete line starting at `offset`, or null if no newline ends it before `end`. */
export async function readLineAt(files: Files, fd: number, offset: number, end: number): Promise<Line | null> {
  let found: Line | null = null;
  // Small reads: a probe wants one line (entries are ~hundreds of bytes); scanLines carries a longer line over.
  await scanLines(
    files,
    fd,
    offset,
    end,
    (text, at, next) => {
      found = { text, offset: at, next };
      return false;
    },
    PROBE,
  );
  return found;
}

/**
 * The last complete line before `size`, and where the bytes after it (a torn
 * write, if any) begin. Reads backwards from the end: O(line length), not
 * O(file size).
 */
export async function readLastLine(
  files: Files,
  fd: number,
  size: number,
): Promise<{ last: Line | null; completeEnd: number }> {
  const completeEnd = await lastNewlineEnd(files, fd, size);
  if (completeEnd === 0) return { last: null, completeEnd };
  const lineStart = await lastNewlineEnd(files, fd, completeEnd - 1);
  const bytes = Buffer.allocUnsafe(completeEnd - 1 - lineStart);
  await readFully(files, fd, bytes, bytes.length, lineStart);
  return {
    last: {
      text: bytes.toString('utf8'),
      offset: lineStart,
      next: completeEnd,
    },
    completeEnd,
  };
}

/** Offset just past the last '\n' before `end`, or 0 if there is none. Reads backwards, 4 KiB first, doubling to 64 KiB. */
async function lastNewlineEnd(files: Files, fd: number, end: number): Promise<number> {
  let step = PROBE / 2; // doubled before each read
  const buffer = Buffer.allocUnsafe(64 * 1024);
  let stop = end;
  while (stop > 0) {
    step = Math.min(step * 2, buffer.length);
    const begin = Math.max(0, stop - step);
    const n = await readFully(files, fd, buffer, stop - begin, begin);
    const nl = buffer.subarray(0, n).lastIndexOf(NL);
    if (nl !== -1) return begin + nl + 1;
    stop = begin;
  }
  return 0;
}

/**
 * Binary search over the lines in [0, end): the offset of the first line for
 * which `isAtOrAfter` holds, given that it holds for a suffix of the lines
 * (seq and ts only grow). O(log n) probes, each reading about one line.
 */
export async function lowerBound(
  files: Files,
  fd: number,
  end: number,
  isAtOrAfter: (text: string) => boolean,
): Promise<number> {
  let lo = 0; // a line start; every line before it is "before"
  let hi = end; // a line start known to be "at or after", or the end
  while (hi - lo > 64 * 1024) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const probe = await lastNewlineEnd(files, fd, mid); // the start of the line holding mid: in [lo, mid]
    const line = await readLineAt(files, fd, probe, hi);
    if (line === null) break;
    if (isAtOrAfter(line.text)) hi = probe;
    else lo = line.next;
  }
  let answer = hi;
  await scanLines(files, fd, lo, hi, (text, offset) => {
    if (!isAtOrAfter(text)) return undefined;
    answer = offset;
    return false;
  });
  return answer;
}

/**
 * The first `limit` bytes of the file at `path` (all of a small file), or null
 * when there is no such file. Reads one byte more than `limit` so callers can
 * tell a file that is too long.
 */
export async function readWholeFile(files: Files, path: string, limit: number): Promise<Buffer | null> {
  let fd: number;
  try {
    fd = await openOwn(files, path, constants.O_RDONLY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const bytes = Buffer.alloc(limit + 1);
    return bytes.subarray(0, await readFully(files, fd, bytes, bytes.length, 0));
  } finally {
    await files.close(fd);
  }
}

/**
 * Reads `length` bytes at `position` unless the file ends first; returns
 * bytes read. `chunk` caps each read (Files reads small ones synchronously).
 */
export async function readFully(
  files: Files,
  fd: number,
  buffer: Buffer,
  length: number,
  position: number,
  chunk = length,
): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await files.read(fd, buffer, done, Math.min(chunk, length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
