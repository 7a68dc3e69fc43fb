/** RFC 8785: every public vector canonicalises byte for byte; what JSON cannot carry is refused, naming the field. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { canonicalize, canonicalizeInput, isCanonicalText, nestsDeeperThan } from '../../src/encoding/canonical.js';
import { InvalidEntryError } from '../../src/errors.js';
import { VECTORS } from '../helpers.js';

const JCS = join(VECTORS, 'jcs');

describe('RFC 8785 vectors', () => {
  const names = readdirSync(join(JCS, 'input')).filter((n) => n.endsWith('.json'));
  it('has the vectors', () => assert.ok(names.length >= 6, `found ${names.length}`));
  for (const name of names) {
    it(name, () => {
      const input = JSON.parse(readFileSync(join(JCS, 'input', name), 'utf8'));
      const expected = readFileSync(join(JCS, 'output', name));
      const actual = Buffer.from(canonicalize(input), 'utf8');
      assert.equal(actual.toString('hex'), expected.toString('hex'));
      assert.equal(isCanonicalText(expected.toString('utf8'), JSON.parse(expected.toString('utf8')), 10), true);
    });
  }
});

describe('canonicalize', () => {
  it('sorts members by UTF-16 code units, including integer-like names V8 would put first', () => {
    assert.equal(canonicalize({ b: 1, a: 2, 10: 'x', 9: 'y' }), '{"10":"x","9":"y","a":2,"b":1}');
    assert.equal(canonicalize({ '\uFFFD': 2, '\u{1F600}': 1 }), '{"\u{1F600}":1,"\uFFFD":2}');
  });

  it('writes numbers as ECMAScript does', () => {
    assert.equal(
      canonicalize([1e21, 1e-7, -0, 0.1 + 0.2, 2 ** 53 - 1]),
      '[1e+21,1e-7,0,0.30000000000000004,9007199254740991]',
    );
  });

  const rejected: [string, unknown, string][] = [
    ['NaN', { a: { b: Number.NaN } }, '$.a.b'],
    ['Infinity', { list: [1, Number.POSITIVE_INFINITY] }, '$.list[1]'],
    ['a lone high surrogate', { s: 'x\uD800' }, '$.s'],
    ['a lone low surrogate in a name', { '\uDC00': 1 }, '$["\\udc00"]'],

    ['a Date', { when: new Date(0) }, '$.when'],
    ['a Map', { m: new Map() }, '$.m'],
    ['a class instance', { c: new (class Point {})() }, '$.c'],
    ['undefined', { u: undefined }, '$.u'],
    ['a function', { f: () => 1 }, '$.f'],
    ['a bigint', { n: 1n }, '$.n'],
    // biome-ignore lint/suspicious/noSparseArray: the hole is the input under test
    ['a sparse array', { a: [1, , 3] }, '$.a[1]'],
  ];
  for (const [what, value, field] of rejected) {
    it(`refuses ${what}, naming ${field}`, () => {
      assert.throws(
        () => canonicalize(value),
        (error: unknown) =>
          error instanceof InvalidEntryError && error.field === field && error.code === 'EVIDENT_INVALID_ENTRY',
      );
    });
  }

  const notIJson: [string, unknown, string][] = [
    ['a noncharacter (U+FFFF)', { s: 'a\uFFFF' }, '$.s'],
    ['a noncharacter (U+FDD0) in a name', { '\uFDD0': 1 }, '$["\uFDD0"]'],
    ['a noncharacter of a supplementary plane (U+10FFFF)', { s: ['\uDBFF\uDFFF'] }, '$.s[0]'],
    ['an integer beyond 2^53 − 1', { n: 2 ** 53 }, '$.n'],
    ['a negative integer beyond −(2^53 − 1)', { n: -(2 ** 60) }, '$.n'],
  ];
  for (const [what, value, field] of notIJson) {
    it(`refuses ${what} as input, naming ${field}, and writes it back when stored`, () => {
      assert.throws(
        () => canonicalizeInput(value),
        (error: unknown) => error instanceof InvalidEntryError && error.field === field,
      );
      // An entry written before the rule is still read, copied and served; verify names it.
      assert.equal(canonicalize(value), JSON.stringify(value));
    });
  }

  it('takes the edges of what it refuses: the largest safe integers, 1e21 and up, U+FFFD and U+10FFFD', () => {
    assert.equal(
      canonicalize([2 ** 53 - 1, -(2 ** 53 - 1), 1e21, 2 ** 80]),
      '[9007199254740991,-9007199254740991,1e+21,1.2089258196146292e+24]',
    );
    assert.equal(canonicalizeInput('\uFFFD\uFDCF\uFDF0\uDBFF\uDFFD'), '"\uFFFD\uFDCF\uFDF0\uDBFF\uDFFD"');
  });

  it('does not take a lone surrogate escape for canonical text, though JSON.stringify writes it back the same', () => {
    const text = '{"s":"\\ud800"}';
    assert.equal(JSON.stringify(JSON.parse(text)), text);
    assert.equal(isCanonicalText(text, JSON.parse(text), 10), false);
    // What only I-JSON refuses is canonical still: verify checks that apart.
    assert.equal(isCanonicalText('{"n":9007199254740992}', { n: 2 ** 53 }, 10), true);
  });

  it('refuses a cycle', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => canonicalize(cyclic), /circular/);
  });

  it('tells canonical text from equivalent text that is not', () => {
    assert.equal(isCanonicalText('{"a":1,"b":2}', { a: 1, b: 2 }, 10), true);
    assert.equal(isCanonicalText('{"b":2,"a":1}', JSON.parse('{"b":2,"a":1}'), 10), false);
    assert.equal(isCanonicalText('{"a": 1}', { a: 1 }, 10), false);
    assert.equal(isCanonicalText('{"a":1.0}', { a: 1 }, 10), false);
    assert.equal(isCanonicalText('{"a":"\\u0041"}', { a: 'A' }, 10), false);
  });

  it('stops at a depth limit, however deep the value: deeper is not canonical, never a stack overflow', () => {
    const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    assert.equal(isCanonicalText(deep(3), JSON.parse(deep(3)), 3), true);
    assert.equal(isCanonicalText(deep(4), JSON.parse(deep(4)), 3), false);
    assert.equal(isCanonicalText(`{"b":${deep(4)},"a":1}`, JSON.parse(`{"b":${deep(4)},"a":1}`), 3), false);
    const hugeText = `{"a":${deep(200_000)}}`;
    const huge = JSON.parse(hugeText);
    assert.equal(isCanonicalText(hugeText, huge, 64), false);
    assert.equal(nestsDeeperThan(huge, 64), true);
    assert.equal(nestsDeeperThan({ a: [[1]] }, 3), false);
    assert.equal(nestsDeeperThan({ a: [[[1]]] }, 3), true);
  });
});
