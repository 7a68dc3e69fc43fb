/**
 * The documentation stays true: the README's library example is
 * examples/readme.ts (which the build type-checks under strict TypeScript)
 * and runs; the error table in docs/api.md lists exactly the codes in
 * ERROR_CODES, with their exit statuses; the README stays short.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ERROR_CODES } from '../src/errors.js';
import { ROOT, runNode, tempDir } from './helpers.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('the documentation', () => {
  it("has the README's library example as examples/readme.ts, which compiles and runs", async () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block !== undefined, 'the README has a TypeScript example');
    const example = readFileSync(join(ROOT, 'examples', 'readme.ts'), 'utf8')
      .replace(/^\/\*\*[\s\S]*?\*\/\n/, '')
      .replace("from '../src/index.js'", "from 'evident'")
      .replace("from '../src/verify.js'", "from 'evident/verify'");
    assert.equal(block, example);
    const ran = await runNode(join(ROOT, 'dist', 'examples', 'readme.js'), [], { cwd: tempDir() });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /entry 1 is in audit\.example\.com\/log at size 2/);
  });

  it('lists every error code in docs/api.md, with the exit status the CLI gives it', () => {
    const api = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
    const rows = [...api.matchAll(/^\| `(EVIDENT_[A-Z_]+)` \| ([12]) \|/gm)].map((m) => [m[1], Number(m[2])]);
    assert.deepEqual(
      rows,
      Object.entries(ERROR_CODES).map(([code, { exit }]) => [code, exit]),
    );
  });

  it('keeps the README short: reference and design live in docs/', () => {
    assert.ok(statSync(join(ROOT, 'README.md')).size <= 12 * 1024);
    for (const doc of ['format', 'cli', 'api', 'design', 'benchmarks']) {
      assert.ok(readme.includes(`(docs/${doc}.md)`), `the README links docs/${doc}.md`);
      assert.ok(statSync(join(ROOT, 'docs', `${doc}.md`)).size > 0);
    }
  });
});
