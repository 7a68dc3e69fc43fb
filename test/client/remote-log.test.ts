/**
 * RemoteLog, against `evident serve` on 127.0.0.1 over real HTTP: it appends,
 * reads and fetches receipts as a Log does; retries a lost answer or a 503
 * without appending twice; and verifies the log through the tlog-tiles API
 * trusting only the key — naming a rewritten entry, a split view, a
 * rollback and a bad tile that a server serves.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteLog } from '../../src/client/remote-log.js';
import { canonicalize } from '../../src/encoding/canonical.js';
import { type Entry, hashedText, leafHashOfText } from '../../src/entry.js';
import { EvidentError } from '../../src/errors.js';
import { Log } from '../../src/log.js';
import { type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from '../../src/note/trust.js';
import { parseReceipt, verifyReceipt } from '../../src/receipt.js';
import { buildServer } from '../../src/server/server.js';
import { addToken } from '../../src/server/tokens.js';
import { readLines, readStore, signingLog, tempDir, writeLines } from '../helpers.js';

/** Serves `log` on a free port; returns its base URL and how to stop it. */
async function serve(log: Log, tokens: string | null, publicReads = false) {
  const app = buildServer({ log, tokens, publicReads });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return { base, close: () => app.close() };
}

/**
 * A proxy in front of `upstream` that passes requests on, and lets a test
 * change what comes back: `answer` may end the client's connection instead,
 * answer itself, or alter the body. Returns its base URL.
 */
type Answer = (
  request: IncomingMessage,
  upstream: { status: number; headers: Headers; body: Buffer },
  response: ServerResponse,
) => 'pass' | 'done' | Buffer;
async function proxy(upstream: string | ((path: string) => string), answer: Answer = () => 'pass') {
  const upstreamOf = typeof upstream === 'string' ? () => upstream : upstream;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers.set(name, value);
    }
    const got = await fetch(`${upstreamOf(request.url ?? '/')}${request.url}`, {
      method: request.method ?? 'GET',
      headers,
      ...(chunks.length === 0 ? {} : { body: Buffer.concat(chunks) }),
    });
    const body = Buffer.from(await got.arrayBuffer());
    const decided = answer(request, { status: got.status, headers: got.headers, body }, response);
    if (decided === 'done') return;
    response.writeHead(got.status, { 'content-type': got.headers.get('content-type') ?? 'text/plain' });
    response.end(decided === 'pass' ? body : decided);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const keys = signingLog('remote.example/log');
let log: Log;
let server: Awaited<ReturnType<typeof serve>>;
let tokens = '';
let writer = '';
let ciToken = '';

describe('RemoteLog', () => {
  before(async () => {
    await keys.init();
    tokens = join(tempDir(), 'tokens.json');
    writer = addToken(tokens, 'writer', ['append', 'read']);
    ciToken = addToken(tokens, 'ci', ['append', 'read'], ['ci-*']);
    log = new Log({ store: keys.dir, checkpointInterval: 20 });
    server = await serve(log, tokens);
  });
  after(async () => {
    await server.close();
    await log.close();
  });

  it('appends, reads and gives receipts as the log itself does', async () => {
    const remote = new RemoteLog({ url: server.base, token: writer });
    const one = await remote.append({ actor: 'alice', action: 'deploy.start', targets: ['api'], data: { n: 1 } });
    const batch = await remote.appendBatch([
      { actor: 'bob', action: 'deploy.finish', outcome: 'success' },
      { actor: 'carol', action: 'review.approve', data: { pr: 7 } },
    ]);
    assert.deepEqual(
      batch.map((e) => e.seq),
      [one.seq + 1, one.seq + 2],
    );
    const local = await readStore(keys.dir);
    assert.deepEqual(local.slice(one.seq), [one, ...batch], 'returned exactly as stored');
    assert.equal(one.via?.token, 'writer', 'the service records the token');
    assert.match(one.via?.key ?? '', /^[0-9a-f-]{36}$/, 'and the idempotency key the client chose');
    assert.deepEqual(await remote.head(), await log.head());

    const read: Entry[] = [];
    for await (const e of remote.read({ actor: 'carol' })) read.push(e);
    assert.deepEqual(read, [batch[1]]);

    const bulk = await remote.appendBulk([1, 2, 3].map((i) => ({ actor: 'dave', action: 'load.row', data: { i } })));
    const last = (batch[1] as Entry).seq;
    assert.deepEqual(bulk, { appended: 3, first: last + 1, last: last + 3 });
    assert.deepEqual(
      (await readStore(keys.dir)).slice(last + 1).map((e) => [e.actor, e.data, e.via?.token]),
      [1, 2, 3].map((i) => ['dave', { i }, 'writer']),
    );
    assert.deepEqual(await remote.appendBulk([]), { appended: 0, first: null, last: null });

    const receipt = await remote.receipt(one.seq, { waitMs: 5000 });
    const checkpoint = verifyReceipt(parseReceipt(receipt), one, { log: keys.key });
    assert.ok(checkpoint.size > one.seq);
    const note = await remote.checkpoint();
    assert.equal(trustCheckpoint(note as string, { log: keys.key }).origin, 'remote.example/log');
  });

  it('reads across pages, from and to a seq, up to a limit', async () => {
    const remote = new RemoteLog({ url: server.base, token: writer });
    const start = (await remote.head()).size;
    const inputs = Array.from({ length: 2300 }, (_, i) => ({ actor: 'pager', action: 'page.test', data: { i } }));
    await remote.appendBatch(inputs);
    const seqs = async (query: Parameters<RemoteLog['read']>[0]) => {
      const out: number[] = [];
      for await (const e of remote.read(query)) out.push(e.seq);
      return out;
    };
    const all = await seqs({ fromSeq: start });
    assert.equal(all.length, 2300);
    assert.deepEqual(
      all,
      Array.from({ length: 2300 }, (_, i) => start + i),
    );
    assert.deepEqual(await seqs({ fromSeq: start + 10, toSeq: start + 2100 }), all.slice(10, 2101));
    assert.deepEqual(await seqs({ fromSeq: start + 5, limit: 1500 }), all.slice(5, 1505));
    assert.deepEqual(await seqs({ actor: 'pager', fromSeq: start + 2299 }), [start + 2299]);
  });

  it('refuses a bad entry before sending it, with the error a Log gives, and writes nothing', async () => {
    const remote = new RemoteLog({ url: server.base, token: writer });
    const size = (await log.head()).size;
    for (const bad of [
      { actor: 'a', action: 'x.y', data: { n: Number.NaN } },
      { actor: 'a', action: 'x.y', data: { s: '\ud800' } },
      { actor: 'a\u0007', action: 'x.y' },
    ]) {
      const local = await log.append(bad).catch((e: EvidentError) => e);
      const sent = await remote.append(bad).catch((e: EvidentError) => e);
      assert.ok(sent instanceof EvidentError);
      assert.equal(sent.code, 'EVIDENT_INVALID_ENTRY');
      assert.equal(sent.message, (local as Error).message);
    }
    const batch = await remote
      .appendBatch([
        { actor: 'a', action: 'x.y' },
        { actor: 'a', action: 'bad action' },
      ])
      .catch((e: EvidentError) => e);
    assert.match((batch as Error).message, /^entry 1: \$\.action/);
    assert.equal((await log.head()).size, size);
  });

  it("passes on the service's refusals with their codes", async () => {
    const ci = new RemoteLog({ url: server.base, token: ciToken });
    await ci.append({ actor: 'ci-build', action: 'build.start' });
    await assert.rejects(ci.append({ actor: 'alice', action: 'build.start' }), { code: 'EVIDENT_FORBIDDEN' });
    const stranger = new RemoteLog({ url: server.base, token: 'evt_not-a-token' });
    await assert.rejects(stranger.append({ actor: 'x', action: 'y.z' }), { code: 'EVIDENT_UNAUTHORIZED' });
    const anonymous = new RemoteLog({ url: server.base });
    await assert.rejects(
      anonymous.head().then(() => anonymous.read().next()),
      {
        code: 'EVIDENT_UNAUTHORIZED',
        message: /no token was given: the token option, or with the CLI --token or \$EVIDENT_TOKEN/,
      },
    );
    await assert.rejects(new RemoteLog({ url: server.base, token: writer }).receipt(10 ** 9), {
      code: 'EVIDENT_OUT_OF_RANGE',
    });
  });

  it('retries an append whose answer was lost, and the entry is there once', async () => {
    let dropped = 0;
    const lossy = await proxy(server.base, (request, upstream, response) => {
      if (request.method === 'POST' && upstream.status === 201 && dropped < 2) {
        dropped++;
        response.socket?.destroy(); // the entry is appended; its answer never arrives
        return 'done';
      }
      return 'pass';
    });
    try {
      const remote = new RemoteLog({ url: lossy.base, token: writer });
      const entry = await remote.append({ actor: 'retrier', action: 'retry.once', data: { nonce: 41 } });
      const batch = await remote.appendBatch([
        { actor: 'retrier', action: 'retry.batch' },
        { actor: 'retrier', action: 'retry.batch' },
      ]);
      assert.equal(dropped, 2);
      const stored = (await readStore(keys.dir)).filter((e) => e.actor === 'retrier');
      assert.deepEqual(stored, [entry, ...batch], 'each appended once, and the retry got the entries as stored');
    } finally {
      await lossy.close();
    }
  });

  it('waits and retries on 503 with Retry-After; gives up on a server that is not there', async () => {
    let refused = 0;
    const busy = await proxy(server.base, (request, _upstream, response) => {
      if (request.method === 'GET' && refused < 2) {
        refused++;
        response.writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' });
        response.end('{"error":{"code":"EVIDENT_QUEUE_FULL","message":"busy"}}');
        return 'done';
      }
      return 'pass';
    });
    try {
      const remote = new RemoteLog({ url: busy.base, token: writer });
      assert.deepEqual(await remote.head(), await log.head());
      assert.equal(refused, 2);
      const impatient = new RemoteLog({ url: busy.base, token: writer, retries: 0 });
      refused = 0;
      await assert.rejects(impatient.head(), { code: 'EVIDENT_QUEUE_FULL' });
    } finally {
      await busy.close();
    }
    const gone = new RemoteLog({ url: busy.base, token: writer, retries: 1 });
    await assert.rejects(gone.append({ actor: 'a', action: 'b.c' }), (error: EvidentError) => {
      assert.equal(error.code, 'EVIDENT_UNAVAILABLE');
      assert.match(error.message, /did not answer: ECONNREFUSED/);
      return true;
    });
  });

  it('calls a server that is not an evident service unavailable, and wants a key to verify', async () => {
    const plain = await proxy(server.base, (_request, _upstream, response) => {
      response.writeHead(404, { 'content-type': 'text/html' });
      response.end('<h1>Not Found</h1>');
      return 'done';
    });
    try {
      const remote = new RemoteLog({ url: plain.base });
      await assert.rejects(remote.checkpoint(), { code: 'EVIDENT_UNAVAILABLE', message: /not as an evident service/ });
      await assert.rejects(remote.verify({ policy: { log: keys.key } }), { code: 'EVIDENT_UNAVAILABLE' });
      await assert.rejects((remote.verify as (o?: unknown) => Promise<unknown>)(), { code: 'EVIDENT_INVALID_OPTION' });
    } finally {
      await plain.close();
    }
    // A server that names a code every object inherits, or answers 200 with what is not JSON, is not believed.
    const hostile = await proxy(server.base, (request, _upstream, response) => {
      if (request.url?.startsWith('/v1/health')) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('ok');
      } else if (request.url?.startsWith('/v1/entries')) {
        response.writeHead(200, { 'content-type': 'application/x-ndjson' });
        response.end('{"seq":0}\nnot json\n');
      } else {
        response.writeHead(400, { 'content-type': 'application/json' });
        response.end('{"error":{"code":"constructor","message":"all good"}}');
      }
      return 'done';
    });
    try {
      const remote = new RemoteLog({ url: hostile.base, retries: 0 });
      await assert.rejects(remote.checkpoint(), { code: 'EVIDENT_UNAVAILABLE', message: /not as an evident service/ });
      await assert.rejects(remote.verify({ policy: { log: keys.key } }), { code: 'EVIDENT_UNAVAILABLE' });
      await assert.rejects(remote.head(), { code: 'EVIDENT_UNAVAILABLE', message: /with a body that is not JSON/ });
      await assert.rejects(remote.read().next(), { code: 'EVIDENT_UNAVAILABLE', message: /v1\/entries with a body/ });
    } finally {
      await hostile.close();
    }
  });

  it('gives a checkpoint that covers what it appended, as a Log does', async () => {
    // A log that signs only once a minute: the checkpoint served lags what was just appended.
    const slow = signingLog('slow.example/log');
    await slow.init();
    const source = new Log({ store: slow.dir, key: slow.keyFile, checkpointInterval: 60_000 });
    await source.append({ actor: 'a', action: 'x.y' });
    await source.checkpoint(); // size 2: the signing declaration and that entry
    const tokens = join(tempDir(), 'tokens.json');
    const token = addToken(tokens, 'app', ['append', 'read']);
    const served = await serve(source, tokens);
    try {
      const remote = new RemoteLog({ url: served.base, token });
      const sizeOf = (note: string) => trustCheckpoint(note, { log: slow.key }).size;
      assert.equal(sizeOf((await remote.checkpoint()) as string), 2, 'before it appends: the latest served');
      const { last } = await remote.appendBulk([
        { actor: 'a', action: 'x.y' },
        { actor: 'a', action: 'x.z' },
      ]);
      assert.ok(sizeOf((await remote.checkpoint()) as string) > (last as number), 'after: one covering its entries');
    } finally {
      await served.close();
      await source.close();
    }
  });

  it('refuses a URL that is not a service base URL', () => {
    for (const url of ['not a url', 'ftp://x.example/', 'http://x.example/?a=1', 'http://u:p@x.example/']) {
      assert.throws(() => new RemoteLog({ url }), { code: 'EVIDENT_INVALID_OPTION' });
    }
  });
});

describe('RemoteLog.verify, trusting only the key', () => {
  const signed = signingLog('verify.example/log');
  let source: Log;
  let service: Awaited<ReturnType<typeof serve>>;
  let remote: RemoteLog;
  let first: TrustedCheckpoint;

  before(async () => {
    await signed.init();
    source = new Log({ store: signed.dir, checkpointInterval: 10 });
    for (let i = 0; i < 3; i++) {
      await source.appendBatch(Array.from({ length: 250 }, (_, j) => ({ actor: 'v', action: 'a.b', data: { i, j } })));
    }
    service = await serve(source, null, true);
    remote = new RemoteLog({ url: service.base });
  });
  after(async () => {
    await service.close();
    await source.close();
  });

  /** The served checkpoint once it covers the whole log. */
  async function settled(): Promise<TrustedCheckpoint> {
    const size = (await source.head()).size;
    for (;;) {
      const note = await remote.checkpoint();
      const checkpoint = trustCheckpoint(note as string, { log: signed.key });
      if (checkpoint.size === size) return checkpoint;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('checks every entry, the root and the tiles, and extends a checkpoint verified before', async () => {
    first = await settled();
    const result = await remote.verify({ policy: { log: signed.key } });
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.equal(result.size, first.size);
    assert.equal(result.root, first.root.toString('base64'));
    assert.equal(result.head, (await source.head()).hash);

    await source.appendBatch(Array.from({ length: 300 }, (_, j) => ({ actor: 'v', action: 'a.c', data: { j } })));
    const later = await settled();
    const again = await remote.verify({ policy: { log: signed.key }, checkpoint: first });
    assert.equal(again.ok, true, JSON.stringify(again.failure));
    assert.equal(again.checkpoint.size, later.size);
  });

  it('reads only what was added since a checkpoint verified before, when asked', async () => {
    const whole = await remote.verify({ policy: { log: signed.key } });
    const asked: string[] = [];
    const recorder = await proxy(service.base, (request) => {
      asked.push(request.url ?? '');
      return 'pass';
    });
    try {
      const since = await new RemoteLog({ url: recorder.base }).verify({
        policy: { log: signed.key },
        checkpoint: first,
        sinceCheckpoint: true,
      });
      assert.equal(since.ok, true, JSON.stringify(since.failure));
      // The previous checkpoint's last entry is seq first.size - 1: reading starts at its tile.
      assert.equal(since.from, Math.floor((first.size - 1) / 256) * 256);
      assert.ok(since.from > 0);
      assert.deepEqual(
        { size: since.size, root: since.root, head: since.head },
        { size: whole.size, root: whole.root, head: whole.head },
      );
      const bundles = asked.filter((path) => path.startsWith('/tile/entries/'));
      assert.deepEqual(
        bundles.map((path) => Number(path.slice('/tile/entries/'.length, '/tile/entries/'.length + 3))),
        Array.from({ length: Math.ceil(whole.size / 256) - since.from / 256 }, (_, i) => since.from / 256 + i),
      );
    } finally {
      await recorder.close();
    }
  });

  it('refuses a checkpoint the key did not sign, and one that is not UTF-8', async () => {
    const other = signingLog('verify.example/log');
    await assert.rejects(remote.verify({ policy: { log: other.key } }), { code: 'EVIDENT_NOTE_UNVERIFIED' });
    // A byte that is not UTF-8 in a signature line: refused, not read as U+FFFD and passed on to --remember.
    const latin1 = await proxy(service.base, (request, upstream) =>
      request.url === '/checkpoint' ? Buffer.concat([upstream.body, Buffer.from([0xe9, 0x0a])]) : 'pass',
    );
    try {
      await assert.rejects(new RemoteLog({ url: latin1.base }).verify({ policy: { log: signed.key } }), {
        code: 'EVIDENT_NOTE_MALFORMED',
        message: /not UTF-8/,
      });
    } finally {
      await latin1.close();
    }
  });

  it('calls a history rewritten with recomputed hashes rewritten; where, when the tiles still hold the old tree', async () => {
    await settled();
    const copy = join(tempDir(), 'rewritten');
    cpSync(signed.dir, copy, { recursive: true });
    const lines = readLines(join(copy, 'log.jsonl'));
    writeLines(
      join(copy, 'log.jsonl'),
      rechain(lines, 300, (e) => ({ ...e, data: { forged: true } })),
    );
    const served = new Log({ store: copy, readOnly: true });
    const rewritten = await serve(served, null, true);
    try {
      // The server rebuilds its tiles from the entries it holds: nothing but the signed root tells the old tree.
      const result = await new RemoteLog({ url: rewritten.base }).verify({ policy: { log: signed.key } });
      assert.equal(result.failure?.reason, 'rewritten', JSON.stringify(result.failure));
      assert.equal(result.failure?.seq, 0);
      assert.match(result.failure?.message ?? '', /where they differ is not known/);
      // A mirror whose entries were swapped but whose tiles are the log's: the first rewritten entry is named.
      const mirror = await proxy((path) => (path.startsWith('/tile/entries/') ? rewritten.base : service.base));
      try {
        const located = await new RemoteLog({ url: mirror.base }).verify({ policy: { log: signed.key } });
        assert.equal(located.failure?.reason, 'rewritten', JSON.stringify(located.failure));
        assert.equal(located.failure?.seq, 300);
        assert.equal(located.size, 300);
        assert.equal(located.head, (JSON.parse(lines[299] as string) as Entry).hash);
      } finally {
        await mirror.close();
      }
    } finally {
      await rewritten.close();
      await served.close();
    }
  });

  it('calls a second history under the same key a split view, and a smaller one truncated', async () => {
    // Another log signed with the same key: the same origin, another history.
    const fork = join(tempDir(), 'fork');
    await Log.init({ store: fork, signingKey: signed.keyFile });
    const forked = new Log({ store: fork });
    const big = Array.from({ length: 900 }, (_, j) => ({ actor: 'm', action: 'a.b', data: { j } }));
    await forked.appendBatch(big);
    await forked.close();
    const split = await verifyServed(fork, { log: signed.key }, first);
    assert.equal(split.failure?.reason, 'split-view');
    // Reading only what was added: the fork's tree does not hash to the checkpoint verified before either.
    const splitSince = await verifyServed(fork, { log: signed.key }, first, true);
    assert.deepEqual(splitSince.failure, split.failure);

    const small = join(tempDir(), 'small');
    await Log.init({ store: small, signingKey: signed.keyFile });
    const smaller = new Log({ store: small });
    await smaller.append({ actor: 'm', action: 'a.b' });
    await smaller.close();
    const rolledBack = await verifyServed(small, { log: signed.key }, first);
    assert.equal(rolledBack.failure?.reason, 'truncated');
    assert.match(rolledBack.failure?.message ?? '', /fewer than the \d+ of the checkpoint verified before/);
    assert.equal(rolledBack.size, 0, 'a smaller tree cannot show its entries are the ones verified before');
  });

  it('names a tile served that is not the tree over the entries', async () => {
    const checkpoint = await settled();
    const liar = await proxy(service.base, (request, upstream) => {
      if (request.url?.startsWith('/tile/1/') !== true) return 'pass';
      const body = Buffer.from(upstream.body);
      body[40] = (body[40] as number) ^ 1; // the second hash of the level-1 tile
      return body;
    });
    try {
      const result = await new RemoteLog({ url: liar.base }).verify({ policy: { log: signed.key } });
      assert.equal(result.failure?.reason, 'tile-mismatch');
      assert.equal(result.failure?.seq, 256, 'the first leaf under the bad hash');
      assert.ok(checkpoint.size > 512);
      // The bad hash is in the edge an incremental check starts from: it cannot hash to the roots, and the whole
      // check names it.
      const since = await new RemoteLog({ url: liar.base }).verify({
        policy: { log: signed.key },
        checkpoint: first,
        sinceCheckpoint: true,
      });
      assert.deepEqual(since.failure, result.failure);
      assert.equal(since.from, 0);
    } finally {
      await liar.close();
    }
  });

  it('names an entry added since the checkpoint verified before and edited in a bundle', async () => {
    // Seqs 768…1023 are the fourth batch's j = 17…272 (it began at seq 751).
    const liar = await proxy(service.base, (request, upstream) => {
      if (request.url !== '/tile/entries/003') return 'pass';
      return Buffer.from(upstream.body.toString('latin1').replace('"j":100}', '"j":101}'), 'latin1');
    });
    try {
      const result = await new RemoteLog({ url: liar.base }).verify({
        policy: { log: signed.key },
        checkpoint: first,
        sinceCheckpoint: true,
      });
      assert.equal(result.failure?.reason, 'hash-mismatch', JSON.stringify(result.failure));
      assert.equal(result.failure?.seq, 851);
      assert.equal(result.size, 851);
    } finally {
      await liar.close();
    }
  });

  it('names an entry edited in a bundle: neither the tree nor the next entry holds it', async () => {
    const liar = await proxy(service.base, (request, upstream) => {
      if (request.url !== '/tile/entries/001') return 'pass';
      return Buffer.from(upstream.body.toString('latin1').replace('"j":7}', '"j":8}'), 'latin1');
    });
    try {
      const result = await new RemoteLog({ url: liar.base }).verify({ policy: { log: signed.key } });
      // Entry 258 is the second batch's j = 7 (seq 0 declares the key; batches of 250 follow).
      assert.equal(result.failure?.reason, 'hash-mismatch');
      assert.equal(result.failure?.seq, 258);
      assert.equal(result.size, 258);
    } finally {
      await liar.close();
    }
  });
});

/** Serves the log in `dir` (read-only) for one verify. */
async function verifyServed(dir: string, policy: TrustPolicy, previous?: TrustedCheckpoint, sinceCheckpoint = false) {
  const served = new Log({ store: dir, readOnly: true });
  const service = await serve(served, null, true);
  try {
    return await new RemoteLog({ url: service.base }).verify({ policy, checkpoint: previous, sinceCheckpoint });
  } finally {
    await service.close();
    await served.close();
  }
}

/** Changes entry `from` with `change` and reseals it and every entry after it: a forger's best effort. */
function rechain(lines: string[], from: number, change: (entry: Entry) => Entry): string[] {
  const out = lines.slice(0, from);
  let prev = (JSON.parse(out.at(-1) as string) as Entry).hash;
  for (const [i, line] of lines.slice(from).entries()) {
    const entry = JSON.parse(line) as Entry;
    const changed = { ...(i === 0 ? change(entry) : entry), prev };
    const hash = leafHashOfText(hashedText(changed));
    out.push(canonicalize({ ...changed, hash }));
    prev = hash;
  }
  return out;
}
