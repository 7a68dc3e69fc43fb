/**
 * The service's tokens: actor patterns match as globs, in time bounded by
 * pattern × actor whatever the pattern, and changes to the token file made
 * at once by several processes are all kept (a revoke stays revoked).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { addToken, globMatch, readTokens, revokeToken } from '../../src/server/tokens.js';
import { evident, tempDir } from '../helpers.js';

describe('actor patterns', () => {
  it('match * against any run of characters, and everything else as itself', () => {
    const cases: [string, string, boolean][] = [
      ['ci-*', 'ci-build', true],
      ['ci-*', 'ci-', true],
      ['ci-*', 'cd-build', false],
      ['*', '', true],
      ['', '', true],
      ['', 'a', false],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'abcbc', true],
      ['a*b*c', 'acb', false],
      ['*-prod', 'svc-prod', true],
      ['*-prod', 'svc-prod-x', false],
      ['**', 'anything', true],
      ['a.b', 'aXb', false], // no regular-expression meaning
      ['a?', 'ab', false],
      ['[ab]', '[ab]', true],
      ['agent-\u{1F600}*', 'agent-\u{1F600}-7', true],
    ];
    for (const [pattern, actor, want] of cases) assert.equal(globMatch(pattern, actor), want, `${pattern} ~ ${actor}`);
  });

  it('take no exponential time on an actor that does not match', async () => {
    // A regular expression of several .* took 23 s on this, blocking the server for every request.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(new URL('../../src/server/tokens.js', import.meta.url).href)}).then(({ globMatch }) => {
        parentPort.postMessage([globMatch('*:*:*:*:*:bot', ':'.repeat(255)), globMatch('*-*-*-*-prod', '-'.repeat(255))]);
      });`,
      { eval: true },
    );
    let timer: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      new Promise<unknown>((resolve) => worker.once('message', resolve)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in 10 s')), 10_000);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      return worker.terminate();
    });
    assert.deepEqual(answer, [false, false]);
  });
});

describe('the token file', () => {
  it('keeps every change made at once by several processes: each add, and a revoke', async () => {
    const file = join(tempDir(), 'tokens.json');
    addToken(file, 'victim', ['admin']);
    const runs = [
      evident(['token', 'revoke', 'victim', '--tokens', file]),
      ...Array.from({ length: 8 }, (_, i) => evident(['token', 'add', `n${i}`, '--scopes', 'read', '--tokens', file])),
    ];
    const results = await Promise.all(runs);
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const names = readTokens(file)
      .map((t) => t.name)
      .sort();
    assert.deepEqual(names, ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']);
    assert.equal(revokeToken(file, 'victim'), false, 'gone for good');
  });
});
