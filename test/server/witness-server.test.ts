/**
 * Witnesses over HTTP (C2SP tlog-witness): `evident witness serve`
 * processes, and `evident serve --policy` pushing its checkpoints to them;
 * every status of add-checkpoint, rollbacks and forks submitted by hand,
 * concurrent submissions of which only one may win, and a witness that is
 * down never holding up appends.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Log } from '../../src/log.js';
import { emptyRoot } from '../../src/merkle/hash.js';
import { checkpointOfNote, formatCheckpoint } from '../../src/note/checkpoint.js';
import { ALG_COSIGNATURE_V1, generateNoteKey, parseSignerKey, parseVerifierKey } from '../../src/note/keys.js';
import { ed25519Signer, signNote, splitNote } from '../../src/note/note.js';
import { parsePolicy, quorumMet } from '../../src/note/policy.js';
import { trustCheckpoint } from '../../src/note/trust.js';
import { parseReceipt, verifyReceipt } from '../../src/receipt.js';
import { buildServer } from '../../src/server/server.js';
import { addToken } from '../../src/server/tokens.js';
import { buildWitnessServer } from '../../src/server/witness-server.js';
import { WitnessPusher } from '../../src/server/witnesses.js';
import { Witness } from '../../src/witness.js';
import { daemon, signingLog, tempDir, until } from '../helpers.js';

function witnessKeys(name: string) {
  const { signer, verifier } = generateNoteKey(name, ALG_COSIGNATURE_V1);
  const file = join(tempDir(), 'witness.key');
  writeFileSync(file, `${signer}\n`, { mode: 0o600 });
  return { file, verifier };
}

/** POSTs an add-checkpoint body to `url`. */
async function submit(url: string, old: number, proof: Buffer[], note: string) {
  const body = `old ${old}\n${proof.map((h) => `${h.toString('base64')}\n`).join('')}\n${note}`;
  const response = await fetch(`${url}/add-checkpoint`, { method: 'POST', body });
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
}

describe('witnesses over HTTP', () => {
  const keys = signingLog('witnessed.example/log');
  const w1 = witnessKeys('w1.example/witness');
  const w2 = witnessKeys('w2.example/witness');
  const running: ReturnType<typeof daemon>[] = [];
  let url1 = '';
  let url2 = '';
  let logsFile = '';

  before(async () => {
    await keys.init();
    logsFile = join(tempDir(), 'logs.policy');
    // Only the log lines matter to a witness: a policy without a quorum line will do.
    writeFileSync(logsFile, `# the logs these witnesses witness\nlog ${keys.verifier}\n`);
    for (const w of [w1, w2]) {
      running.push(
        daemon([
          'witness',
          'serve',
          '--state',
          tempDir(),
          '--key',
          w.file,
          '--logs',
          logsFile,
          '--listen',
          '127.0.0.1:0',
          '--log-level',
          'silent',
        ]),
      );
    }
    [url1, url2] = (await Promise.all(running.map((d) => d.url))) as [string, string];
  });
  after(async () => {
    for (const d of running) d.child.kill('SIGTERM');
    await Promise.all(running.map((d) => d.exited));
  });

  it('a log pushes each checkpoint to its two witnesses; receipts carry both cosignatures', async () => {
    const policyFile = join(tempDir(), 'log.policy');
    writeFileSync(
      policyFile,
      [
        `log ${keys.verifier}`,
        `witness W1 ${w1.verifier} ${url1}`,
        `witness W2 ${w2.verifier} ${url2}`,
        'group both all W1 W2',
        'quorum both',
        '',
      ].join('\n'),
    );
    const tokens = join(tempDir(), 'tokens.json');
    const secret = addToken(tokens, 'app', ['append', 'read']);
    const server = daemon([
      'serve',
      '--dir',
      keys.dir,
      '--listen',
      '127.0.0.1:0',
      '--tokens',
      tokens,
      '--policy',
      policyFile,
      '--log-level',
      'silent',
    ]);
    try {
      const base = await server.url;
      const auth = { authorization: `Bearer ${secret}` };
      let last = 0;
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`${base}/v1/entries`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ actor: 'app', action: 'thing.done', data: { i } }),
        });
        assert.equal(response.status, 201);
        last = ((await response.json()) as { seq: number }).seq;
        await new Promise((resolve) => setTimeout(resolve, 300)); // several checkpoints, several pushes
      }
      const policy = parsePolicy(
        `${[`witness W1 ${w1.verifier}`, `witness W2 ${w2.verifier}`, 'group both all W1 W2', 'quorum both'].join('\n')}\n`,
      );
      const trust = { log: keys.key, witnesses: policy.witnesses.map((w) => w.key), quorum: 2 };
      let note = '';
      await until(async () => {
        note = await (await fetch(`${base}/checkpoint`, { headers: auth })).text();
        const checkpoint = trustCheckpoint(note, { ...trust, quorum: 0 });
        return checkpoint.size > last && checkpoint.cosigners.length === 2;
      }, 'a checkpoint of every entry, cosigned by both witnesses').catch(async (error: Error) => {
        const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
        throw new Error(
          `${error.message}\n${note}\n${metrics
            .split('\n')
            .filter((l) => l.includes('witness'))
            .join('\n')}`,
        );
      });
      const cosigned = trustCheckpoint(note, trust);
      const names = new Set(
        policy.witnesses.filter((w) => cosigned.cosigners.some((c) => c.name === w.key.name)).map((w) => w.name),
      );
      assert.ok(quorumMet(policy, names), 'the policy quorum holds');
      const entry = await (await fetch(`${base}/v1/entries/${last}`, { headers: auth })).json();
      const receipt = await (await fetch(`${base}/v1/entries/${last}/receipt?wait=5`, { headers: auth })).text();
      assert.equal(verifyReceipt(parseReceipt(receipt), entry, trust).cosigners.length, 2);
      // Five checkpoints were cosigned by two witnesses; only the largest one's copies are kept.
      const kept = readdirSync(join(keys.dir, 'cosignatures')).map(
        (name) => splitNote(readFileSync(join(keys.dir, 'cosignatures', name), 'utf8')).text,
      );
      assert.ok(kept.length >= 1 && kept.length <= 2, `copies kept: ${kept.length}`);
      assert.equal(new Set(kept).size, 1, 'all of one checkpoint');
      const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
      assert.match(metrics, /^evident_witness_up\{witness="W1"\} 1$/m);
      assert.match(metrics, /^evident_witness_up\{witness="W2"\} 1$/m);
    } finally {
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, server.stderr());
    }
  });

  it('answers every add-checkpoint status the spec gives; rollbacks and forks are refused', async () => {
    // The witnesses have cosigned the log above; w1's size is the log's checkpoint size now.
    const log = new Log({ store: keys.dir, checkpointInterval: 10 });
    const note = (await log.checkpoint()) as string;
    const size = checkpointOfNote(note).size;
    const stale = await submit(url1, 0, [], note);
    assert.equal(stale.status, 409, stale.text);
    assert.equal(stale.type, 'text/x.tlog.size');
    const known = Number(stale.text);
    assert.equal(stale.text, `${known}\n`);
    assert.ok(known > 0 && known <= size);

    // Up to date, then one more entry with the right proof: 200 and a cosignature line.
    const proof = known < size ? await log.consistencyProof(known, size) : [];
    const current = await submit(url1, known, proof, note);
    assert.equal(current.status, 200, current.text);
    assert.match(current.text, /^— w1\.example\/witness [A-Za-z0-9+/=]+\n$/);
    assert.equal((await submit(url1, size, [Buffer.alloc(32)], note)).status, 422, 'a proof between equal sizes');
    await log.append({ actor: 'a', action: 'x.y' });
    const next = (await log.checkpoint()) as string;
    const nextSize = checkpointOfNote(next).size;
    const bad = await log.consistencyProof(size - 1, nextSize); // a proof, but not from `size`
    assert.equal((await submit(url1, size, bad, next)).status, 422);
    assert.equal((await submit(url1, nextSize + 1, [], next)).status, 400, 'old beyond the checkpoint');
    assert.equal((await submit(url1, 0, [Buffer.alloc(32)], next)).status, 409, 'a proof from 0: its size first');
    assert.equal((await submit(url1, size, [], 'not a note')).status, 400);
    assert.equal((await fetch(`${url1}/add-checkpoint`, { method: 'POST', body: 'hello' })).status, 400);
    const got = await fetch(`${url1}/add-checkpoint`);
    assert.deepEqual([got.status, got.headers.get('allow')], [405, 'POST'], 'another method is told which');

    // Rolled back: the log's key signs a smaller tree (an old checkpoint, resubmitted).
    assert.equal((await submit(url1, size, [], note.replace(/\n\d+\n/, '\n1\n'))).status, 403, 'an edited note');
    const rolledBack = await submit(url1, size, [], await oldCheckpoint(log, keys.keyFile, 1));
    assert.equal(rolledBack.status, 400, 'old is beyond a smaller checkpoint');

    // Forked: the same key signs another tree of the same size.
    const fork = join(tempDir(), 'fork');
    await Log.init({ store: fork, signingKey: keys.keyFile });
    const forked = new Log({ store: fork });
    await forked.appendBatch(
      Array.from({ length: size - 1 }, (_, i) => ({ actor: 'm', action: 'fork.x', data: { i } })),
    );
    const forkNote = (await forked.checkpoint()) as string;
    assert.equal(checkpointOfNote(forkNote).size, size);
    const sameSize = await submit(url1, size, [], forkNote);
    assert.equal(sameSize.status, 409, 'another root at the size it cosigned');
    assert.equal(sameSize.text, `${size}\n`);
    await forked.append({ actor: 'm', action: 'fork.y' });
    const forkNext = (await forked.checkpoint()) as string;
    const forkProof = await forked.consistencyProof(size, checkpointOfNote(forkNext).size);
    assert.equal((await submit(url1, size, forkProof, forkNext)).status, 422, 'a fork that does not extend it');
    await forked.close();

    // Not a log it witnesses, or not signed by that log's key.
    assert.equal((await submit(url1, 0, [], await firstCheckpoint('stranger.example/log'))).status, 404);
    const impostorNote = await firstCheckpoint('witnessed.example/log'); // that origin, another key
    assert.equal((await submit(url1, 0, [], impostorNote)).status, 403);

    // Two checkpoints submitted at once from the same old size: one wins, the other is told the new size.
    await log.append({ actor: 'a', action: 'x.y' });
    const a = (await log.checkpoint()) as string;
    await log.append({ actor: 'a', action: 'x.y' });
    const b = (await log.checkpoint()) as string;
    const proofA = await log.consistencyProof(nextSize, checkpointOfNote(a).size);
    const proofB = await log.consistencyProof(nextSize, checkpointOfNote(b).size);
    await log.close();
    const up = await submit(url2, 0, [], next); // w2 to nextSize first, from wherever it is
    const w2Size = up.status === 409 ? Number(up.text) : nextSize;
    if (w2Size !== nextSize) {
      const caught = await submit(url2, w2Size, await consistency(keys.dir, w2Size, nextSize), next);
      assert.equal(caught.status, 200, caught.text);
    }
    const answers = await Promise.all([submit(url2, nextSize, proofA, a), submit(url2, nextSize, proofB, b)]);
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 409], 'one wins; the other is told the new size');
    const winner = answers[0]?.status === 200 ? a : b;
    assert.equal(answers.find((r) => r.status === 409)?.text, `${checkpointOfNote(winner).size}\n`);
  });

  it('refuses (403) a checkpoint with a bad signature by one trusted key, though another trusted key signed it', async () => {
    // Two keys trusted for one origin, as while a log rotates its key.
    const origin = 'rotating.example/log';
    const a = generateNoteKey(origin);
    const b = generateNoteKey(origin);
    const witness = new Witness({ key: readFileSync(w1.file, 'utf8').trim(), dir: tempDir() });
    const app = buildWitnessServer({ witness, logs: [parseVerifierKey(a.verifier), parseVerifierKey(b.verifier)] });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const text = formatCheckpoint({ origin, size: 0, root: emptyRoot(), extensions: [] });
      const signedByA = signNote(text, [ed25519Signer(parseSignerKey(a.signer))]);
      const keyHash = Buffer.alloc(4);
      keyHash.writeUInt32BE(parseVerifierKey(b.verifier).keyHash);
      const forgedB = `— ${origin} ${Buffer.concat([keyHash, Buffer.alloc(64)]).toString('base64')}\n`;
      const refused = await submit(url, 0, [], `${signedByA}${forgedB}`);
      assert.equal(refused.status, 403, refused.text);
      assert.match(refused.text, /invalid signature/);
      const taken = await submit(url, 0, [], signedByA);
      assert.equal(taken.status, 200, taken.text);
    } finally {
      await app.close();
    }
  });

  it('a witness that holds a larger tree than the checkpoint pushed is not taken to have cosigned it', async () => {
    const ahead = signingLog('rolled.example/log');
    await ahead.init();
    const witness = new Witness({ key: readFileSync(w1.file, 'utf8').trim(), dir: tempDir() });
    const app = buildWitnessServer({ witness, logs: [ahead.key] });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      // The witness cosigns the log at 6 entries; then the log is restored from a backup of 1.
      const backup = join(tempDir(), 'backup');
      cpSync(ahead.dir, backup, { recursive: true });
      const grown = new Log({ store: ahead.dir });
      await grown.appendBatch(Array.from({ length: 5 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })));
      assert.equal((await submit(url, 0, [], (await grown.checkpoint()) as string)).status, 200);
      await grown.close();
      const restored = new Log({ store: backup });
      const pusher = new WitnessPusher(restored, [{ name: 'w1', key: parseVerifierKey(w1.verifier), url }]);
      pusher.push((await restored.checkpoint()) as string);
      await pusher.settled();
      await restored.close();
      const [status] = pusher.status();
      assert.match(status?.error ?? '', /has cosigned size 6 of this log, more than this checkpoint's 1/);
      assert.equal(status?.cosignedAt, null, 'never reported as cosigned');
    } finally {
      await app.close();
    }
  });

  it('a witness that is down does not hold up appends; its state is in the metrics', async () => {
    const other = signingLog('lonely.example/log');
    await other.init();
    const log = new Log({ store: other.dir, checkpointInterval: 10 });
    const pusher = new WitnessPusher(log, [
      { name: 'gone', key: parseVerifierKey(w1.verifier), url: await closedPort() },
    ]);
    log.on('checkpoint', ({ note }) => pusher.push(note));
    const tokens = join(tempDir(), 'tokens.json');
    const secret = addToken(tokens, 'r', ['append', 'read']);
    const app = buildServer({ log, tokens, witnesses: pusher });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      for (let i = 0; i < 20; i++) await log.append({ actor: 'a', action: 'x.y' });
      await until(() => pusher.status()[0]?.error !== null, 'a push tried and failed');
      await pusher.settled();
      const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).text();
      assert.match(metrics, /^evident_witness_up\{witness="gone"\} 0$/m);
      assert.match(metrics, /^evident_witness_cosigned_entries\{witness="gone"\} -1$/m);
      assert.match(pusher.status()[0]?.error ?? '', /fetch failed|ECONNREFUSED/);
    } finally {
      await app.close();
      await log.close();
    }
  });
});

/** A checkpoint of the log's first `size` entries, signed with its key (what a rollback would show). */
async function oldCheckpoint(log: Log, keyFile: string, size: number): Promise<string> {
  const key = parseSignerKey(readFileSync(keyFile, 'utf8'));
  const text = formatCheckpoint({ origin: key.name, size, root: await log.rootAt(size), extensions: [] });
  return signNote(text, [ed25519Signer(key)]);
}

/** The first checkpoint of a new signing log named `origin`, with a key of its own. */
async function firstCheckpoint(origin: string): Promise<string> {
  const keys = signingLog(origin);
  await keys.init();
  const log = new Log({ store: keys.dir });
  try {
    return (await log.checkpoint()) as string;
  } finally {
    await log.close();
  }
}

/** A consistency proof of the log in `dir`. */
async function consistency(dir: string, from: number, to: number): Promise<Buffer[]> {
  const log = new Log({ store: dir, readOnly: true });
  try {
    return await log.consistencyProof(from, to);
  } finally {
    await log.close();
  }
}

/** The URL of a port nothing listens on. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}
