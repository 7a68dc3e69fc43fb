/**
 * Proofs and signed checkpoints end to end, through the CLI as a user runs
 * it: what a bare chain cannot catch (a cut tail, a rewritten history) is
 * caught against a checkpoint; receipts verify offline and fail when anything
 * in them or the entry changes; witnesses refuse rollbacks and split views;
 * a quorum of cosignatures is enforced.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { verifyConsistency, verifyInclusion } from '../../src/merkle/verify.js';
import { evident, FIXTURES, readLines, tempDir, until } from '../helpers.js';

let root: string;
let logKey: string;
let logVkey: string;

async function ok(args: string[], stdin?: string): Promise<string> {
  const ran = await evident(args, stdin === undefined ? {} : { stdin });
  assert.equal(ran.code, 0, `evident ${args.join(' ')}: ${ran.stderr}${ran.stdout}`);
  return ran.stdout;
}

async function appendN(dir: string, n: number, actor = 'agent'): Promise<void> {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ actor, action: 'file.edit', data: { i } }));
  await ok(['append', '--batch', '--dir', dir], `${lines.join('\n')}\n`);
}

/** A fresh signing log with `n` entries; returns its directory. */
async function signingLog(name: string, n: number): Promise<string> {
  const dir = join(root, name);
  await ok(['init', '--dir', dir, '--key', logKey]);
  if (n > 0) await appendN(dir, n);
  return dir;
}

describe('keys, checkpoints and proofs (CLI)', () => {
  before(async () => {
    root = tempDir();
    logKey = join(root, 'log.key');
    logVkey = (await ok(['keygen', '--name', 'audit.example/log', '--out', logKey])).trim();
  });

  it('keygen writes a private key only its owner can read, never overwrites it, and prints only the verifier key', async () => {
    assert.equal(statSync(logKey).mode & 0o777, 0o600);
    assert.match(logVkey, /^audit\.example\/log\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/);
    assert.match(readFileSync(logKey, 'utf8'), /^PRIVATE\+KEY\+audit\.example\/log\+/);
    const again = await evident(['keygen', '--name', 'x', '--out', logKey]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /never overwritten/);
  });

  it('each append command leaves a checkpoint covering it; note verify accepts it only with the right key', async () => {
    const dir = await signingLog('signed', 0);
    assert.match(
      await ok(['checkpoint', '--dir', dir]),
      /^audit\.example\/log\n1\n/,
      'its first entry, declaring the key',
    );
    await appendN(dir, 5);
    await appendN(dir, 2);
    const note = await ok(['checkpoint', '--dir', dir]);
    assert.match(note, /^audit\.example\/log\n8\n[A-Za-z0-9+/]{43}=\n\n— audit\.example\/log /);
    const json = JSON.parse(await ok(['checkpoint', '--dir', dir, '--json']));
    assert.equal(json.size, 8);
    writeFileSync(join(root, 'cp'), note);
    assert.equal(
      await ok(['note', 'verify', '--key', logVkey, join(root, 'cp')]),
      note.slice(0, note.indexOf('\n\n') + 1),
    );
    const otherKey = (await ok(['keygen', '--name', 'audit.example/log', '--out', join(root, 'other.key')])).trim();
    const wrong = await evident(['note', 'verify', '--key', otherKey, join(root, 'cp')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /EVIDENT_NOTE_UNVERIFIED/);
  });

  it('a tail cut below the checkpoint: the chain alone cannot see it, the checkpoint catches it', async () => {
    const dir = await signingLog('truncated', 20);
    const checkpoint = join(root, 'truncated.cp');
    writeFileSync(checkpoint, await ok(['checkpoint', '--dir', dir]));
    const lines = readLines(join(dir, 'log.jsonl'));
    truncateSync(join(dir, 'log.jsonl'), lines.slice(0, 15).join('\n').length + 1);
    const plain = await evident(['verify', '--dir', dir]); // checks the log against its own checkpoint
    assert.equal(plain.code, 1);
    assert.match(plain.stdout, /FAILED: truncated at seq 15/);
    const ran = await evident(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey, '--json']);
    assert.equal(ran.code, 1);
    const failure = JSON.parse(ran.stdout).failure;
    assert.equal(failure.reason, 'truncated');
    assert.equal(failure.seq, 15);
  });

  it('a whole history rewritten: the chain still verifies, the checkpoint catches it', async () => {
    const dir = await signingLog('rewritten', 10);
    const checkpoint = join(root, 'rewritten.cp');
    writeFileSync(checkpoint, await ok(['checkpoint', '--dir', dir]));
    // Someone with write access builds a fresh, self-consistent log with other entries and puts it in place.
    const forged = join(root, 'forged');
    await ok(['init', '--dir', forged]);
    await appendN(forged, 12, 'mallory');
    cpSync(join(forged, 'log.jsonl'), join(dir, 'log.jsonl'));
    assert.equal((await evident(['verify', '--dir', dir])).code, 0, 'a bare chain cannot see it');
    for (const since of [[], ['--since-checkpoint']]) {
      const ran = await evident([
        'verify',
        '--dir',
        dir,
        '--checkpoint',
        checkpoint,
        '--key',
        logVkey,
        '--json',
        ...since,
      ]);
      assert.equal(ran.code, 1, since.join(''));
      const { size, failure } = JSON.parse(ran.stdout);
      // The stored tiles still hold the signed tree: it names the first entry that is not the signed one.
      assert.deepEqual([size, failure.reason, failure.seq, failure.offset], [0, 'rewritten', 0, -1]);
    }
    const text = await evident(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey]);
    assert.match(text.stdout, /^FAILED: rewritten at seq 0 \(line 1\): entry 0 is not the one the checkpoint signed/);
    rmSync(join(dir, 'tree'), { recursive: true }); // without them, which entry changed first is not known
    const unlocated = await evident(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey]);
    assert.equal(unlocated.code, 1);
    assert.match(unlocated.stdout, /^FAILED: rewritten at seq 0 \(line 1\): the first 11 entries do not hash to /);
    assert.match(unlocated.stdout, /which entry was changed first is not known\)\n0 entries before it are intact/);
    // And the log refuses to append to the rewritten history, or to sign one.
    const append = await evident(['append', '--dir', dir, '--actor', 'x', '--action', 'y.z']);
    assert.equal(append.code, 1);
    assert.match(append.stderr, /EVIDENT_HISTORY_MISMATCH/);
  });

  it('a checkpoint not signed by the given key is not trusted', async () => {
    const dir = await signingLog('untrusted', 3);
    const checkpoint = join(root, 'untrusted.cp');
    writeFileSync(checkpoint, await ok(['checkpoint', '--dir', dir]));
    const other = (await ok(['keygen', '--name', 'audit.example/log', '--out', join(root, 'imposter.key')])).trim();
    const ran = await evident(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', other]);
    assert.equal(ran.code, 1);
    assert.match(ran.stdout, /not trusted/);
  });

  it('--since-checkpoint checks only what came after, and still names a bad entry there', async () => {
    const dir = await signingLog('since', 300);
    const checkpoint = join(root, 'since.cp');
    writeFileSync(checkpoint, await ok(['checkpoint', '--dir', dir]));
    await appendN(dir, 50);
    const good = JSON.parse(
      await ok(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey, '--since-checkpoint', '--json']),
    );
    const full = JSON.parse(await ok(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey, '--json']));
    assert.equal(good.ok, true);
    assert.equal(good.size, 351);
    assert.equal(good.root, full.root, 'both ways reach the same root');
    assert.match(
      await ok(['verify', '--dir', dir, '--checkpoint', checkpoint, '--key', logVkey, '--since-checkpoint']),
      /^ok: 351 entries verified \(the 50 from seq 301 read\)/,
      'it says which entries it read',
    );
    const path = join(dir, 'log.jsonl');
    const lines = readLines(path);
    lines[320] = (lines[320] as string).replace('"agent"', '"agent2"');
    writeFileSync(path, `${lines.join('\n')}\n`);
    const ran = await evident([
      'verify',
      '--dir',
      dir,
      '--checkpoint',
      checkpoint,
      '--key',
      logVkey,
      '--since-checkpoint',
      '--json',
    ]);
    assert.equal(ran.code, 1);
    assert.deepEqual((({ seq, reason }) => ({ seq, reason }))(JSON.parse(ran.stdout).failure), {
      seq: 320,
      reason: 'hash-mismatch',
    });
  });

  it('receipts verify offline, and fail when the entry, the proof, the index or the key is wrong', async () => {
    const dir = await signingLog('receipts', 40);
    const receipt = join(root, 'r17');
    await ok(['receipt', '--dir', dir, '--seq', '17', '--out', receipt]);
    assert.match(readFileSync(receipt, 'utf8'), /^c2sp\.org\/tlog-proof@v1\nindex 17\n/);
    const entry = readLines(join(dir, 'log.jsonl'))[17] as string;
    const entryFile = join(root, 'e17.json');
    writeFileSync(entryFile, JSON.stringify(JSON.parse(entry), null, 2)); // any rendering of the entry will do
    assert.match(
      await ok(['verify-receipt', receipt, '--entry', entryFile, '--key', logVkey]),
      /ok: entry 17 is in audit\.example\/log at tree size 41/,
    );

    const bad = async (what: string, args: string[]) => {
      const ran = await evident(['verify-receipt', ...args]);
      assert.notEqual(ran.code, 0, what);
      assert.match(ran.stderr, /^evident: .+\[EVIDENT_[A-Z_]+\]\n$/, what);
    };
    // The private key where the verifier key belongs: said so, as a bad key.
    const privateKey = await evident(['verify-receipt', receipt, '--entry', entryFile, '--key', logKey]);
    assert.equal(privateKey.code, 2);
    assert.match(
      privateKey.stderr,
      /--key: this is a private \(signer\) key: give its verifier key.*\[EVIDENT_BAD_KEY\]/,
    );
    const altered = JSON.parse(entry) as Entry;
    writeFileSync(join(root, 'altered.json'), JSON.stringify({ ...altered, actor: 'mallory' }));
    await bad('an altered entry', [receipt, '--entry', join(root, 'altered.json'), '--key', logVkey]);
    // The entry as given, or refused: a second actor member would show one actor and hash as another.
    writeFileSync(join(root, 'twice.json'), entry.replace('{', '{"actor":"mallory",'));
    const twice = await evident(['verify-receipt', receipt, '--entry', join(root, 'twice.json'), '--key', logVkey]);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /--entry: \$\.actor: appears twice in one object \[EVIDENT_INVALID_ENTRY\]/);
    const other = readLines(join(dir, 'log.jsonl'))[18] as string;
    writeFileSync(join(root, 'other.json'), other);
    await bad('another entry', [receipt, '--entry', join(root, 'other.json'), '--key', logVkey]);
    const text = readFileSync(receipt, 'utf8');
    const lines = text.split('\n');
    const flipped = [...lines];
    flipped[2] = `${(lines[2] as string).startsWith('A') ? 'B' : 'A'}${(lines[2] as string).slice(1)}`;
    writeFileSync(join(root, 'r-proof'), flipped.join('\n'));
    await bad('a changed proof hash', [join(root, 'r-proof'), '--entry', entryFile, '--key', logVkey]);
    writeFileSync(join(root, 'r-index'), text.replace('index 17', 'index 16'));
    await bad('another index', [join(root, 'r-index'), '--entry', entryFile, '--key', logVkey]);
    const imposter = (await ok(['keygen', '--name', 'audit.example/log', '--out', join(root, 'imposter2.key')])).trim();
    await bad('another key', [receipt, '--entry', entryFile, '--key', imposter]);

    // Hostile files: named as what they are not, never a crash.
    const deep = join(root, 'deep.json');
    writeFileSync(deep, `${'['.repeat(300_000)}${']'.repeat(300_000)}`);
    const nested = await evident(['verify-receipt', receipt, '--entry', deep, '--key', logVkey]);
    assert.equal(nested.code, 2);
    assert.match(nested.stderr, /--entry: \$(\[0\]){65}: nests deeper than 64 levels.*\[EVIDENT_INVALID_ENTRY\]/);
    for (const [args, problem] of [
      [[receipt, '--entry', '/dev/zero'], /entry "\/dev\/zero" is larger than 1048576 bytes/],
      [['/dev/zero', '--entry', entryFile], /receipt "\/dev\/zero" is larger than 1048576 bytes/],
      [[join(root, 'missing'), '--entry', entryFile], /receipt ".*missing" cannot be read \(ENOENT\)/],
    ] as const) {
      const ran = await evident(['verify-receipt', ...args, '--key', logVkey]);
      assert.equal(ran.code, 2, ran.stderr);
      assert.match(ran.stderr, problem);
    }
    writeFileSync(join(root, 'latin1'), Buffer.from([0x63, 0xe9, 0x0a]));
    const latin1 = await evident(['note', 'verify', '--key', logVkey, join(root, 'latin1')]);
    assert.match(latin1.stderr, /note ".*latin1" is not UTF-8 text \[EVIDENT_USAGE\]/);
  });

  it('proof commands give RFC 9162 proofs that the library checks', async () => {
    const dir = await signingLog('proofs', 33);
    const inclusion = JSON.parse(await ok(['proof', 'inclusion', '--dir', dir, '--seq', '5', '--json']));
    const consistency = JSON.parse(await ok(['proof', 'consistency', '--dir', dir, '--from', '20', '--json']));
    const b = (s: string) => Buffer.from(s, 'base64');
    const entry = JSON.parse(readLines(join(dir, 'log.jsonl'))[5] as string) as Entry;
    verifyInclusion(5, 34, Buffer.from(entry.hash, 'hex'), inclusion.proof.map(b), b(inclusion.root));
    verifyConsistency(20, 34, consistency.proof.map(b), b(consistency.fromRoot), b(consistency.root));
    assert.equal(consistency.root, inclusion.root);
    const beyond = await evident(['proof', 'inclusion', '--dir', dir, '--seq', '34']);
    assert.equal(beyond.code, 2);
    assert.match(beyond.stderr, /--seq 34 is not in a tree of 34 \[EVIDENT_OUT_OF_RANGE\]/);
    const backwards = await evident(['proof', 'consistency', '--dir', dir, '--from', '30', '--to', '20']);
    assert.match(backwards.stderr, /\[EVIDENT_OUT_OF_RANGE\]/);
  });
});

describe('witnesses (CLI)', () => {
  let w1: { key: string; vkey: string };
  let w2: { key: string; vkey: string };

  before(async () => {
    root ??= tempDir();
    w1 = { key: join(root, 'w1.key'), vkey: '' };
    w2 = { key: join(root, 'w2.key'), vkey: '' };
    w1.vkey = (await ok(['keygen', '--witness', '--name', 'w1.example', '--out', w1.key])).trim();
    w2.vkey = (await ok(['keygen', '--witness', '--name', 'w2.example', '--out', w2.key])).trim();
  });

  const cosign = (state: string, key: string, log: string) =>
    evident(['witness', 'cosign', '--state', state, '--key', key, '--log-key', logVkey, '--log', log]);
  /** Cosigns the checkpoint in file `checkpoint` (with the proof in file `proof`, if any) as witness w1. */
  const cosignFile = (state: string, checkpoint: string, proof?: string) =>
    evident([
      ...['witness', 'cosign', '--state', state, '--key', w1.key, '--log-key', logVkey, '--checkpoint', checkpoint],
      ...(proof === undefined ? [] : ['--proof', proof]),
    ]);

  it('cosigns a growing log; verification can require a quorum of witnesses', async () => {
    const dir = await signingLog('witnessed', 10);
    const s1 = join(root, 'w1-state');
    const s2 = join(root, 'w2-state');
    assert.equal((await cosign(s1, w1.key, dir)).code, 0);
    await appendN(dir, 10);
    const first = await cosign(s1, w1.key, dir);
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(join(root, 'cosigned-1'), first.stdout);
    const trust = (file: string, quorum: number) =>
      evident([
        'verify',
        '--dir',
        dir,
        '--checkpoint',
        file,
        '--key',
        logVkey,
        '--witness',
        w1.vkey,
        '--witness',
        w2.vkey,
        '--quorum',
        String(quorum),
      ]);
    assert.equal((await trust(join(root, 'cosigned-1'), 1)).code, 0);
    const short = await trust(join(root, 'cosigned-1'), 2);
    assert.equal(short.code, 1);
    assert.match(short.stdout, /1 of the 2 witness cosignatures/);
    // The second witness cosigns the same checkpoint; the log keeps both cosignatures for receipts.
    const second = await cosign(s2, w2.key, dir);
    assert.equal(second.code, 0, second.stderr);
    await ok(['receipt', '--dir', dir, '--seq', '3', '--out', join(root, 'r-both')]);
    const receipt = readFileSync(join(root, 'r-both'), 'utf8');
    assert.match(receipt, /— w1\.example /);
    assert.match(receipt, /— w2\.example /);
    writeFileSync(join(root, 'e3.json'), readLines(join(dir, 'log.jsonl'))[3] as string);
    const receiptOf3 = ['verify-receipt', join(root, 'r-both'), '--entry', join(root, 'e3.json'), '--key', logVkey];
    const verified = await ok([...receiptOf3, '--witness', w1.vkey, '--witness', w2.vkey, '--quorum', '2']);
    assert.match(verified, /cosigned by w1\.example, w2\.example/);
    // A log's key given as a witness's would count a plain signature as a cosignature: refused as a bad key.
    const plain = (await ok(['keygen', '--name', 'w9.example', '--out', join(root, 'w9.key')])).trim();
    const wrongKind = await evident([...receiptOf3, '--witness', plain]);
    assert.equal(wrongKind.code, 2);
    assert.match(wrongKind.stderr, /witness key w9\.example is not a witness key \[EVIDENT_BAD_KEY\]/);
    // A proof file that is not what `evident proof` writes: said so, and nothing cosigned.
    writeFileSync(join(root, 'cp'), await ok(['checkpoint', '--dir', dir]));
    for (const [text, problem] of [
      ['{bad', /--proof: not JSON/],
      ['{"proof":["zz"]}', /--proof: "zz" is not a base64 SHA-256 hash/],
    ] as const) {
      writeFileSync(join(root, 'bad.proof'), text);
      const ran = await cosignFile(s1, join(root, 'cp'), join(root, 'bad.proof'));
      assert.equal(ran.code, 2, ran.stderr);
      assert.match(ran.stderr, problem);
      assert.match(ran.stderr, /\[EVIDENT_USAGE\]\n$/);
    }
  });

  it('cosigning from a log goes on when another cosigner moved the state meanwhile: no fork or rollback claimed', async () => {
    const dir = await signingLog('moved', 4);
    const state = join(root, 'moved-state');
    assert.equal((await cosign(state, w1.key, dir)).code, 0);
    await appendN(dir, 1);
    writeFileSync(join(root, 'moved.cp'), await ok(['checkpoint', '--dir', dir]));
    writeFileSync(
      join(root, 'moved.proof'),
      await ok(['proof', 'consistency', '--from', '5', '--to', '6', '--dir', dir]),
    );
    await appendN(dir, 1);
    // This cosigner makes its proof from 5, then waits; meanwhile another cosigns 6.
    const gate = join(root, 'moved.gate');
    const slow = evident(['witness', 'cosign', '--state', state, '--key', w1.key, '--log-key', logVkey, '--log', dir], {
      nodeArgs: ['--import', join(FIXTURES, 'slow-cosign.js')],
      env: { EVIDENT_TEST_GATE: gate },
    });
    await until(() => existsSync(`${gate}.reached`), 'the slow cosigner at its gate');
    const other = await cosignFile(state, join(root, 'moved.cp'), join(root, 'moved.proof'));
    assert.equal(other.code, 0, other.stderr);
    // And then past the checkpoint it read: the log grew, and another cosigned that.
    await appendN(dir, 1);
    assert.equal((await cosign(state, w1.key, dir)).code, 0);
    writeFileSync(gate, '');
    const ran = await slow;
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^audit\.example\/log\n8\n/, 'it cosigns the checkpoint the log has now');
  });

  it('refuses a rollback to an older checkpoint', async () => {
    const dir = await signingLog('rollback', 5);
    const state = join(root, 'rollback-state');
    const old = await ok(['checkpoint', '--dir', dir]);
    await appendN(dir, 5);
    assert.equal((await cosign(state, w1.key, dir)).code, 0);
    writeFileSync(join(root, 'old.cp'), old);
    const ran = await cosignFile(state, join(root, 'old.cp'));
    assert.equal(ran.code, 1);
    assert.match(ran.stderr, /EVIDENT_WITNESS_ROLLBACK/);
  });

  it('catches a split view: two logs sharing a prefix, then diverging under the same key', async () => {
    const a = await signingLog('split-a', 8);
    const b = join(root, 'split-b');
    cpSync(a, b, { recursive: true });
    await appendN(a, 4, 'alice');
    await appendN(b, 4, 'bob'); // same origin, same key, same size, different history
    const state = join(root, 'split-state');
    assert.equal((await cosign(state, w1.key, a)).code, 0);
    const forked = await cosign(state, w1.key, b);
    assert.notEqual(forked.code, 0);
    assert.match(forked.stderr, /EVIDENT_WITNESS_FORK/);
    await appendN(b, 3, 'bob'); // larger, but still not an extension of what was cosigned
    const later = await cosign(state, w1.key, b);
    assert.notEqual(later.code, 0);
    assert.match(later.stderr, /EVIDENT_WITNESS_FORK/);
    await appendN(a, 1, 'alice');
    assert.equal((await cosign(state, w1.key, a)).code, 0, 'the honest log goes on being cosigned');
  });
});

describe('checkpoints across crashes', () => {
  it('checkpoints signed after a crash recovery are consistent with those before it', async () => {
    root ??= tempDir();
    const dir = await signingLog('crashy', 3);
    const saved: string[] = [await ok(['checkpoint', '--dir', dir])];
    for (let round = 0; round < 5; round++) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [join(FIXTURES, 'crash-writer.js'), dir, 'stream'], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, EVIDENT_KEY: logKey },
        });
        let seen = 0;
        child.stdout.on('data', (d: Buffer) => {
          seen += d.toString().split('\n').length - 1;
          if (seen > 30) child.kill('SIGKILL');
        });
        child.on('error', reject);
        child.on('close', () => resolve());
      });
      const log = await Log.open({ store: dir });
      await log.append({ actor: 'after-crash', action: 'test.ok' });
      await log.close();
      saved.push(await ok(['checkpoint', '--dir', dir]));
    }
    for (const [k, note] of saved.entries()) {
      writeFileSync(join(root, `crash-${k}.cp`), note);
      const ran = await evident([
        'verify',
        '--dir',
        dir,
        '--checkpoint',
        join(root, `crash-${k}.cp`),
        '--key',
        logVkey,
      ]);
      assert.equal(ran.code, 0, `checkpoint ${k}: ${ran.stdout}`);
    }
  });
});
