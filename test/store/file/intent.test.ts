/**
 * The intent record of a batch in flight: read back exactly as written, and
 * never believed when torn, blanked in part, mixed with an older record, or about other
 * entries than the ones at its start.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cutShort,
  decodeIntent,
  encodeIntent,
  INTENT_BYTES,
  type Intent,
  NO_INTENT,
} from '../../../src/store/file/intent.js';

const intent: Intent = { start: 1_000, end: 9_000, seq: 12, first: 'a'.repeat(64), prev: 'b'.repeat(64) };
const first = { seq: 12, hash: 'a'.repeat(64) };

describe('the intent record', () => {
  it('is read back as written, in one sector', () => {
    const bytes = encodeIntent(intent);
    assert.equal(bytes.length, INTENT_BYTES);
    assert.deepEqual(decodeIntent(bytes), intent);
    assert.equal(decodeIntent(Buffer.alloc(0)), null, 'an empty file says nothing');
    assert.equal(NO_INTENT.length, INTENT_BYTES);
    assert.equal(decodeIntent(NO_INTENT), null, 'a blanked record says nothing');
  });

  it('is not believed torn, or mixed with an older one', () => {
    const bytes = encodeIntent(intent);
    for (let cut = 0; cut < bytes.length; cut += 7) {
      const torn = Buffer.concat([bytes.subarray(0, cut), Buffer.alloc(bytes.length - cut)]);
      const decoded = decodeIntent(torn);
      assert.ok(decoded === null || cut >= bytes.indexOf(0x0a), `cut at ${cut}`);
    }
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const blankedInPart = Buffer.concat([NO_INTENT.subarray(0, cut), bytes.subarray(cut)]);
      assert.equal(decodeIntent(blankedInPart), null, `blanked up to ${cut}`);
      const writtenInPart = Buffer.concat([bytes.subarray(0, cut), NO_INTENT.subarray(cut)]);
      assert.ok(decodeIntent(writtenInPart) === null || cut > bytes.indexOf(0x0a), `written up to ${cut}`);
    }
    const older = encodeIntent({ ...intent, start: 5_000, end: 7_000 });
    const mixed = Buffer.concat([bytes.subarray(0, 20), older.subarray(20)]);
    assert.equal(decodeIntent(mixed), null);
  });

  it('names a commit cut short only when the file ends inside its range and its first entry starts it', () => {
    assert.equal(cutShort(intent, 5_000, first), true);
    assert.equal(cutShort(intent, 1_000, first), false, 'nothing of it written');
    assert.equal(cutShort(intent, 9_000, first), false, 'all of it written');
    assert.equal(cutShort(intent, 8_999, first), false, 'all but the last newline: whole, the newline put back');
    assert.equal(cutShort(intent, 12_000, first), false, 'the file has grown past it');
    assert.equal(cutShort(intent, 5_000, null), false, 'no whole line at its start: a torn line, handled as one');
    assert.equal(cutShort(intent, 5_000, { seq: 12, hash: 'c'.repeat(64) }), false, 'other entries, written since');
    assert.equal(cutShort(intent, 5_000, { seq: 13, hash: 'a'.repeat(64) }), false);
  });
});
