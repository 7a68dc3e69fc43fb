/**
 * The CLI with --url: append, log, tail, receipt, checkpoint and verify
 * against `evident serve` on 127.0.0.1, with the same output and exit codes
 * as against a directory.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { buildServer } from '../../src/server/server.js';
import { addToken } from '../../src/server/tokens.js';
import { evident, readStore, signingLog, tempDir } from '../helpers.js';

const keys = signingLog('cli-remote.example/log');
let log: Log;
let base = '';
let close: () => Promise<unknown>;
let token = '';
let ciToken = '';

describe('evident … --url', () => {
  before(async () => {
    await keys.init();
    const tokens = join(tempDir(), 'tokens.json');
    token = addToken(tokens, 'cli', ['append', 'read']);
    ciToken = addToken(tokens, 'ci', ['append', 'read'], ['ci-*']);
    log = new Log({ store: keys.dir, checkpointInterval: 20 });
    const app = buildServer({ log, tokens });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    close = () => app.close();
  });
  after(async () => {
    await close();
    await log.close();
  });

  const remote = (args: string[], stdin?: string) =>
    evident([...args, '--url', base], { env: { EVIDENT_TOKEN: token }, ...(stdin === undefined ? {} : { stdin }) });

  it('appends one entry and a batch, printing them as a local append does', async () => {
    const one = await remote(['append', '--actor', 'ci-bot', '--action', 'deploy.start', '--target', 'api']);
    assert.equal(one.code, 0, one.stderr);
    const entry = JSON.parse(one.stdout) as Entry;
    assert.equal(entry.actor, 'ci-bot');
    assert.equal(entry.via?.token, 'cli');
    const batch = await remote(['append', '--batch'], '{"actor":"a","action":"x.y"}\n{"actor":"b","action":"x.z"}\n');
    assert.equal(batch.code, 0, batch.stderr);
    assert.deepEqual(JSON.parse(batch.stdout), { appended: 2, first: entry.seq + 1, last: entry.seq + 2 });
    const stored = await readStore(keys.dir);
    assert.deepEqual(stored.slice(entry.seq, entry.seq + 1), [entry]);
    assert.deepEqual(
      stored.slice(entry.seq + 1).map((e) => e.actor),
      ['a', 'b'],
    );
  });

  it('refuses a bad line of a batch, naming it, and writes nothing', async () => {
    const size = (await log.head()).size;
    const bad = await remote(
      ['append', '--batch'],
      '{"actor":"a","action":"x.y"}\n{"actor":"a","action":"x.y","k":1}\n',
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /stdin line 2: \$\.k: is not an entry field.*\[EVIDENT_INVALID_ENTRY\]/);
    assert.equal((await log.head()).size, size);
  });

  it('lists, tails and writes receipts that verify offline', async () => {
    const listed = await remote(['log', '--actor', 'ci-bot', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const entry = JSON.parse(listed.stdout.trim()) as Entry;
    assert.equal(entry.action, 'deploy.start');
    const tail = await remote(['tail', '-n', '2', '--json']);
    assert.deepEqual(
      tail.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as Entry).actor),
      ['a', 'b'],
    );
    const dir = tempDir();
    const receiptFile = join(dir, 'receipt');
    const entryFile = join(dir, 'entry.json');
    writeFileSync(entryFile, JSON.stringify(entry));
    const receipt = await remote(['receipt', '--seq', String(entry.seq), '--wait', '5', '--out', receiptFile]);
    assert.equal(receipt.code, 0, receipt.stderr);
    const checked = await evident(['verify-receipt', receiptFile, '--entry', entryFile, '--key', keys.verifier]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /^ok: entry \d+ is in cli-remote\.example\/log/);
  });

  it('prints the checkpoint only when the key signed it', async () => {
    const good = await remote(['checkpoint', '--key', keys.verifier, '--json']);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(JSON.parse(good.stdout).origin, 'cli-remote.example/log');
    const other = signingLog('cli-remote.example/log');
    const bad = await remote(['checkpoint', '--key', other.verifier]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^FAILED: the log's checkpoint is not trusted/);
    const keyless = await remote(['checkpoint']);
    assert.equal(keyless.code, 2);
  });

  it('verifies through the tiles, and remembers the checkpoint for the next run', async () => {
    const state = join(tempDir(), 'seen.checkpoint');
    await log.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'bulk', action: 'load.row', data: { i } })));
    const first = await remote(['verify', '--key', keys.verifier, '--remember', state]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /^ok: \d+ entries verified/);
    const remembered = readFileSync(state, 'utf8');
    assert.match(remembered, /^cli-remote\.example\/log\n\d+\n/);
    await log.append({ actor: 'later', action: 'x.y' });
    const second = await remote(['verify', '--key', keys.verifier, '--remember', state, '--json']);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    const result = JSON.parse(second.stdout);
    assert.equal(result.ok, true);
    assert.ok(result.checkpointSize >= Number(remembered.split('\n')[1]));
    // With --since-checkpoint, a monitor reads only the tiles from the one holding the remembered last entry.
    await log.append({ actor: 'later', action: 'x.y' });
    const third = await remote(['verify', '--key', keys.verifier, '--remember', state, '--since-checkpoint']);
    assert.equal(third.code, 0, third.stdout + third.stderr);
    assert.match(third.stdout, /^ok: \d+ entries verified \(the \d+ from seq [1-9]\d* read\)/);

    // Checked against the checkpoint of another history signed with the same key: a split view.
    const fork = signingLog('cli-remote.example/log');
    writeFileSync(fork.keyFile, readFileSync(keys.keyFile));
    await Log.init({ store: fork.dir, signingKey: fork.keyFile });
    const forked = new Log({ store: fork.dir });
    await forked.appendBatch(Array.from({ length: 5 }, () => ({ actor: 'm', action: 'x.y' })));
    await forked.close();
    const foreign = join(tempDir(), 'fork.checkpoint');
    writeFileSync(foreign, readFileSync(join(fork.dir, 'checkpoint')));
    const split = await remote(['verify', '--key', keys.verifier, '--checkpoint', foreign]);
    assert.equal(split.code, 1, split.stdout + split.stderr);
    assert.match(split.stdout, /^FAILED: split-view at seq 0/);
  });

  it('says what is wrong with the command line, the token or the server', async () => {
    const both = await evident(['log', '--url', base, '--dir', tempDir()]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --url, or --dir or --store, not both/);
    const stray = await evident(['log', '--token', 'x']);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /--token goes with --url/);
    const threads = await remote(['verify', '--key', keys.verifier, '--threads', '2']);
    assert.equal(threads.code, 2);
    const since = await remote(['verify', '--key', keys.verifier, '--since-checkpoint']);
    assert.equal(since.code, 2);
    assert.match(since.stderr, /--since-checkpoint needs --checkpoint or --remember/);
    const unknown = await evident(['append', '--actor', 'a', '--action', 'x.y', '--url', base, '--token', 'evt_nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /\[EVIDENT_UNAUTHORIZED\]$/m);
    // Files and addresses that cannot be used are refused before anything is done, naming them.
    const missingDir = join(tempDir(), 'no', 'such');
    const remember = await remote(['verify', '--key', keys.verifier, '--remember', join(missingDir, 'x.cp')]);
    assert.equal(remember.code, 2);
    assert.match(remember.stderr, /--remember: there is no directory .*no\/such to keep the checkpoint in/);
    const out = await remote(['receipt', '--seq', '1', '--out', join(missingDir, 'r.txt')]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /cannot write .*r\.txt: ENOENT.* \[EVIDENT_WRITE_FAILED\]/);
    const tokensGone = await evident(['serve', '--dir', keys.dir, '--tokens', join(missingDir, 't.json')]);
    assert.equal(tokensGone.code, 2);
    assert.match(tokensGone.stderr, /--tokens: there is no .*t\.json/);
    const unsigned = join(tempDir(), 'unsigned');
    await evident(['init', '--dir', unsigned]);
    const keyForNothing = await evident(['serve', '--dir', unsigned, '--key', keys.keyFile, '--listen', '127.0.0.1:0']);
    assert.equal(keyForNothing.code, 2);
    assert.match(keyForNothing.stderr, /--key: the log in .*unsigned does not sign checkpoints/);
    const noHost = await evident(['serve', '--dir', keys.dir, '--listen', ':8080']);
    assert.equal(noHost.code, 2);
    assert.match(noHost.stderr, /--listen: give the host too/);
    const logsFile = join(tempDir(), 'logs.policy');
    writeFileSync(logsFile, `log ${keys.verifier}\nquorum none\n`);
    const witnessKey = join(tempDir(), 'w.key');
    assert.equal((await evident(['keygen', '--name', 'w.example/w', '--witness', '--out', witnessKey])).code, 0);
    const witnessServe = (state: string, listen: string) =>
      evident(['witness', 'serve', '--state', state, '--key', witnessKey, '--logs', logsFile, '--listen', listen]);
    const inUse = await witnessServe(tempDir(), new URL(base).host);
    assert.equal(inUse.code, 2, inUse.stderr);
    assert.match(inUse.stderr, /--listen 127\.0\.0\.1:\d+: something else listens there \[EVIDENT_INVALID_OPTION\]/);
    const stateFile = join(tempDir(), 'state-is-a-file');
    writeFileSync(stateFile, 'x');
    const badState = await witnessServe(stateFile, '127.0.0.1:0');
    assert.equal(badState.code, 1);
    assert.match(badState.stderr, /the witness state .*state-is-a-file cannot be used.*\[EVIDENT_WITNESS_STATE\]/);
    // Where no directory can be made (Node's own recursive mkdir spins forever under /proc): refused, at once.
    const procState = await witnessServe('/proc/evident-nope/state', '127.0.0.1:0');
    assert.equal(procState.code, 1);
    assert.match(procState.stderr, /\[EVIDENT_WITNESS_STATE\]/);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const nobody = await evident(['tail', '--url', `http://127.0.0.1:${port}`], { env: { EVIDENT_TOKEN: token } });
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /did not answer: ECONNREFUSED \[EVIDENT_UNAVAILABLE\]/);
  });

  it("names what the service refuses of a later batch by the input's line, not the batch's", async () => {
    const size = (await log.head()).size;
    const lines = Array.from({ length: 6000 }, (_, i) => `{"actor":"ci-${i}","action":"x.y"}\n`);
    lines[4999] = '{"actor":"alice","action":"x.y"}\n';
    const refused = await evident(['append', '--batch', '--url', base], {
      env: { EVIDENT_TOKEN: ciToken },
      stdin: lines.join(''),
    });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /lines 1 to 4096 of the input are in the log.*--skip 4096/);
    assert.match(refused.stderr, /stdin line 5000: token ci may not append as "alice" \[EVIDENT_FORBIDDEN\]\n$/);
    assert.equal((await log.head()).size, size + 4096);
  });
});
