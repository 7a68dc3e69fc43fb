/**
 * `evident copy` moves a log between stores as the same log: a directory
 * log into PostgreSQL and back out comes back byte for byte, its signed
 * checkpoint still verifies it offline, and appends go on in the copy. A
 * target that holds a log is refused, unless a copy of the same log was cut
 * short there: it goes on; a source that fails verification
 * stops the copy at the bad entry, naming it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { copyLog } from '../src/copy.js';
import { dropTestSchemas, evident, postgresLog, readLines, readStore, tempDir, writeLines } from './helpers.js';

after(dropTestSchemas);

async function ok(args: string[], stdin?: string): Promise<string> {
  const ran = await evident(args, stdin === undefined ? {} : { stdin });
  assert.equal(ran.code, 0, `evident ${args.join(' ')}: ${ran.stderr}${ran.stdout}`);
  return ran.stdout;
}

const events = (n: number) =>
  `${Array.from({ length: n }, (_, i) => JSON.stringify({ actor: 'a', action: 'x.y', data: { i } })).join('\n')}\n`;

describe('evident copy', () => {
  it('a signing directory log into PostgreSQL and back: the same bytes, verified offline by its checkpoint', async () => {
    const root = tempDir();
    const key = join(root, 'log.key');
    const vkey = (await ok(['keygen', '--name', 'copy.example/log', '--out', key])).trim();
    const source = join(root, 'source');
    await ok(['init', '--dir', source, '--key', key]);
    await ok(['append', '--batch', '--dir', source], events(700));
    const checkpoint = join(root, 'checkpoint');
    writeFileSync(checkpoint, await ok(['checkpoint', '--dir', source]));

    const url = postgresLog();
    const into = JSON.parse(await ok(['copy', '--from', source, '--to', url, '--json']));
    assert.deepEqual([into.entries, into.checkpoint, into.verified], [701, true, true]);
    const back = join(root, 'back');
    assert.match(await ok(['copy', '--from', url, '--to', back]), /^copied 701 entries, its signed checkpoint/);
    assert.ok(readFileSync(join(back, 'log.jsonl')).equals(readFileSync(join(source, 'log.jsonl'))), 'byte for byte');
    assert.match(
      await ok(['verify', '--dir', back, '--checkpoint', checkpoint, '--key', vkey]),
      /consistent with the checkpoint at size 701/,
    );
    // Threads split a file; a database is read as one stream, and the CLI says so rather than ignore them.
    const threaded = await evident(['verify', '--store', url, '--threads', '2']);
    assert.equal(threaded.code, 0, threaded.stderr);
    assert.match(threaded.stderr, /^evident: warning: .* is verified as one stream; threads are for directory logs\n$/);
    // The copy is the log: appends go on, signed with the same key.
    await ok(['append', '--store', url, '--actor', 'b', '--action', 'x.z']);
    assert.match(await ok(['checkpoint', '--store', url]), /^copy\.example\/log\n702\n/);
  });

  it('refuses a target that holds a log, and writes nothing to it', async () => {
    const root = tempDir();
    const [a, b] = [join(root, 'a'), join(root, 'b')];
    for (const [dir, n] of [
      [a, 3],
      [b, 2],
    ] as const) {
      await ok(['init', '--dir', dir]);
      await ok(['append', '--batch', '--dir', dir], events(n));
    }
    const before = readFileSync(join(b, 'log.jsonl'));
    const ran = await evident(['copy', '--from', a, '--to', b]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /already holds a log \(2 entries\): copy into an empty store \[EVIDENT_INVALID_OPTION\]/);
    assert.ok(readFileSync(join(b, 'log.jsonl')).equals(before));
  });

  it('a copy cut short goes on where it stopped when run again, into PostgreSQL and into a directory', async () => {
    const root = tempDir();
    const source = join(root, 'source');
    await ok(['init', '--dir', source]);
    await ok(['append', '--batch', '--dir', source], events(5000));
    for (const to of [postgresLog(), join(root, 'copy')]) {
      // Cut short after the first batch committed, as a killed process would leave it.
      const cut = copyLog({
        from: source,
        to,
        onProgress: () => {
          throw new Error('killed');
        },
      });
      await assert.rejects(cut, /killed/);
      const partial = await readStore(to);
      assert.ok(partial.length > 0 && partial.length < 5000, `${partial.length} entries were copied before the cut`);
      const done = JSON.parse(await ok(['copy', '--from', source, '--to', to, '--json']));
      assert.deepEqual([done.entries, done.verified], [5000, true]);
      assert.deepEqual(await readStore(to), await readStore(source));
    }
  });

  it('stops at an entry that fails verification, naming it', async () => {
    const root = tempDir();
    const source = join(root, 'source');
    await ok(['init', '--dir', source]);
    await ok(['append', '--batch', '--dir', source], events(10));
    const lines = readLines(join(source, 'log.jsonl'));
    lines[6] = (lines[6] as string).replace('"i":6', '"i":60');
    writeLines(join(source, 'log.jsonl'), lines);
    const ran = await evident(['copy', '--from', source, '--to', postgresLog()]);
    assert.equal(ran.code, 1);
    assert.match(ran.stderr, /entry 6 fails verification \(hash-mismatch/);
  });
});
