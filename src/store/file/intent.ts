/**
 * The intent record of a directory log (<dir>/pending): the byte range of
 * log.jsonl that a commit holding a caller's batch of several entries is
 * about to write. Such a batch is all or nothing, across a crash too; but a
 * process killed inside write(2), or a machine that loses power before the
 * sync, can leave the first lines of it complete in the file, with nothing to
 * tell them from acknowledged entries. So before writing, the writer records
 * the range (synced, for durable logs), and whoever finds the file ending
 * strictly inside the range moves the part written to quarantine/.
 *
 * Once the commit is synced the writer blanks the record, still holding the
 * lock. It overwrites it in place rather than truncating the file: a file
 * whose size and blocks never change after the first record costs its syncs
 * one data block and no journal commit. The blanking is not synced: a record a crash brings back names a batch that
 * is whole in the file, or that the file has grown past; only a cut into
 * that batch made by hand afterwards would then move the rest of it aside
 * (into quarantine/, never lost). A record whose range's first line is not the commit's own
 * first entry says nothing either: after a commit rolled back, or a batch
 * moved aside, the next commit writes other entries from the same place. A
 * record that is torn or unreadable belongs to a commit that never began
 * writing (the record is synced first), so it is ignored. Pure code.
 */
import { createHash } from 'node:crypto';

export const INTENT_FILE = 'pending';

/** A commit in flight: bytes [start, end) of log.jsonl; its first entry's seq and hash, and the hash it follows. */
export interface Intent {
  start: number;
  end: number;
  seq: number;
  first: string;
  prev: string;
}

/** The most a record takes: read and written whole, one sector. */
export const INTENT_BYTES = 256;

/** A blank record: no commit in flight. */
export const NO_INTENT: Buffer = Buffer.alloc(INTENT_BYTES, 0x20);

/** The record's bytes: its fields and a check over them, padded to INTENT_BYTES. */
export function encodeIntent(intent: Intent): Buffer {
  const fields = `evident-pending ${intent.start} ${intent.end} ${intent.seq} ${intent.first} ${intent.prev}`;
  const line = `${fields} ${check(fields)}\n`;
  const bytes = Buffer.alloc(INTENT_BYTES, 0x20);
  bytes.write(line, 0, 'latin1');
  return bytes;
}

/** The intent in `bytes`, or null when there is none or it is not whole. */
export function decodeIntent(bytes: Buffer): Intent | null {
  const line = bytes.toString('latin1').trim();
  const m = /^(evident-pending (\d{1,16}) (\d{1,16}) (\d{1,16}) ([0-9a-f]{64}) ([0-9a-f]{64})) ([0-9a-f]{16})$/.exec(
    line,
  );
  if (m === null || check(m[1] as string) !== m[7]) return null;
  const [start, end, seq] = [Number(m[2]), Number(m[3]), Number(m[4])];
  if (!Number.isSafeInteger(end) || !(start < end)) return null;
  return { start, end, seq, first: m[5] as string, prev: m[6] as string };
}

/**
 * Whether a log file of `size` bytes, whose line at `intent.start` holds the
 * entry `atStart` (its seq and hash, newline or not; null when no entry is there),
 * ends inside the commit `intent` describes: written in part. All but the
 * last newline is the whole batch: that newline is put back, as for any whole
 * last entry that lacks it (and a record that a crash brought back, over a
 * batch acknowledged since, must not make a deleted newline cost the batch).
 */
export function cutShort(intent: Intent, size: number, atStart: { seq: number; hash: string } | null): boolean {
  return endsInside(intent, size) && atStart !== null && atStart.seq === intent.seq && atStart.hash === intent.first;
}

function check(fields: string): string {
  return createHash('sha256').update(fields).digest('hex').slice(0, 16);
}

/** Whether a file of `size` bytes ends after the range's start and before all of it but its last newline. */
export function endsInside(intent: Intent, size: number): boolean {
  return intent.start < size && size < intent.end - 1;
}
