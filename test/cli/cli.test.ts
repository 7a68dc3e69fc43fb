/** The `evident` command as scripts see it: output formats and exit codes. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { canonicalize } from '../../src/encoding/canonical.js';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { CLI, evident, FIXTURES, readLines, signingLog, tempDir, writeLines } from '../helpers.js';

describe('evident CLI', () => {
  it('init, append, append --batch, verify, log and tail work together', async () => {
    const dir = join(tempDir(), 'log');
    const init = await evident(['init', '--dir', dir]);
    assert.equal(init.code, 0, init.stderr);

    const one = await evident([
      'append',
      '--dir',
      dir,
      '--actor',
      'alice',
      '--action',
      'proposal.approve',
      '--target',
      'p/1',
      '--target',
      'p/2',
      '--outcome',
      'success',
      '--data',
      '{"reason":"lgtm"}',
    ]);
    assert.equal(one.code, 0, one.stderr);
    const entry = JSON.parse(one.stdout) as Entry;
    assert.equal(one.stdout, `${canonicalize(entry)}\n`, 'prints the stored entry as one canonical line');
    assert.equal(one.stdout, readFileSync(join(dir, 'log.jsonl'), 'utf8'));
    assert.deepEqual(entry.targets, ['p/1', 'p/2']);

    const batch = await evident(['append', '--batch', '--dir', dir], {
      stdin: '{"actor":"bob","action":"deploy.start"}\n{"actor":"ci","action":"deploy.finish","outcome":"ok"}\n',
    });
    assert.equal(batch.code, 0, batch.stderr);
    assert.deepEqual(JSON.parse(batch.stdout), { appended: 2, first: 1, last: 2 });

    const verify = await evident(['verify', '--dir', dir]);
    assert.equal(verify.code, 0);
    assert.match(verify.stdout, /^ok: 3 entries/);
    const json = await evident(['verify', '--dir', dir, '--json']);
    assert.deepEqual(
      { ...JSON.parse(json.stdout), head: undefined, bytes: undefined },
      { ok: true, size: 3, head: undefined, bytes: undefined },
    );

    const log = await evident(['log', '--dir', dir, '--action', 'deploy.*', '--json']);
    assert.equal(log.code, 0);
    assert.deepEqual(
      log.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as Entry).actor),
      ['bob', 'ci'],
    );
    const table = await evident(['log', '--dir', dir, '--actor', 'alice']);
    assert.match(table.stdout, /SEQ.*ACTOR.*ACTION/);
    assert.match(table.stdout, /alice\s+proposal\.approve\s+success\s+p\/1,p\/2/);

    const tail = await evident(['tail', '-n', '1', '--json', '--dir', dir]);
    assert.equal((JSON.parse(tail.stdout) as Entry).seq, 2);

    const viaEnv = await evident(['log', '--json', '--limit', '1'], { env: { EVIDENT_DIR: dir } });
    assert.equal((JSON.parse(viaEnv.stdout) as Entry).actor, 'alice');
  });

  it("append takes a signing log's key with --key when the log no longer says where it is", async () => {
    const log = signingLog('cli.example/keyed');
    await log.init();
    rmSync(join(log.dir, 'config.json'));
    const args = ['append', '--dir', log.dir, '--actor', 'a', '--action', 'x.y'];
    const keyless = await evident(args);
    assert.equal(keyless.code, 2);
    assert.match(keyless.stderr, /give its key \(--key, .*\[EVIDENT_NO_KEY\]/);
    const keyed = await evident([...args, '--key', log.keyFile]);
    assert.equal(keyed.code, 0, keyed.stderr);
    assert.equal((JSON.parse(keyed.stdout) as Entry).seq, 1);
    const remote = await evident([
      ...args.slice(0, 1),
      '--url',
      'http://127.0.0.1:9',
      '--actor',
      'a',
      '--action',
      'x.y',
      '--key',
      log.keyFile,
    ]);
    assert.match(remote.stderr, /--key is for a log of your own/);
  });

  it('tail -f prints entries as other processes append them', async () => {
    const dir = join(tempDir(), 'log');
    await evident(['init', '--dir', dir]);
    await evident(['append', '--dir', dir, '--actor', 'before', '--action', 'x.y']);
    const follower = spawn(process.execPath, [CLI, 'tail', '-f', '-n', '1', '--json', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Taken at once: the follower may exit (as it must at the end) before the test gets to wait for it.
    const exited = once(follower, 'exit') as Promise<[number | null]>;
    const seen: string[] = [];
    const waiters: [string, () => void][] = [];
    const sawActor = (actor: string) =>
      Promise.race([
        new Promise<void>((resolve) => (seen.includes(actor) ? resolve() : waiters.push([actor, resolve]))),
        exited.then(([code]) => {
          if (!seen.includes(actor)) assert.fail(`tail -f exited ${code} before printing ${actor}: ${stderrOf}`);
        }),
      ]);
    let stderrOf = '';
    follower.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderrOf += chunk;
    });
    let buffered = '';
    follower.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) seen.push((JSON.parse(line) as Entry).actor);
      for (const [actor, resolve] of waiters) if (seen.includes(actor)) resolve();
    });
    try {
      await sawActor('before'); // following has begun
      await evident(['append', '--dir', dir, '--actor', 'after-1', '--action', 'x.y']);
      await evident(['append', '--dir', dir, '--actor', 'after-2', '--action', 'x.y']);
      await sawActor('after-2');
      assert.deepEqual(seen, ['before', 'after-1', 'after-2']);
      // The file replaced by a copy of itself (a restore): followed.
      const path = join(dir, 'log.jsonl');
      const kept = readFileSync(path);
      writeFileSync(`${path}.copy`, kept);
      renameSync(`${path}.copy`, path);
      await evident(['append', '--dir', dir, '--actor', 'after-3', '--action', 'x.y']);
      await sawActor('after-3');
      // Replaced by an older copy that then grows another history: tail stops, naming the entry.
      writeFileSync(`${path}.copy`, kept);
      renameSync(`${path}.copy`, path);
      await evident(['append', '--dir', dir, '--actor', 'other-3', '--action', 'x.y']);
      await evident(['append', '--dir', dir, '--actor', 'other-4', '--action', 'x.y']);
      const [code] = await exited;
      assert.equal(code, 1);
      assert.match(stderrOf, /entry 4 does not follow entry 3 as it was printed.*\[EVIDENT_LOG_CORRUPT\]/);
      assert.deepEqual(seen, ['before', 'after-1', 'after-2', 'after-3']);
    } finally {
      follower.kill();
    }
  });

  it('a bad batch line rejects the whole batch, naming the line; nothing is written', async () => {
    const dir = join(tempDir(), 'log');
    await evident(['init', '--dir', dir]);
    const cases = [
      ['{"actor":"a","action":"x.y"}\n{"actor":"b"}\n', /stdin line 2: \$\.action/],
      ['{"actor":"a","action":"x.y"}\nnot json\n', /stdin line 2: not valid JSON/],
      ['{"actor":"a","action":"x.y"}\n\n{"actor":"a","action":"x.y"}\n', /stdin line 2: empty line/],
      ['[1,2]\n', /stdin line 1: expected a JSON object/],
    ] as const;
    for (const [stdin, message] of cases) {
      const ran = await evident(['append', '--batch', '--dir', dir], { stdin });
      assert.equal(ran.code, 2);
      assert.match(ran.stderr, message);
      assert.match(ran.stderr, /\[EVIDENT_INVALID_ENTRY\]\n$/);
      assert.equal(ran.stderr.split('\n').length, 2, 'one line on stderr');
      assert.equal(statSync(join(dir, 'log.jsonl')).size, 0);
    }
  });

  it('verify exits 1 naming seq, line and reason for a tampered log, 2 for no log', async () => {
    const dir = join(tempDir(), 'log');
    await evident(['init', '--dir', dir]);
    await evident(['append', '--batch', '--dir', dir], {
      stdin: Array.from({ length: 5 }, (_, i) => `{"actor":"u${i}","action":"a.b"}\n`).join(''),
    });
    const path = join(dir, 'log.jsonl');
    const lines = readLines(path);
    writeLines(path, [...lines.slice(0, 2), ...lines.slice(3)]);
    const ran = await evident(['verify', '--dir', dir]);
    assert.equal(ran.code, 1);
    assert.match(ran.stdout, /FAILED: seq-gap at seq 2 \(line 3/);
    const json = await evident(['verify', '--dir', dir, '--json']);
    assert.equal(json.code, 1);
    assert.deepEqual((({ seq, line, reason }) => ({ seq, line, reason }))(JSON.parse(json.stdout).failure), {
      seq: 2,
      line: 3,
      reason: 'seq-gap',
    });
    const threaded = await evident(['verify', '--dir', dir, '--json', '--threads', '3']);
    assert.equal(threaded.code, 1);
    assert.deepEqual(JSON.parse(threaded.stdout), JSON.parse(json.stdout), 'the same verdict on worker threads');
    const missing = await evident(['verify', '--dir', join(dir, 'missing')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /EVIDENT_NO_LOG/);
  });

  it('usage errors exit 2 with one clear line; --help works everywhere', async () => {
    const dir = join(tempDir(), 'log');
    await evident(['init', '--dir', dir]);
    for (const args of [
      ['frobnicate'],
      ['toString'], // a name every object has is no command
      ['append', '--dir', dir, '--actor', 'a'],
      ['append', '--dir', dir, '--actor', 'a', '--action', 'b.c', '--data', '[1]'],
      ['append', '--dir', dir, '--actor', 'a', '--action', 'b.c', '--data', '{bad'],
      ['log', '--dir', dir, '--since', 'yesterday'],
      ['log', '--dir', dir, '--limit', 'ten'],
      ['verify', '--dir', dir, '--bogus'],
      ['verify', '--dir', dir, '--threads', '0'],
    ]) {
      const ran = await evident(args);
      assert.equal(ran.code, 2, `${args.join(' ')}: ${ran.stderr}`);
      assert.match(ran.stderr, /^evident: .+ \[EVIDENT_[A-Z_]+\]\n$/);
    }
    for (const args of [
      ['--help'],
      ['init', '--help'],
      ['append', '--help'],
      ['verify', '--help'],
      ['log', '--help'],
      ['tail', '--help'],
    ]) {
      const ran = await evident(args);
      assert.equal(ran.code, 0);
      assert.match(ran.stdout, /Usage: evident/);
    }
    const inherited = await evident(['help', 'constructor']);
    assert.equal(inherited.code, 0);
    assert.match(
      inherited.stdout,
      /^evident: a tamper-evident audit log/,
      "the general help, not an object's function",
    );
    writeFileSync(join(dir, 'unused'), '');
  });

  it('verify --threads asks for at most one thread per core: the same verdict, no more memory', async () => {
    const dir = join(tempDir(), 'log');
    const log = await Log.open({ store: dir, create: true, durability: 'write' });
    const blob = 'x'.repeat(1000);
    for (let i = 0; i < 18_000; i += 2000) {
      await log.appendBatch(
        Array.from({ length: 2000 }, (_, j) => ({ actor: 'a', action: 'x.y', data: { i: i + j, blob } })),
      );
    }
    await log.close();
    assert.ok(statSync(join(dir, 'log.jsonl')).size > 16 << 20, 'large enough to verify in ranges');
    const runs = await Promise.all(
      ['1', '64'].map((threads) =>
        evident(['verify', '--dir', dir, '--json', '--threads', threads], {
          nodeArgs: ['--import', join(FIXTURES, 'report-rss.js')],
        }),
      ),
    );
    const [one, many] = runs.map((run) => ({
      result: JSON.parse(run.stdout),
      rss: Number(/peak-rss-mb (\d+)/.exec(run.stderr)?.[1]),
    }));
    assert.deepEqual(many?.result, one?.result);
    // 64 threads took 968 MB before they were capped; the cores here are few.
    assert.ok((many?.rss ?? 0) < 120 * availableParallelism(), `peak RSS ${many?.rss} MB with --threads 64`);
  });

  it('a command on a directory log loads neither the HTTP server nor the PostgreSQL client', async () => {
    const dir = join(tempDir(), 'log');
    const loaded = async (args: string[]) => {
      const run = await evident(args, { nodeArgs: ['--import', join(FIXTURES, 'report-packages.js')] });
      return { run, packages: (/^packages (.*)$/m.exec(run.stderr)?.[1] ?? '').split(' ') };
    };
    for (const args of [
      ['init', '--dir', dir],
      ['append', '--dir', dir, '--actor', 'a', '--action', 'x.y'],
      ['verify', '--dir', dir],
      ['log', '--dir', dir],
    ]) {
      const { run, packages } = await loaded(args);
      assert.equal(run.code, 0, run.stderr);
      // Loading fastify, pino and pg took longer than the rest of a whole `evident append`.
      for (const name of ['fastify', 'pino', 'pg']) {
        assert.ok(!packages.includes(name), `evident ${args[0]} loaded ${name}: ${packages.join(' ')}`);
      }
    }
    // The probe sees a package a command does load: a PostgreSQL log's (here, a schema that holds none).
    const { packages } = await loaded(['log', '--store', 'postgres://127.0.0.1/test?schema=no_log_here']);
    assert.ok(packages.includes('pg'), packages.join(' '));
  });
});
