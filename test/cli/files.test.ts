/**
 * The CLI's contract when the files around a log are not what evident made:
 * links and odd files are refused rather than followed, a directory that is a
 * file or an empty name is an error that says so, permissions and repairs are
 * reported plainly with the documented exit codes, a signing log is checked
 * against its own checkpoint, keys are kept private, and what a failed
 * command created is removed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../../src/log.js';
import { type Files, nodeFiles } from '../../src/store/file/files.js';
import { CLI, evident, fileStore, osError, readLines, signingLog, tempDir, writeLines } from '../helpers.js';

const event = (i: number) => `{"actor":"agent","action":"file.edit","data":{"i":${i}}}\n`;

async function logWith(n: number): Promise<string> {
  const dir = join(tempDir(), 'log');
  assert.equal((await evident(['init', '--dir', dir])).code, 0);
  if (n > 0) {
    const lines = Array.from({ length: n }, (_, i) => event(i)).join('');
    assert.equal((await evident(['append', '--dir', dir, '--batch'], { stdin: lines })).code, 0);
  }
  return dir;
}

describe("a log's files", () => {
  it('are opened only as themselves: a link is refused, not followed, and its target left alone', async () => {
    const dir = await logWith(2);
    const elsewhere = join(tempDir(), 'other.txt');
    writeFileSync(elsewhere, "someone else's file, its last line unfinished");
    rmSync(join(dir, 'log.jsonl'));
    symlinkSync(elsewhere, join(dir, 'log.jsonl'));
    const ran = await evident(['append', '--dir', dir, '--actor', 'a', '--action', 'x.y']);
    assert.equal(ran.code, 1);
    assert.match(ran.stderr, /log\.jsonl is a symbolic link.*\[EVIDENT_LOG_CORRUPT\]/);
    assert.equal(readFileSync(elsewhere, 'utf8'), "someone else's file, its last line unfinished", 'untouched');
    assert.equal(existsSync(join(dir, 'quarantine')), false);

    const other = await logWith(1);
    const target = join(tempDir(), 'never-created');
    rmSync(join(other, 'lock'));
    symlinkSync(target, join(other, 'lock')); // dangling
    const dangling = await evident(['append', '--dir', other, '--actor', 'a', '--action', 'x.y']);
    assert.equal(dangling.code, 1);
    assert.match(dangling.stderr, /lock is a symbolic link/);
    assert.equal(existsSync(target), false, 'the link target was not created');
  });

  it('around it too: a link or a FIFO in place of a side file is an error, never a wait or a write elsewhere', async () => {
    const cases: [string, 'fifo' | 'link', RegExp][] = [
      ['lease', 'fifo', /lease is not a regular file \[EVIDENT_LOG_CORRUPT\]/],
      ['checkpoint', 'fifo', /checkpoint is not a regular file/],
      ['config.json', 'fifo', /config\.json is not a regular file/],
      ['config.json', 'link', /config\.json is a symbolic link/],
      // The tree is first written after the entry is durable: exit 3 (below).
      ['tree', 'link', /tree is a symbolic link: evident writes a log's files only in directories of its own/],
      ['quarantine', 'link', /quarantine is a symbolic link/],
      ['key', 'fifo', /cannot read the signing key .*: it is not a regular file \[EVIDENT_NO_KEY\]/],
    ];
    for (const [name, kind, problem] of cases) {
      const log = signingLog(`files.example/${name}`);
      await log.init();
      const path = name === 'key' ? log.keyFile : join(log.dir, name);
      rmSync(path, { recursive: true, force: true });
      const elsewhere = join(tempDir(), 'elsewhere');
      if (kind === 'fifo') assert.equal(spawnSync('mkfifo', [path]).status, 0);
      else {
        mkdirSync(elsewhere);
        symlinkSync(name === 'config.json' ? join(elsewhere, 'x') : elsewhere, path);
      }
      if (name === 'quarantine') appendFileSync(join(log.dir, 'log.jsonl'), '{"actor":"torn');
      const ran = spawnSync(process.execPath, [CLI, 'append', '--dir', log.dir, '--actor', 'a', '--action', 'x.y'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      const status = name === 'key' ? 2 : name === 'tree' ? 3 : 1;
      assert.equal(ran.status, status, `${name} (${kind}): ${ran.signal ?? ''} ${ran.stderr}`);
      assert.match(ran.stderr, problem, name);
      if (kind === 'link') assert.deepEqual(readdirSync(elsewhere), [], `${name}: nothing written through the link`);
      const complete = readFileSync(join(log.dir, 'log.jsonl'), 'utf8').split('\n').length - 1;
      assert.equal(complete, status === 3 ? 2 : 1, name);
    }
  });

  it('a failure after the entry is durable (signing its checkpoint) exits 3, saying the entry is in the log', async () => {
    const log = signingLog('files.example/after');
    await log.init();
    rmSync(join(log.dir, 'checkpoint.lock'));
    assert.equal(spawnSync('mkfifo', [join(log.dir, 'checkpoint.lock')]).status, 0);
    const one = await evident(['append', '--dir', log.dir, '--actor', 'a', '--action', 'x.y']);
    assert.equal(one.code, 3, one.stderr);
    assert.equal(JSON.parse(one.stdout).seq, 1, 'the entry is printed');
    assert.match(
      one.stderr,
      /^evident: the entry \(seq 1\) is in the log, but then: .*checkpoint\.lock is not a regular file \(do not append again\) \[EVIDENT_LOG_CORRUPT\]\n$/,
    );
    const many = await evident(['append', '--dir', log.dir, '--batch'], { stdin: event(1) + event(2) });
    assert.equal(many.code, 3, many.stderr);
    assert.deepEqual(JSON.parse(many.stdout), { appended: 2, first: 2, last: 3 });
    assert.match(many.stderr, /the 2 entries \(seq 2 to 3\) are in the log, but then/);
    assert.equal(readLines(join(log.dir, 'log.jsonl')).length, 4);
  });

  it('must be regular files', async () => {
    for (const kind of ['directory', 'fifo'] as const) {
      const dir = await logWith(0);
      rmSync(join(dir, 'log.jsonl'));
      if (kind === 'directory') mkdirSync(join(dir, 'log.jsonl'));
      else assert.equal(spawnSync('mkfifo', [join(dir, 'log.jsonl')]).status, 0);
      const ran = await evident(['log', '--dir', dir]);
      assert.equal(ran.code, 1, `${kind}: ${ran.stderr}`);
      assert.match(ran.stderr, /log\.jsonl is not a regular file \[EVIDENT_LOG_CORRUPT\]/);
    }
  });
});

describe('naming the log', () => {
  it('an empty --dir or $EVIDENT_DIR is refused, not taken for the current directory', async () => {
    const cwd = tempDir();
    for (const [args, env] of [
      [['--dir', ''], {}],
      [[], { EVIDENT_DIR: '' }],
      [[], { EVIDENT_STORE: ' ' }],
      [['--store', 'file:'], {}],
      [[], { EVIDENT_STORE: 'file:' }],
    ] as const) {
      const ran = spawnSync(process.execPath, [CLI, 'init', ...args], {
        cwd,
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
      assert.equal(ran.status, 2, ran.stderr);
      assert.match(ran.stderr, /empty|names no directory/);
      assert.deepEqual(readdirSync(cwd), [], 'nothing created');
    }
  });

  it('an option that takes one value, given twice, is refused rather than half-heard', async () => {
    const dir = tempDir();
    for (const args of [
      ['log', '--dir', dir, '--actor', 'a', '--actor', 'b'],
      ['tail', '--dir', dir, '-n', '1', '-n', '2'],
      ['append', '--dir', dir, '--actor', 'a', '--action', 'x.y', '--action', 'x.z'],
    ]) {
      const ran = await evident(args);
      assert.equal(ran.code, 2, args.join(' '));
      assert.match(ran.stderr, /(--actor|-n|--action) is given more than once \[EVIDENT_USAGE\]/);
    }
    assert.deepEqual(readdirSync(dir), [], 'nothing written');
  });

  it('--dir naming a file says so', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    for (const dir of [file, join(file, 'below')]) {
      const ran = await evident(['init', '--dir', dir]);
      assert.equal(ran.code, 2);
      assert.match(
        ran.stderr,
        /is not a log directory: it, or a directory above it, is a file \[EVIDENT_INVALID_OPTION\]/,
      );
    }
  });
});

describe('failures and repairs, as the CLI reports them', () => {
  it('a log it may not write: exit 1, naming the file and what to check', async () => {
    const dir = await logWith(1);
    chmodSync(join(dir, '..'), 0o755); // another user may reach it, and read it, not write it
    chmodSync(dir, 0o755);
    const ran = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        CLI,
        'append',
        '--dir',
        dir,
        '--actor',
        'a',
        '--action',
        'x.y',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(ran.status, 1, ran.stderr);
    assert.match(
      ran.stderr,
      /EACCES: permission denied, open '.*\/lock': check the permissions .*\[EVIDENT_WRITE_FAILED\]/,
    );
    const reader = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'verify', '--dir', dir],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(reader.status, 0, `a reader needs no write access: ${reader.stderr}`);
  });

  it('a torn last line moved aside is reported when it happens, and by verify ever after', async () => {
    const dir = await logWith(3);
    appendFileSync(join(dir, 'log.jsonl'), '{"actor":"half a li');
    const ran = await evident(['append', '--dir', dir, '--actor', 'a', '--action', 'x.y']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stderr, /incomplete line \(19 bytes at byte \d+.*moved to .*quarantine/);
    const verify = await evident(['verify', '--dir', dir]);
    assert.equal(verify.code, 0);
    assert.match(
      verify.stdout,
      /note: 1 incomplete last line\(s\) or batch\(es\) were moved aside since the log began/,
    );
  });

  it('a failed init removes the directory it created', async () => {
    const dir = join(tempDir(), 'new', 'log');
    const files: Files = {
      ...nodeFiles,
      open: (path, flags, mode) =>
        path.endsWith('/lock') ? Promise.reject(osError('EIO', 'injected')) : nodeFiles.open(path, flags, mode),
    };
    await assert.rejects(Log.init({ store: fileStore(dir, files) }), { code: 'EVIDENT_WRITE_FAILED' });
    assert.equal(existsSync(dir), false);
  });
});

describe('a signing log, checked as it is', () => {
  it('plain verify checks it against its own checkpoint: a cut tail, a lost checkpoint', async () => {
    const log = signingLog('files.example/own');
    await log.init();
    const lines = Array.from({ length: 9 }, (_, i) => event(i)).join('');
    assert.equal((await evident(['append', '--dir', log.dir, '--batch'], { stdin: lines })).code, 0);
    const ok = await evident(['verify', '--dir', log.dir]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /consistent with its own signed checkpoint/);
    writeLines(join(log.dir, 'log.jsonl'), readLines(join(log.dir, 'log.jsonl')).slice(0, 8));
    const cut = await evident(['verify', '--dir', log.dir, '--json']);
    assert.equal(cut.code, 1);
    assert.deepEqual((({ reason, seq }) => ({ reason, seq }))(JSON.parse(cut.stdout).failure), {
      reason: 'truncated',
      seq: 8,
    });
    rmSync(join(log.dir, 'checkpoint'));
    const gone = await evident(['verify', '--dir', log.dir]);
    assert.equal(gone.code, 1);
    assert.match(gone.stdout, /FAILED: no-checkpoint .*checkpoint is gone/);
  });

  it('evident checkpoint prints only a checkpoint the log signed', async () => {
    const log = signingLog('files.example/checkpoint');
    await log.init();
    const path = join(log.dir, 'checkpoint');
    writeFileSync(path, readFileSync(path, 'utf8').replace(/\n1\n/, '\n2\n'));
    const ran = await evident(['checkpoint', '--dir', log.dir]);
    assert.equal(ran.code, 1);
    assert.equal(ran.stdout, '');
    assert.match(ran.stderr, /\[EVIDENT_NOTE_BAD_SIGNATURE\]/);
  });
});

describe('keys', () => {
  it('are written only their owner can read, into a directory only the owner can enter when it makes one', async () => {
    const out = join(tempDir(), 'keys', 'log.key');
    const ran = await evident(['keygen', '--name', 'keys.example/log', '--out', out]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, '..')).mode & 0o777, 0o700);
  });

  it('a signing key others can read is used, with one warning', async () => {
    const log = signingLog('keys.example/open');
    await log.init();
    chmodSync(log.keyFile, 0o644);
    const ran = await evident(['append', '--dir', log.dir, '--actor', 'a', '--action', 'x.y']);
    assert.equal(ran.code, 0);
    assert.match(
      ran.stderr,
      /^evident: warning: the signing key .* can be read by others \(mode 644\); chmod 600 it\n$/,
    );
    const init = await evident(['init', '--dir', join(tempDir(), 'other'), '--key', log.keyFile]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(init.stderr.match(/can be read by others/g)?.length, 1, `once, not at each use: ${init.stderr}`);
  });
});
