/**
 * The receipt format (c2sp.org/tlog-proof@v1) read and written exactly:
 * optional extra data, including none at all, the index and the proof.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReceipt, parseReceipt } from '../src/receipt.js';

const checkpoint = 'example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/log AAAAAQ==\n';
const proof = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];

describe('receipts', () => {
  it('read back as written, with extra data, with empty extra data, and without', () => {
    for (const extra of [Buffer.from('hello'), Buffer.alloc(0), undefined]) {
      const text = formatReceipt({ index: 2, proof, checkpoint, extra });
      assert.deepEqual(parseReceipt(text), { index: 2, proof, checkpoint, extra });
    }
    // Empty extra data is the line "extra " (as transparency-dev/formats writes it).
    assert.match(
      formatReceipt({ index: 0, proof: [], checkpoint, extra: Buffer.alloc(0) }),
      /^c2sp\.org\/tlog-proof@v1\nextra \nindex 0\n\n/,
    );
  });

  it('refuse what the format does not allow, naming the line', () => {
    const good = formatReceipt({ index: 2, proof, checkpoint });
    for (const [bad, message] of [
      [good.replace('index 2', 'index 02'), /line 2 is not "index <n>"/],
      ['c2sp.org/tlog-proof@v1\nindex 2\n', /no blank line/],
      [good.replace('c2sp.org/tlog-proof@v1', 'c2sp.org/tlog-proof@v2'), /first line/],
      [good.replace('index 2', 'extra !!\nindex 2'), /extra is not base64/],
    ] as const) {
      assert.throws(() => parseReceipt(bad), { code: 'EVIDENT_BAD_RECEIPT', message });
    }
  });
});
