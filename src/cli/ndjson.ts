/**
 * Reading NDJSON events from a stream a line at a time, in bounded memory:
 * each line's bytes must be UTF-8 and its text I-JSON (encoding/ijson.ts),
 * else the line is refused by number. Nothing is decoded with replacement
 * characters, nothing is skipped.
 */
import { isUtf8 } from 'node:buffer';
import { parseIJson } from '../encoding/ijson.js';
import { InvalidEntryError } from '../errors.js';

/** The longest line read: no entry can be longer (the limit on an entry is far below it). */
const MAX_LINE = 1 << 20;
const NL = 0x0a;

/** One event of the input: its line number (from 1) and its value. */
export interface Event {
  line: number;
  value: Record<string, unknown>;
}

/** The events of `input`, one per line; `skip` lines are passed over unread (a rerun after a failure). */
export async function* events(input: AsyncIterable<Buffer | string>, skip = 0): AsyncGenerator<Event> {
  let carry: Buffer | null = null;
  let line = 0;
  for await (const chunk of input) {
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (carry !== null) {
      bytes = Buffer.concat([carry, bytes]);
      carry = null;
    }
    let from = 0;
    for (let nl = bytes.indexOf(NL); nl !== -1; nl = bytes.indexOf(NL, from)) {
      line++;
      if (line > skip) yield event(bytes.subarray(from, nl), line);
      from = nl + 1;
    }
    if (from < bytes.length) {
      if (bytes.length - from > MAX_LINE) {
        throw new InvalidEntryError(`stdin line ${line + 1}`, `longer than ${MAX_LINE} bytes without a newline`);
      }
      carry = Buffer.from(bytes.subarray(from));
    }
  }
  if (carry !== null) {
    line++;
    if (line > skip) yield event(carry, line);
  }
}

function event(bytes: Buffer, line: number): Event {
  const where = `stdin line ${line}`;
  const text = bytes.at(-1) === 0x0d ? bytes.subarray(0, -1) : bytes; // a CRLF line end
  if (text.length === 0 || text.every((b) => b === 0x20 || b === 0x09)) {
    throw new InvalidEntryError(where, 'empty line (expected a JSON object)');
  }
  if (!isUtf8(text)) throw new InvalidEntryError(where, 'not UTF-8');
  const value = parseIJson(text.toString('utf8'), where);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidEntryError(where, 'expected a JSON object with actor and action');
  }
  return { line, value: value as Record<string, unknown> };
}
