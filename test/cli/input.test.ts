/**
 * Input through the CLI is recorded exactly or refused: bytes that are not
 * UTF-8, JSON that JSON.parse would alter (repeated names, integers beyond a
 * double, overflow, underflow, deep nesting), control characters in names —
 * each refused with EVIDENT_INVALID_ENTRY naming the line and the path, exit
 * 2, nothing written. append --batch streams its input in bounded memory,
 * commits it 4,096 lines at a time, and says how to resume after a bad line.
 * A reader that closes the pipe ends a command quietly; output that cannot be
 * written is an error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Entry } from '../../src/entry.js';
import { CLI, evident, FIXTURES, readLines, tempDir } from '../helpers.js';

async function newLog(): Promise<string> {
  const dir = join(tempDir(), 'log');
  assert.equal((await evident(['init', '--dir', dir])).code, 0);
  return dir;
}

const size = (dir: string) => statSync(join(dir, 'log.jsonl')).size;
const event = (i: number, extra = '') => `{"actor":"agent","action":"file.edit","data":{"i":${i}${extra}}}\n`;

async function refused(dir: string, args: string[], stdin: string | Buffer | undefined, message: RegExp) {
  const before = size(dir);
  const ran = await evident(['append', '--dir', dir, ...args], stdin === undefined ? {} : { stdin });
  assert.equal(ran.code, 2, ran.stderr);
  assert.match(ran.stderr, message);
  assert.match(ran.stderr, /\[EVIDENT_INVALID_ENTRY\]\n$/);
  assert.equal(size(dir), before, 'nothing written');
}

describe('input through the CLI', () => {
  it('bytes that are not UTF-8 are refused, on stdin and in arguments', async () => {
    const dir = await newLog();
    const bad = Buffer.concat([Buffer.from('{"actor":"a'), Buffer.from([0xff]), Buffer.from('b","action":"x.y"}\n')]);
    await refused(dir, ['--batch'], Buffer.concat([Buffer.from(event(0)), bad]), /stdin line 2: not UTF-8/);
    // A shell passes the byte through; Node decodes it as U+FFFD, which an argument may not hold.
    const shell = spawnSync(
      'sh',
      ['-c', `"${process.execPath}" "${CLI}" append --dir "${dir}" --actor "$(printf 'a\\377b')" --action x.y`],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(shell.status, 2);
    assert.match(shell.stderr, /--actor: holds U\+FFFD at character 1: the argument is not UTF-8/);
    // Valid UTF-8 holding U+FFFD itself is what it says.
    const ok = await evident(['append', '--dir', dir, '--batch'], { stdin: '{"actor":"a\uFFFDb","action":"x.y"}\n' });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('JSON that JSON.parse would change is refused, naming the path', async () => {
    const dir = await newLog();
    const data = (json: string) => ['--actor', 'a', '--action', 'x.y', '--data', json];
    await refused(
      dir,
      data('{"n":18446744073709551616}'),
      undefined,
      /--data: \$\.n: the integer 18446744073709551616/,
    );
    await refused(dir, data('{"n":9007199254740993}'), undefined, /beyond ±\(2\^53−1\)/);
    await refused(dir, data('{"n":1e-400}'), undefined, /\$\.n: the number 1e-400 is too small/);
    await refused(dir, data('{"k":1,"k":2}'), undefined, /\$\.k: appears twice in one object/);
    await refused(dir, data(`{"d":${'['.repeat(10_000)}${']'.repeat(10_000)}}`), undefined, /nests deeper than 64/);
    // Data as deep as the library takes it (64 levels) passes through --batch too; one level more does not.
    const deep = (levels: number) =>
      `{"actor":"a","action":"x.y","data":${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}}\n`;
    await refused(dir, ['--batch'], deep(65), /stdin line 1: \$\.data(\.a){64}: nests deeper than 64 levels/);
    const took = await evident(['append', '--dir', dir, '--batch'], { stdin: deep(64) });
    assert.equal(took.code, 0, took.stderr);
    await refused(
      dir,
      ['--batch'],
      `${event(0)}{"actor":"a","action":"x.y","data":{"k":1,"k":2}}\n`,
      /stdin line 2: \$\.data\.k/,
    );
    await refused(
      dir,
      ['--actor', 'a\u0085b', '--action', 'x.y'],
      undefined,
      /\$\.actor: must not contain control characters/,
    );
  });

  it('a batch of up to 4,096 lines is all or nothing', async () => {
    const dir = await newLog();
    const lines = Array.from({ length: 4000 }, (_, i) => event(i));
    lines[2999] = '{"actor":"a","action":"not a verb"}\n';
    await refused(dir, ['--batch'], lines.join(''), /stdin line 3000: \$\.action/);
    assert.equal(readLines(join(dir, 'log.jsonl')).length, 0);
  });

  it('a bad line is named with its line number, wherever it is and however much input follows it', async () => {
    const dir = await newLog();
    await refused(dir, ['--batch'], '{"actor":"a","action":"x.y","target":"t"}\n', /stdin line 1: \$\.target/);
    // The first batch fails while the next is read: a clean refusal, not a crash, and nothing written.
    const lines = Array.from({ length: 10_000 }, (_, i) => event(i));
    lines[99] = '{"actor":"a","action":"not a verb"}\n';
    const failed = await evident(['append', '--dir', dir, '--batch'], { stdin: lines.join('') });
    assert.equal(failed.code, 2, failed.stderr);
    assert.match(failed.stderr, /^evident: stdin line 100: \$\.action: .*\[EVIDENT_INVALID_ENTRY\]\n$/);
    assert.equal(readLines(join(dir, 'log.jsonl')).length, 0);
    // A line that is not JSON, read while the batch before it is refused, does not hide the earlier line.
    lines[4096] = '{not json\n';
    const both = await evident(['append', '--dir', dir, '--batch'], { stdin: lines.join('') });
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /^evident: stdin line 100: \$\.action: .*\[EVIDENT_INVALID_ENTRY\]\n$/);
    assert.equal(readLines(join(dir, 'log.jsonl')).length, 0);
  });

  it('a longer input is committed 4,096 lines at a time; after a bad line, --skip resumes where it stopped', async () => {
    const dir = await newLog();
    const lines = Array.from({ length: 10_000 }, (_, i) => event(i));
    lines[8999] = '{"actor":"a","action":"x.y","data":{"k":1,"k":2}}\n';
    const failed = await evident(['append', '--dir', dir, '--batch'], { stdin: lines.join('') });
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /lines 1 to 8192 of the input are in the log \(seq 0 to 8191\).*--skip 8192/);
    assert.match(failed.stderr, /stdin line 9000: \$\.data\.k: appears twice/);
    assert.equal(readLines(join(dir, 'log.jsonl')).length, 8192);
    lines[8999] = event(8999);
    const resumed = await evident(['append', '--dir', dir, '--batch', '--skip', '8192'], { stdin: lines.join('') });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(JSON.parse(resumed.stdout), { appended: 1808, first: 8192, last: 9999 });
    const stored = readLines(join(dir, 'log.jsonl')).map((line) => JSON.parse(line) as Entry);
    assert.deepEqual(
      stored.map((e) => (e.data as { i: number }).i),
      Array.from({ length: 10_000 }, (_, i) => i),
      'every line once, in order',
    );
  });

  it('streams its input: memory does not grow with it', { timeout: 180_000 }, async () => {
    const pad = `,"pad":"${'p'.repeat(350)}"`;
    const chunk = Array.from({ length: 1000 }, (_, i) => event(i, pad)).join('');
    const peak = async (megabytes: number) => {
      const dir = await newLog();
      const input = chunk.repeat(Math.ceil((megabytes * 1e6) / chunk.length));
      const ran = await evident(['append', '--dir', dir, '--batch'], {
        stdin: input,
        nodeArgs: ['--import', join(FIXTURES, 'report-rss.js')],
      });
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(JSON.parse(ran.stdout).appended, (input.length / chunk.length) * 1000);
      return Number(/peak-rss-mb (\d+)/.exec(ran.stderr)?.[1]);
    };
    const small = await peak(25);
    const large = await peak(100); // 250,000 lines
    // Before, the whole input was read into one string: 2.9 GB for 200 MB. Now the peak is V8's own heap sizing
    // (~175 MB on Node 20, ~300 MB on Node 24, whose young generation is larger), about the same for any input;
    // one held copy of the larger input would add at least 75 MB more than the smaller one's.
    assert.ok(large < small * 1.5 + 25, `peak RSS ${small} MB for 25 MB of input, ${large} MB for 100 MB`);
    assert.ok(large < 400, `peak RSS ${large} MB`);
  });

  it('shows names as they are: zero-width and bidi characters escaped in the table', async () => {
    const dir = await newLog();
    assert.equal((await evident(['append', '--dir', dir, '--actor', 'alice\u200b', '--action', 'x.y'])).code, 0);
    const hidden = ['\u00ad', '\u034f', '\u180e', '\u3164', '\u{e0041}'];
    for (const c of hidden) {
      assert.equal((await evident(['append', '--dir', dir, '--actor', `bob${c}`, '--action', 'x.y'])).code, 0);
    }
    const table = await evident(['log', '--dir', dir]);
    assert.match(table.stdout, /alice\\u\{200b\}/);
    for (const code of ['ad', '34f', '180e', '3164', 'e0041'])
      assert.match(table.stdout, new RegExp(`bob\\\\u\\{${code}\\}`));
    const json = await evident(['log', '--dir', dir, '--json']);
    assert.equal((JSON.parse(json.stdout.split('\n')[0] as string) as Entry).actor, 'alice\u200b', 'recorded exactly');
  });

  it('ends quietly when the reader closes the pipe', async () => {
    const dir = await newLog();
    const lines = Array.from({ length: 20_000 }, (_, i) => event(i)).join('');
    assert.equal((await evident(['append', '--dir', dir, '--batch'], { stdin: lines })).code, 0);
    for (const command of ['log', 'log --json', 'tail -n 20000', 'verify']) {
      const ran = spawnSync(
        'bash',
        [
          '-c',
          `"${process.execPath}" "${CLI}" ${command} --dir "${dir}" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`,
        ],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(ran.stdout.trim(), '0', `${command}: exit status`);
      assert.equal(ran.stderr, '', `${command}: nothing on stderr`);
    }
    assert.equal(existsSync(join(dir, 'quarantine')), false);
  });

  it('fails plainly when its output cannot be written (a full disk)', async () => {
    const dir = await newLog();
    assert.equal((await evident(['append', '--dir', dir, '--actor', 'a', '--action', 'x.y'])).code, 0);
    const ran = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" log --dir "${dir}" >/dev/full`], {
      encoding: 'utf8',
    });
    assert.equal(ran.status, 1);
    assert.equal(
      ran.stderr,
      'evident: cannot write the output: ENOSPC: no space left on device, write [EVIDENT_WRITE_FAILED]\n',
    );
  });
});
