/**
 * The verifier's fast path may only ever accept what the full check accepts,
 * and must read the same members from it. Checked on random entries (any
 * Unicode, escapes, nested data) and on random byte-level mutations of them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChainVerifier, parseEntry } from '../src/chain.js';
import { isCanonicalText, MAX_DEPTH } from '../src/encoding/canonical.js';
import {
  type Entry,
  GENESIS_PREV,
  hashedText,
  leafHashOfText,
  prepareEntry,
  sealEntry,
  type Via,
} from '../src/entry.js';
import { scanEntry } from '../src/entry-scan.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: generated names must not hold control characters
const CONTROL = /[\u0000-\u001f\u007f]/;
const name = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }).filter((s) => !CONTROL.test(s));
const input = fc.record(
  {
    actor: name,
    action: fc.stringMatching(/^[a-z][a-z0-9]{0,5}(\.[a-z0-9]{1,5}){0,2}$/),
    targets: fc.array(fc.string({ minLength: 1, maxLength: 8, unit: 'grapheme' }), { maxLength: 3 }),
    outcome: name,
    data: fc.dictionary(fc.string({ maxLength: 6, unit: 'binary' }), fc.jsonValue({ maxDepth: 3 })),
  },
  { requiredKeys: ['actor', 'action'] },
);

/** What `evident serve` stores in `via`: a token name, perhaps an idempotency key (printable ASCII, no quote). */
const via = fc.option(
  fc.record(
    {
      token: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,9}$/),
      key: fc.stringMatching(/^[\x21\x23-\x5b\x5d-\x7e]{1,12}$/),
    },
    { requiredKeys: ['token'] },
  ),
  { nil: undefined },
);

function sealed(value: unknown, seq: number, through?: Via): Buffer | null {
  try {
    const prepared = prepareEntry(value, undefined, false, through);
    const { line } = sealEntry(prepared, {
      log: '0123456789abcdef0123456789abcdef',
      seq,
      ts: '2026-11-22T10:00:00.000Z',
      id: 'e3b0c442-98fc-1c14-9afb-f4c8996fb924',
      prev: GENESIS_PREV,
    });
    return Buffer.from(line.slice(0, -1), 'utf8');
  } catch {
    return null; // inputs the log refuses (lone surrogates in data, say) are not lines
  }
}

/** If the fast path accepts, the full check accepts with the same members. */
function agrees(bytes: Buffer): boolean {
  const fast = scanEntry(bytes, 0, bytes.length);
  if (fast === null) return true;
  const text = bytes.toString('utf8');
  assert.ok(Buffer.from(text, 'utf8').equals(bytes), 'accepted bytes are valid UTF-8');
  const entry = parseEntry(text);
  assert.notEqual(typeof entry, 'string', `fast path accepted a malformed line: ${text}`);
  assert.ok(isCanonicalText(text, entry, MAX_DEPTH + 1), `fast path accepted a non-canonical line: ${text}`);
  const e = entry as Entry;
  assert.deepEqual(
    { log: fast.log, seq: fast.seq, ts: fast.ts, prev: fast.prev, hash: fast.hash },
    { log: e.log, seq: e.seq, ts: e.ts, prev: e.prev, hash: e.hash },
  );
  // What a store indexes the entry by.
  assert.deepEqual(
    { actor: fast.actor, action: fast.action, targets: fast.targets },
    { actor: e.actor, action: e.action, targets: e.targets === undefined ? null : JSON.stringify(e.targets) },
  );
  assert.equal(fast.covered, hashedText(e), 'the hash covers exactly the entry without its hash member');
  return true;
}

describe('entry fast path (entry-scan)', () => {
  it('accepts ordinary entries and reads their members exactly', () => {
    const bytes = sealed(
      { actor: 'ci', action: 'deploy.start', targets: ['a', 'b'], outcome: 'ok', data: { n: 1, s: 'x' } },
      42,
    );
    assert.ok(bytes);
    const fast = scanEntry(bytes, 0, bytes.length);
    assert.ok(fast, 'the usual shape takes the fast path');
    assert.equal(fast.seq, 42);
    assert.ok(agrees(bytes));
    const served = sealed({ actor: 'ci', action: 'deploy.start' }, 43, { token: 'ci-bot', key: 'retry-1' }) as Buffer;
    assert.match(served.toString(), /,"v":1,"via":\{"key":"retry-1","token":"ci-bot"\}\}$/);
    assert.ok(scanEntry(served, 0, served.length), 'an entry a service appended takes the fast path too');
    assert.ok(agrees(served));
  });

  it('never accepts a line the full check rejects, and agrees on every line it accepts (random entries)', () => {
    fc.assert(
      fc.property(input, fc.nat({ max: 2 ** 40 }), via, (value, seq, through) => {
        const bytes = sealed(value, seq, through);
        if (bytes === null) return true;
        return agrees(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('... nor any byte-level mutation of a valid line', () => {
    fc.assert(
      fc.property(
        input,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), {
          minLength: 1,
          maxLength: 4,
        }),
        via,
        (value, edits, through) => {
          const bytes = sealed(value, 7, through);
          if (bytes === null) return true;
          const mutated = [...bytes];
          for (const [where, byte, how] of edits) {
            const at = where % (mutated.length + 1);
            if (how === 'set' && at < mutated.length) mutated[at] = byte;
            if (how === 'insert') mutated.splice(at, 0, byte);
            if (how === 'delete' && at < mutated.length) mutated.splice(at, 1);
          }
          return agrees(Buffer.from(mutated));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('takes no shortcut on data that only looks canonical: the full check names it', () => {
    const base = (sealed({ actor: 'a', action: 'x.y', data: { k: 1 } }, 0) as Buffer).toString('utf8');
    const cases: [string, 'ok' | 'not-canonical' | 'malformed'][] = [
      ['{"a":1,"b":"x","c":true,"d":null,"e":-12}', 'ok'],
      ['{"b":1,"a":2}', 'not-canonical'], // unsorted names
      ['{"a":1,"a":2}', 'not-canonical'], // duplicate names
      ['{"a":-0}', 'not-canonical'],
      ['{"a":1.0}', 'not-canonical'],
      ['{"a":1234567890123456789}', 'malformed'], // not exactly representable: not I-JSON
      ['{"a":123456789012345}', 'ok'],
      ['{"a":{"c":1,"b":2}}', 'not-canonical'],
      ['{"a":[1,{"z":0,"y":0}]}', 'not-canonical'],
      ['{"a":[1,{"y":0,"z":0}]}', 'ok'],
      ['{"a":1,}', 'malformed'],
    ];
    for (const [data, want] of cases) {
      const unsealed = JSON.parse(base) as Entry;
      const text = base.replace('"data":{"k":1}', `"data":${data}`);
      // Re-hash so that only the data's form is in question.
      const member = `"hash":"${unsealed.hash}",`;
      const covered = text.replace(member, '');
      const hash = leafHashOfText(covered);
      const line = Buffer.from(text.replace(member, `"hash":"${hash}",`), 'utf8');
      assert.ok(agrees(line), data);
      const failure = new ChainVerifier(null).checkBytes(line, 0, line.length, 0);
      assert.equal(failure?.reason ?? 'ok', want, data);
    }
  });

  it('falls back (returns null) for lines it does not handle: escapes, invalid UTF-8, unusual data', () => {
    const escaped = sealed({ actor: 'a"b', action: 'x.y' }, 0);
    assert.ok(escaped);
    assert.equal(scanEntry(escaped, 0, escaped.length), null);
    const plain = sealed({ actor: 'ab', action: 'x.y' }, 0) as Buffer;
    const broken = Buffer.concat([plain.subarray(0, 12), Buffer.from([0xff]), plain.subarray(13)]);
    assert.equal(scanEntry(broken, 0, broken.length), null);
  });
});
