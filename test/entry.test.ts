/** The entry: what callers may supply, how a line is sealed, and that its hash is the RFC 9162 leaf hash. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalize } from '../src/encoding/canonical.js';
import { type Entry, GENESIS_PREV, hashedText, nextTimestamp, prepareEntry, sealEntry } from '../src/entry.js';
import { InvalidEntryError } from '../src/errors.js';

const assigned = { log: 'a'.repeat(32), seq: 7, ts: '2026-11-22T10:00:00.000Z', id: 'id-7', prev: GENESIS_PREV };

describe('sealing an entry', () => {
  it('writes one canonical JSON line whose hash is SHA-256(0x00 || the line without hash)', () => {
    const prepared = prepareEntry({
      actor: 'agent:claude',
      action: 'proposal.approve',
      targets: ['pr/42', 'repo/main'],
      outcome: 'success',
      data: { z: [1, 'é'], a: null, nested: { y: true, x: 1.5 } },
    });
    const sealed = sealEntry(prepared, assigned);
    const { line, hash } = sealed;
    assert.ok(line.endsWith('\n'));
    const entry = JSON.parse(line) as Entry;
    assert.deepEqual(sealed.entry, entry, 'the returned entry is exactly what the line says');
    assert.notEqual(sealed.entry.data, (prepared.input as { data: unknown }).data, 'and a copy, not the caller object');
    assert.equal(line, `${canonicalize(entry)}\n`, 'the line is RFC 8785 canonical');
    const expected = createHash('sha256')
      .update(Buffer.from([0]))
      .update(Buffer.from(hashedText(entry), 'utf8'))
      .digest('hex');
    assert.equal(hash, expected);
    assert.equal(entry.hash, expected);
    assert.deepEqual(
      { v: entry.v, log: entry.log, seq: entry.seq, ts: entry.ts, id: entry.id, prev: entry.prev },
      { v: 1, ...assigned },
    );
    assert.deepEqual(entry.data, { z: [1, 'é'], a: null, nested: { y: true, x: 1.5 } });
  });

  it('leaves optional members out rather than writing null', () => {
    const { line } = sealEntry(prepareEntry({ actor: 'a', action: 'b.c' }), assigned);
    assert.deepEqual(Object.keys(JSON.parse(line)).sort(), [
      'action',
      'actor',
      'hash',
      'id',
      'log',
      'prev',
      'seq',
      'ts',
      'v',
    ]);
  });

  it('assigns times that never go backwards', () => {
    assert.equal(nextTimestamp(null, Date.parse('2026-01-01T00:00:00Z')), '2026-01-01T00:00:00.000Z');
    assert.equal(
      nextTimestamp('2026-01-01T00:00:05.000Z', Date.parse('2026-01-01T00:00:00Z')),
      '2026-01-01T00:00:05.000Z',
    );
  });
});

describe('entry input', () => {
  const bad: [string, unknown, string][] = [
    ['a non-object', 'hello', '$'],
    ['a missing actor', { action: 'a.b' }, '$.actor'],
    ['an empty action', { actor: 'x', action: '' }, '$.action'],
    ['an action that is not a dotted verb', { actor: 'x', action: 'approve proposal' }, '$.action'],
    ['targets that are not strings', { actor: 'x', action: 'a.b', targets: ['ok', 3] }, '$.targets[1]'],
    ['data that is an array', { actor: 'x', action: 'a.b', data: [1] }, '$.data'],
    ['NaN deep in data', { actor: 'x', action: 'a.b', data: { m: { n: Number.NaN } } }, '$.data.m.n'],
    ['a field the log assigns', { actor: 'x', action: 'a.b', seq: 3 }, '$.seq'],
    ['an unknown field', { actor: 'x', action: 'a.b', colour: 'red' }, '$.colour'],
    ['a control character in actor', { actor: 'x\n', action: 'a.b' }, '$.actor'],
  ];
  for (const [what, input, field] of bad) {
    it(`rejects ${what}, naming ${field}`, () => {
      assert.throws(
        () => prepareEntry(input),
        (error: unknown) => error instanceof InvalidEntryError && error.field === field,
      );
    });
  }

  it('rejects an entry over the size limit (64 KiB by default) and accepts one under it', () => {
    const big = { actor: 'x', action: 'a.b', data: { blob: 'x'.repeat(64 * 1024) } };
    assert.throws(() => prepareEntry(big), /over the 65536-byte limit/);
    const fits = { actor: 'x', action: 'a.b', data: { blob: 'x'.repeat(60 * 1024) } };
    const prepared = prepareEntry(fits);
    const { line } = sealEntry(prepared, { ...assigned, seq: 9_007_199_254_740_991 });
    assert.ok(Buffer.byteLength(line) <= prepared.maxBytes, 'the bound holds for the longest seq');
    assert.throws(() => prepareEntry(fits, 1024), /over the 1024-byte limit/);
  });
});
