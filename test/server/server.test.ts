/**
 * The HTTP service, against a real server on 127.0.0.1 and real requests:
 * tokens, scopes and actor patterns; appends recorded exactly or refused
 * with the documented status and code, nothing written; reads, paging and
 * receipts; and the C2SP tlog-tiles read API, checked as a generic client
 * that knows only the log's origin and verifier key would check it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { splitBundle } from '../../src/api/layout.js';
import type { Entry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { leafHash } from '../../src/merkle/hash.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { trustCheckpoint } from '../../src/note/trust.js';
import { parseReceipt, verifyReceipt } from '../../src/receipt.js';
import { buildServer } from '../../src/server/server.js';
import { addToken, revokeToken } from '../../src/server/tokens.js';
import {
  buildGo,
  daemon,
  evident,
  flockers,
  readLines,
  readStore,
  run,
  signingLog,
  tempDir,
  until,
} from '../helpers.js';

let base = '';
let close: () => Promise<void>;
let keys: ReturnType<typeof signingLog>;
let tokensFile = '';
const secret: Record<string, string> = {};

async function call(
  method: string,
  path: string,
  options: {
    token?: string | undefined;
    body?: string;
    type?: string;
    accept?: string;
    headers?: Record<string, string>;
  } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.type !== undefined) headers['content-type'] = options.type;
  if (options.accept !== undefined) headers.accept = options.accept;
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes, text: bytes.toString('utf8') };
}
const json = (r: { text: string }) => JSON.parse(r.text);

/** A GET of `path` exactly as written: fetch() would resolve its dot segments before sending it. */
function rawGet(path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      { host: url.hostname, port: url.port, path, headers: { authorization: `Bearer ${token}` } },
      (response) => {
        response.resume();
        resolve(response.statusCode as number);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
const post = (token: string, body: string, type = 'application/json') =>
  call('POST', '/v1/entries', { token, body, type });

describe('evident serve', () => {
  before(async () => {
    keys = signingLog('http.example/log');
    await keys.init();
    tokensFile = join(tempDir(), 'tokens.json');
    secret.writer = addToken(tokensFile, 'writer', ['append', 'read']);
    secret.ci = addToken(tokensFile, 'ci', ['append'], ['ci-*']);
    secret.reader = addToken(tokensFile, 'reader', ['read']);
    const log = new Log({ store: keys.dir, checkpointInterval: 50 });
    const app = buildServer({ log, tokens: tokensFile, bodyLimit: 64 * 1024 });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    close = async () => {
      await app.close();
      await log.close();
    };
  });
  after(() => close());

  it('keeps only hashes of the secrets, in a file only its owner reads', () => {
    assert.equal(statSync(tokensFile).mode & 0o777, 0o600);
    const stored = statSync(tokensFile).size;
    assert.ok(stored > 0);
    for (const s of Object.values(secret)) assert.match(s, /^evt_[A-Za-z0-9_-]{43}$/);
  });

  it('appends one entry and answers 201 with it as stored, byte for byte', async () => {
    const r = await post(secret.writer as string, '{"actor":"alice","action":"deploy.start","targets":["api"]}');
    assert.equal(r.status, 201, r.text);
    const entry = json(r) as Entry;
    assert.equal(entry.actor, 'alice');
    const got = await call('GET', `/v1/entries/${entry.seq}`, { token: secret.reader });
    assert.deepEqual(json(got), entry);
    assert.equal(r.text, readLines(join(keys.dir, 'log.jsonl'))[entry.seq], 'the stored line, members in its order');
  });

  it('appends an NDJSON batch atomically, or nothing, naming the bad line', async () => {
    const before = json(await call('GET', '/v1/health')).size;
    const lines = ['{"actor":"ci-bot","action":"build.start"}', '{"actor":"ci-bot","action":"build.finish"}'];
    const r = await post(secret.writer as string, `${lines.join('\n')}\n`, 'application/x-ndjson');
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(json(r), { appended: 2, first: before, last: before + 1 });
    const bad = await post(
      secret.writer as string,
      `${lines[0]}\n{"actor":"x","action":"y.z","data":{"k":1,"k":2}}\n`,
      'application/x-ndjson',
    );
    assert.equal(bad.status, 400);
    assert.equal(json(bad).error.code, 'EVIDENT_INVALID_ENTRY');
    assert.match(json(bad).error.message, /line 2/);
    assert.equal(json(bad).error.line, 2, 'and says which line, for clients');
    // A line that parses but is not an entry is named the same way, counting from 1.
    const invalid = await post(
      secret.writer as string,
      `${lines[0]}
{"actor":"x"}
`,
      'application/x-ndjson',
    );
    assert.equal(invalid.status, 400);
    assert.match(json(invalid).error.message, /^line 2: \$\.action: must be a non-empty string$/);
    assert.equal(json(invalid).error.line, 2);
    assert.equal(json(await call('GET', '/v1/health')).size, before + 2, 'nothing of the bad batches written');
  });

  it('refuses with the documented status and code, writing nothing', async () => {
    const before = json(await call('GET', '/v1/health')).size;
    const cases: [Awaited<ReturnType<typeof call>>, number, string][] = [
      [await call('POST', '/v1/entries', { body: '{}', type: 'application/json' }), 401, 'EVIDENT_UNAUTHORIZED'],
      [await post('evt_not-a-token', '{"actor":"a","action":"b.c"}'), 401, 'EVIDENT_UNAUTHORIZED'],
      [await post(secret.reader as string, '{"actor":"a","action":"b.c"}'), 403, 'EVIDENT_FORBIDDEN'],
      [await post(secret.ci as string, '{"actor":"alice","action":"b.c"}'), 403, 'EVIDENT_FORBIDDEN'],
      [await post(secret.writer as string, '{"actor":"a","action":'), 400, 'EVIDENT_INVALID_ENTRY'],
      [
        await post(secret.writer as string, '{"actor":"a","action":"b.c","data":{"n":9007199254740993}}'),
        400,
        'EVIDENT_INVALID_ENTRY',
      ],
      [await post(secret.writer as string, '[1,2]'), 400, 'EVIDENT_INVALID_ENTRY'],
      [await post(secret.writer as string, '{"actor":"","action":"b.c"}'), 400, 'EVIDENT_INVALID_ENTRY'],
      [
        await post(
          secret.writer as string,
          JSON.stringify({ actor: 'a', action: 'b.c', data: { s: 'x'.repeat(70_000) } }),
        ),
        413,
        'EVIDENT_TOO_LARGE',
      ],
      [await post(secret.writer as string, 'actor=a', 'application/x-www-form-urlencoded'), 415, 'EVIDENT_BAD_REQUEST'],
    ];
    for (const [r, status, code] of cases) {
      assert.equal(r.status, status, r.text);
      assert.equal(json(r).error.code, code, r.text);
    }
    assert.equal(cases[0]?.[0].headers.get('www-authenticate'), 'Bearer');
    assert.match(
      json(cases.at(-1)?.[0] as (typeof cases)[0][0]).error.message,
      /send application\/json .* or application\/x-ndjson/,
    );
    // Bytes that are not UTF-8 JSON as sent: refused whole, not read as if they were.
    const entry = '{"actor":"a","action":"b.c"}';
    const compressed = await call('POST', '/v1/entries', {
      token: secret.writer as string,
      body: entry,
      type: 'application/json',
      headers: { 'content-encoding': 'br' },
    });
    assert.equal(compressed.status, 415, compressed.text);
    assert.match(json(compressed).error.message, /Content-Encoding br: send the body uncompressed/);
    const latin1 = await post(secret.writer as string, entry, 'application/json; charset=iso-8859-1');
    assert.equal(latin1.status, 415, latin1.text);
    assert.match(json(latin1).error.message, /charset iso-8859-1: the body must be UTF-8/);
    const utf8 = await post(secret.writer as string, entry, 'application/json; charset="UTF-8"');
    assert.equal(utf8.status, 201, 'UTF-8 named is taken');
    const lowercase = await call('POST', '/v1/entries', {
      body: entry,
      type: 'application/json',
      headers: { authorization: `bearer ${secret.writer}` },
    });
    assert.equal(lowercase.status, 201, 'the scheme is case-insensitive');
    const blank = await post(secret.writer as string, '{"actor":"a","action":"b.c"}\n\n', 'application/x-ndjson');
    assert.equal(blank.status, 400);
    assert.deepEqual(json(blank).error, {
      code: 'EVIDENT_INVALID_ENTRY',
      message: 'line 2: empty line (expected a JSON object)',
      line: 2,
    });
    assert.equal(json(await call('GET', '/v1/health')).size, before + 2, 'nothing written but the two taken');
    // The ci token may append as any ci-* actor.
    assert.equal((await post(secret.ci as string, '{"actor":"ci-nightly","action":"b.c"}')).status, 201);
  });

  it('records the token each entry came with; a body cannot claim one', async () => {
    const entry = json(await post(secret.ci as string, '{"actor":"ci-deploy","action":"x.y"}')) as Entry;
    assert.deepEqual(entry.via, { token: 'ci' });
    const claimed = await post(secret.ci as string, '{"actor":"ci-deploy","action":"x.y","via":{"token":"writer"}}');
    assert.equal(claimed.status, 400);
    assert.match(json(claimed).error.message, /\$\.via: is assigned by the log/);
  });

  it('pushes back with 503 and Retry-After when more entries wait than it takes, and writes none of them', async () => {
    const small = signingLog('busy.example/log');
    await small.init();
    const busyLog = await Log.open({ store: small.dir });
    const busy = buildServer({ log: busyLog, tokens: tokensFile, maxPending: 5 });
    const url = await busy.listen({ host: '127.0.0.1', port: 0 });
    // Another process holds the append lock, so that the first batch stays queued.
    const holder = spawn('flock', ['--exclusive', join(small.dir, 'lock'), 'cat'], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    try {
      await until(() => flockers(join(small.dir, 'lock')).length > 0, 'the lock held');
      const post = (lines: string[]) =>
        fetch(`${url}/v1/entries`, {
          method: 'POST',
          headers: { authorization: `Bearer ${secret.writer}`, 'content-type': 'application/x-ndjson' },
          body: `${lines.join('\n')}\n`,
        });
      const batch = Array.from({ length: 6 }, (_, i) => JSON.stringify({ actor: 'a', action: 'x.y', data: { i } }));
      const queued = post(batch.slice(0, 4));
      // Queued once this process waits for the lock (the server runs here).
      await until(() => flockers(join(small.dir, 'lock'), true).includes(process.pid), 'the batch waiting to commit');
      const response = await post(batch.slice(4));
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'EVIDENT_QUEUE_FULL');
      holder.stdin.end();
      assert.equal((await queued).status, 201);
      assert.equal((await busyLog.head()).size, 5, 'the entry that declares the key, and the first batch');
      // A batch larger than the server ever queues is not told to retry: it can never be taken whole.
      const tooMany = await post(batch);
      assert.equal(tooMany.status, 413);
      assert.equal(((await tooMany.json()) as { error: { code: string } }).error.code, 'EVIDENT_TOO_LARGE');
      assert.equal((await busyLog.head()).size, 5);
    } finally {
      holder.kill();
      await busy.close();
      await busyLog.close();
    }
  });

  it('appends once per Idempotency-Key: a retry, or a concurrent twin, gets the same entries with 200', async () => {
    const token = secret.writer as string;
    const send = (key: string, body: string, type = 'application/json') =>
      call('POST', '/v1/entries', { token, body, type, headers: { 'idempotency-key': key } });
    const before = json(await call('GET', '/v1/health')).size;
    const first = await send('deploy-42', '{"actor":"alice","action":"deploy.start"}');
    assert.equal(first.status, 201);
    const again = await send('deploy-42', '{"actor":"alice","action":"deploy.start"}');
    assert.equal(again.status, 200);
    assert.deepEqual(json(again), json(first));
    assert.deepEqual((json(first) as Entry).via, { key: 'deploy-42', token: 'writer' });
    const twins = await Promise.all([1, 2].map(() => send('deploy-43', '{"actor":"alice","action":"deploy.finish"}')));
    assert.deepEqual(twins.map((r) => r.status).sort(), [200, 201]);
    assert.equal((json(twins[0] as { text: string }) as Entry).seq, (json(twins[1] as { text: string }) as Entry).seq);
    const batch = '{"actor":"alice","action":"a.b"}\n{"actor":"alice","action":"a.c"}\n';
    const b1 = await send('batch-7', batch, 'application/x-ndjson');
    const b2 = await send('batch-7', batch, 'application/x-ndjson');
    assert.deepEqual([b1.status, b2.status], [201, 200]);
    assert.deepEqual(json(b2), json(b1));
    assert.equal(json(await call('GET', '/v1/health')).size, before + 4, 'one entry, one entry, a batch of two');
    const bad = await send('has"quote', '{"actor":"alice","action":"a.b"}');
    assert.equal(bad.status, 400);
    assert.equal(json(bad).error.code, 'EVIDENT_BAD_REQUEST');
  });

  it('a revoked token stops working, in the streams it opened too', async () => {
    const temporary = addToken(tokensFile, 'temporary', ['read']);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await call('GET', '/v1/entries', { token: temporary })).status, 200);
    const tail = await fetch(`${base}/v1/tail`, {
      headers: { authorization: `Bearer ${temporary}` },
      signal: AbortSignal.timeout(10_000), // a stream that goes on is the failure
    });
    assert.equal(tail.status, 200);
    revokeToken(tokensFile, 'temporary');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await call('GET', '/v1/entries', { token: temporary })).status, 401);
    await post(secret.writer as string, '{"actor":"after-revoke","action":"a.b"}');
    // The stream ends with an error event, and carries nothing appended after the revoke.
    const text = await tail.text();
    assert.match(text, /event: error\ndata: \{"error":\{"code":"EVIDENT_UNAUTHORIZED"/);
    assert.doesNotMatch(text, /after-revoke/);
  });

  it('refuses every token while the token file is broken, until it is mended', async () => {
    const kept = readFileSync(tokensFile);
    writeFileSync(tokensFile, '{"tokens": [');
    try {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      for (let i = 0; i < 3; i++) {
        // An edit that broke the file must not leave the list it replaced in force.
        const refused = await call('GET', '/v1/entries', { token: secret.reader as string });
        assert.equal(refused.status, 500, `request ${i}`);
      }
    } finally {
      writeFileSync(tokensFile, kept);
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await call('GET', '/v1/entries', { token: secret.reader as string })).status, 200);
  });

  it('refuses a request without the right token, or to no route, before reading its body', async () => {
    // A body of the largest size announced, and never sent: the answer must come without it.
    const answer = (path: string, method: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(new URL(path, base), {
          method,
          headers: { 'content-type': 'application/json', 'content-length': String(8 << 20) },
        });
        const timer = setTimeout(() => reject(new Error('no answer in 10 s: the server waits for the body')), 10_000);
        req.on('response', (response) => {
          clearTimeout(timer);
          response.resume();
          req.destroy();
          resolve(response.statusCode ?? 0);
        });
        req.on('error', () => {});
        req.flushHeaders();
      });
    assert.equal(await answer('/v1/entries', 'POST'), 401);
    assert.equal(await answer('/v1/nothere', 'POST'), 404);
    assert.equal(await answer('/v1/entries', 'PUT'), 404);
  });

  it('reads by filter, pages with after/next, in JSON or NDJSON', async () => {
    const token = secret.reader as string;
    const all = json(await call('GET', '/v1/entries?limit=1000', { token })).entries as Entry[];
    const page = json(await call('GET', '/v1/entries?limit=2', { token }));
    assert.deepEqual(page.entries, all.slice(0, 2));
    assert.equal(page.next, all[1]?.seq);
    const second = json(await call('GET', `/v1/entries?limit=2&after=${page.next}`, { token }));
    assert.deepEqual(second.entries, all.slice(2, 4));
    const ci = json(await call('GET', '/v1/entries?action=build.*', { token })).entries as Entry[];
    assert.deepEqual(
      ci.map((e) => e.action),
      ['build.start', 'build.finish'],
    );
    const ndjson = await call('GET', '/v1/entries?actor=alice', { token, accept: 'application/x-ndjson' });
    assert.match(ndjson.headers.get('content-type') ?? '', /^application\/x-ndjson/);
    for (const line of ndjson.text.trim().split('\n')) assert.equal(JSON.parse(line).actor, 'alice');
    // In NDJSON the next page is in a Link header; following it gives the page JSON's `next` gives.
    const paged = await call('GET', '/v1/entries?limit=2', { token, accept: 'application/x-ndjson' });
    const link = /^<(\/v1\/entries\?[^>]+)>; rel="next"$/.exec(paged.headers.get('link') ?? '');
    assert.ok(link, `a Link header: ${paged.headers.get('link')}`);
    const followed = await call('GET', link[1] as string, { token, accept: 'application/x-ndjson' });
    assert.deepEqual(
      followed.text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
      all.slice(2, 4),
    );
    for (const bad of ['limit=0', 'limit=5000', 'after=-1', 'since=yesterday', 'limit=1&limit=2']) {
      const r = await call('GET', `/v1/entries?${bad}`, { token });
      assert.equal(r.status, 400, bad);
      assert.equal(json(r).error.code, 'EVIDENT_BAD_REQUEST');
    }
    assert.equal((await call('GET', '/v1/entries/999999', { token })).status, 404);
    assert.equal((await call('GET', '/v1/entries', {})).status, 401, 'reads need a token unless public');
  });

  it('streams new entries as server-sent events, resumable with Last-Event-ID', async () => {
    const token = secret.reader as string;
    const from = json(await call('GET', '/v1/health')).size as number;
    /** The first `n` events of /v1/tail from `after`, or with Last-Event-ID. */
    const events = async (n: number, headers: Record<string, string>, query = '') => {
      const abort = new AbortController();
      const response = await fetch(`${base}/v1/tail${query}`, {
        headers: { authorization: `Bearer ${token}`, ...headers },
        signal: abort.signal,
      });
      assert.equal(response.headers.get('content-type'), 'text/event-stream');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      const found: { id: number; entry: Entry }[] = [];
      while (found.length < n) {
        const { value } = await reader.read();
        text += Buffer.from(value as Uint8Array).toString('utf8');
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id !== undefined && data !== undefined) found.push({ id: Number(id), entry: JSON.parse(data) });
        }
      }
      abort.abort();
      return found;
    };
    const live = events(2, {}, `?after=${from - 1}`);
    await post(secret.writer as string, '{"actor":"sse","action":"a.b"}');
    await post(secret.writer as string, '{"actor":"sse","action":"a.c"}');
    const got = await live;
    assert.deepEqual(
      got.map((e) => [e.id, e.entry.seq, e.entry.action]),
      [
        [from, from, 'a.b'],
        [from + 1, from + 1, 'a.c'],
      ],
    );
    // A client that saw the first reconnects with its id and gets only what followed.
    const resumed = await events(1, { 'last-event-id': String(from) });
    assert.equal(resumed[0]?.entry.action, 'a.c');
  });

  it('exposes Prometheus metrics: appends by status, latency, queue, log and checkpoint', async () => {
    const r = await call('GET', '/metrics', { token: secret.reader });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const value = (name: string) =>
      Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(r.text)?.[1]);
    assert.ok(value('evident_appended_entries_total') >= 5);
    assert.ok(value('evident_append_requests_total{status="201"}') >= 4);
    assert.ok(value('evident_append_requests_total{status="401"}') >= 2);
    assert.ok(value('evident_append_requests_total{status="403"}') >= 2);
    assert.equal(value('evident_append_seconds_count'), value('evident_append_batch_entries_count'));
    assert.equal(value('evident_log_entries'), json(await call('GET', '/v1/health')).size);
    assert.equal(value('evident_pending_entries'), 0);
    assert.ok(value('evident_checkpoint_entries') >= 1);
    assert.ok(value('evident_checkpoint_age_seconds') >= 0);
  });

  it('gives a receipt that verifies offline', async () => {
    const entry = json(await post(secret.writer as string, '{"actor":"bob","action":"payout.approve"}')) as Entry;
    const r = await call('GET', `/v1/entries/${entry.seq}/receipt?wait=10`, { token: secret.reader });
    assert.equal(r.status, 200, r.text);
    const checkpoint = verifyReceipt(parseReceipt(r.text), entry, { log: keys.key });
    assert.ok(checkpoint.size > entry.seq);
  });

  it('answers requests that arrive while it shuts down with 503, Retry-After and an evident error', async () => {
    const closingDir = join(tempDir(), 'closing');
    const closingLog = await Log.open({ store: closingDir, create: true });
    const app = buildServer({ log: closingLog, tokens: tokensFile });
    const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    // An append held in flight by another process's lock, and a second request behind it on the connection.
    const holder = spawn('flock', ['--exclusive', join(closingDir, 'lock'), 'cat'], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    const socket = connect(Number(url.port), '127.0.0.1');
    let answers = '';
    socket.on('data', (chunk) => {
      answers += chunk;
    });
    try {
      await until(() => flockers(join(closingDir, 'lock')).length > 0, 'the lock held');
      const body = '{"actor":"a","action":"x.y"}';
      socket.write(
        `POST /v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret.writer}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await until(() => flockers(join(closingDir, 'lock'), true).includes(process.pid), 'the append waiting');
      const closed = app.close();
      socket.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
      holder.stdin.end();
      await closed;
      await until(() => answers.includes('EVIDENT_CLOSED'), 'the second answer');
      const [first, second] = answers.split(/(?=HTTP\/1\.1 )/);
      assert.match(first ?? '', /^HTTP\/1\.1 201 /, 'the append in flight is finished and acknowledged');
      assert.match(second ?? '', /^HTTP\/1\.1 503 /);
      assert.match(second ?? '', /\r\nretry-after: 1\r\n/i);
      assert.match(second ?? '', /\{"error":\{"code":"EVIDENT_CLOSED","message":"the server is shutting down/);
    } finally {
      holder.kill();
      socket.destroy();
      await closingLog.close();
    }
  });

  it('says a receipt is not ready yet (503) without naming where the log is stored', async () => {
    const slow = signingLog('slow.example/log');
    await slow.init();
    // A server on a read-only log signs nothing; its writer signs at most once an hour, and did at init.
    const writer = await Log.open({ store: slow.dir, checkpointInterval: 3_600_000 });
    const slowLog = await Log.open({ store: slow.dir, readOnly: true });
    const app = buildServer({ log: slowLog, tokens: tokensFile });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const entry = await writer.append({ actor: 'a', action: 'x.y' });
      const response = await fetch(`${url}/v1/entries/${entry.seq}/receipt?wait=0`, {
        headers: { authorization: `Bearer ${secret.reader}` },
      });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, 'EVIDENT_NOT_YET');
      assert.match(error.message, /no signed checkpoint covers entry 1 yet/);
      assert.ok(!error.message.includes(slow.dir), error.message);
    } finally {
      await app.close();
      await slowLog.close();
      await writer.close();
    }
  });

  it('serves C2SP tlog-tiles that a client knowing only the verifier key can check', async () => {
    const lines = Array.from({ length: 600 }, (_, i) => JSON.stringify({ actor: 'load', action: 'x.y', data: { i } }));
    assert.equal((await post(secret.writer as string, lines.join('\n'), 'application/x-ndjson')).status, 201);
    const token = secret.reader as string;
    let checkpointText = '';
    let size = 0;
    for (let i = 0; i < 100 && size < 600; i++) {
      const got = await call('GET', '/checkpoint', { token });
      checkpointText = got.text;
      size = trustCheckpoint(checkpointText, { log: keys.key }).size;
      if (size < 600) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const checkpoint = trustCheckpoint(checkpointText, { log: keys.key });
    const cp = await call('GET', '/checkpoint', { token });
    assert.equal(cp.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(cp.headers.get('access-control-allow-origin'), '*');

    // Entry bundles → leaf hashes, as RFC 9162 §2.1.1 hashes a leaf; level-0 tiles must hold exactly those.
    const path = (n: number) => String(n).padStart(3, '0');
    const leaves: Buffer[] = [];
    for (let n = 0; n * 256 < checkpoint.size; n++) {
      const width = Math.min(256, checkpoint.size - n * 256);
      const suffix = width < 256 ? `.p/${width}` : '';
      const bundle = await call('GET', `/tile/entries/${path(n)}${suffix}`, { token });
      assert.equal(bundle.status, 200, bundle.text);
      const entries = splitBundle(bundle.bytes) as Buffer[];
      assert.equal(entries.length, width);
      const hashes = entries.map((bytes) => leafHash(bytes));
      const tile = await call('GET', `/tile/0/${path(n)}${suffix}`, { token });
      assert.equal(tile.status, 200);
      assert.ok(tile.bytes.equals(Buffer.concat(hashes)), `tile 0/${n} holds the bundle's leaf hashes`);
      assert.equal(
        tile.headers.get('cache-control'),
        width === 256 ? 'public, max-age=31536000, immutable' : 'public, max-age=60',
      );
      leaves.push(...hashes);
    }
    assert.ok(
      treeRoot(subtreesOf(leaves), checkpoint.size).equals(checkpoint.root),
      'the leaves hash to the signed root',
    );
    // Level 1: the roots of the full level-0 tiles.
    const level1 = await call('GET', '/tile/1/000.p/2', { token });
    assert.ok(
      level1.bytes.equals(
        Buffer.concat([
          treeRoot(subtreesOf(leaves.slice(0, 256)), 256),
          treeRoot(subtreesOf(leaves.slice(256, 512)), 256),
        ]),
      ),
    );
    // Never a tile beyond the checkpoint, never a malformed path.
    for (const bad of [
      `/tile/0/${path(Math.ceil(checkpoint.size / 256))}`,
      '/tile/0/000.p/0',
      '/tile/0/000.p/256',
      '/tile/0/x000/000',
      '/tile/0/1',
      '/tile/64/000',
      '/tile/../checkpoint',
      '/tile/0/../../checkpoint',
      '/tile/0/%2e%2e/%2e%2e/checkpoint',
      '/tile/entries/%2e%2e/000',
      '/tile/0/000.p/01',
    ]) {
      assert.equal(await rawGet(bad, token), 404, bad);
    }
  });
});

describe('evident token', () => {
  it('add prints the secret alone on stdout; list shows no secret; revoke removes it', async () => {
    const file = join(tempDir(), 'tokens.json');
    const added = await evident(['token', 'add', 'ci', '--scopes', 'append', '--actors', 'ci-*', '--tokens', file]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^evt_[A-Za-z0-9_-]{43}\n$/);
    const listed = await evident(['token', 'list', '--tokens', file]);
    assert.match(listed.stdout, /^ci\tappend\tci-\*\t/);
    assert.ok(!listed.stdout.includes(added.stdout.trim()), 'no secret listed');
    const again = await evident(['token', 'add', 'ci', '--scopes', 'read', '--tokens', file]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists already/);
    const badScope = await evident(['token', 'add', 'x', '--scopes', 'root', '--tokens', file]);
    assert.equal(badScope.code, 2);
    // Two patterns are never shown as one.
    const two = ['token', 'add', 'two', '--scopes', 'append', '--actors', 'a,b', '--actors', 'c', '--tokens', file];
    assert.equal((await evident(two)).code, 0);
    assert.match((await evident(['token', 'list', '--tokens', file])).stdout, /^two\tappend\t"a,b" c\t/m);
    assert.equal((await evident(['token', 'revoke', 'two', '--tokens', file])).code, 0);
    assert.equal((await evident(['token', 'revoke', 'ci', '--tokens', file])).code, 0);
    assert.equal((await evident(['token', 'list', '--tokens', file])).stdout, '');
    const unknown = await evident(['token', 'frob']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /the subcommand is add, list or revoke, not frob/);
    const missing = await evident(['token', 'list', '--tokens', join(tempDir(), 'none.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /there is no .*none\.json/);
  });
});

describe('evident serve, the process', () => {
  /** Starts `evident serve` on a free port; resolves with its base URL once it listens. */
  const serve = (dir: string, tokens: string, extra: string[] = []) =>
    daemon(['serve', '--dir', dir, '--listen', '127.0.0.1:0', '--tokens', tokens, ...extra]);

  it('a retry after a restart appends nothing; SIGKILL under load loses no acknowledged entry', async () => {
    const root = tempDir();
    const dir = join(root, 'log');
    const tokens = join(root, 'tokens.json');
    await evident(['init', '--dir', dir]);
    const token = addToken(tokens, 'app', ['append', 'read']);
    const post = (url: string, body: string, key?: string) =>
      fetch(`${url}/v1/entries`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        body,
      });

    let server = serve(dir, tokens);
    let url = await server.url;
    const first = await post(url, '{"actor":"app","action":"order.pay"}', 'order-1');
    assert.equal(first.status, 201);
    const entry = (await first.json()) as Entry;
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, 'SIGTERM stops it cleanly');

    server = serve(dir, tokens);
    url = await server.url;
    const retry = await post(url, '{"actor":"app","action":"order.pay"}', 'order-1');
    assert.equal(retry.status, 200);
    assert.deepEqual(await retry.json(), entry);
    // Request logs: one JSON line per request and response, never the token or the body.
    await until(() => server.stdout().includes('"statusCode":200'), 'the response logged');
    const logged = server
      .stdout()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { req?: { method: string; url: string } });
    assert.ok(logged.some((line) => line.req?.method === 'POST' && line.req.url === '/v1/entries'));
    assert.ok(!server.stdout().includes(token) && !server.stdout().includes('order.pay'), 'no secret, no payload');

    // Under load, then SIGKILL: every 201 is in the log.
    const acked: number[] = [];
    let running = true;
    const clients = Array.from({ length: 16 }, async (_, c) => {
      for (let n = 0; running; n++) {
        try {
          const r = await post(url, JSON.stringify({ actor: 'app', action: 'load.write', data: { c, n } }));
          if (r.status === 201) acked.push(((await r.json()) as Entry).seq);
        } catch {
          return; // the server is gone
        }
      }
    });
    await until(() => acked.length >= 200, 'appends under way');
    server.child.kill('SIGKILL');
    running = false;
    await Promise.all(clients);
    await server.exited;
    const log = new Log({ store: dir, readOnly: true });
    const result = await log.verify();
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    const seqs = new Set<number>();
    for await (const e of log.read()) seqs.add(e.seq);
    await log.close();
    for (const seq of acked) assert.ok(seqs.has(seq), `acknowledged entry ${seq} is in the log`);
  });

  it('without --tokens serves public reads and refuses appends', async () => {
    const dir = join(tempDir(), 'log');
    await evident(['init', '--dir', dir]);
    await evident(['append', '--dir', dir, '--actor', 'a', '--action', 'x.y']);
    const server = daemon(['serve', '--dir', dir, '--listen', '127.0.0.1:0']);
    try {
      const url = await server.url;
      const read = await fetch(`${url}/v1/entries/0`);
      assert.equal(read.status, 200);
      assert.equal(((await read.json()) as Entry).actor, 'a');
      const checkpoint = await fetch(`${url}/checkpoint`);
      assert.equal(checkpoint.status, 404);
      assert.equal(((await checkpoint.json()) as { error: { code: string } }).error.code, 'EVIDENT_NO_KEY');
      const append = await fetch(`${url}/v1/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"actor":"a","action":"x.y"}',
      });
      assert.equal(append.status, 401);
      assert.match(server.stderr(), /no --tokens: reads are public, and appends are refused/);
    } finally {
      server.child.kill('SIGTERM');
    }
    assert.equal(await server.exited, 0);
    assert.equal((await readStore(dir)).length, 1);
  });

  it('warns when the token file can be read by others', async () => {
    const dir = join(tempDir(), 'log');
    assert.equal((await evident(['init', '--dir', dir])).code, 0);
    const file = join(tempDir(), 'tokens.json');
    addToken(file, 'r', ['read']);
    chmodSync(file, 0o644);
    const server = daemon(['serve', '--dir', dir, '--listen', '127.0.0.1:0', '--tokens', file]);
    try {
      await server.url;
      assert.match(server.stderr(), /warning: the token file .* can be read by others \(mode 644\); chmod 600 it/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('serves HTTPS with --tls-cert and --tls-key', async () => {
    const root = tempDir();
    const [cert, key] = [join(root, 'cert.pem'), join(root, 'key.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=evident-test',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const dir = join(root, 'log');
    await evident(['init', '--dir', dir]);
    addToken(join(root, 'tokens.json'), 'tls', ['read']);
    const server = serve(dir, join(root, 'tokens.json'), ['--tls-cert', cert, '--tls-key', key]);
    let health: string;
    try {
      const url = await server.url;
      assert.match(url, /^https:/);
      health = await new Promise<string>((resolve, reject) => {
        httpsGet(`${url}/v1/health`, { ca: readFileSync(cert) }, (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (d: string) => {
            body += d;
          });
          response.on('end', () => resolve(body));
        }).on('error', reject);
      });
    } finally {
      server.child.kill('SIGTERM');
    }
    assert.equal(await server.exited, 0);
    assert.deepEqual(JSON.parse(health), { ok: true, log: null, size: 0, hash: '0'.repeat(64), ts: null });
  });
});

describe("the tlog-tiles read API, read by Go's sumdb/tlog", () => {
  const client = buildGo('tiles-go.go');
  const skip = client === null ? 'Go and golang-golang-x-mod-dev are not installed (.ci/run installs them)' : false;

  it('a generic client with only the URL and the verifier key proves every entry', { skip }, async () => {
    const signed = signingLog('go-client.example/log');
    await signed.init();
    const log = new Log({ store: signed.dir, checkpointInterval: 10 });
    await log.appendBatch(Array.from({ length: 600 }, (_, i) => ({ actor: 'go', action: 'tile.read', data: { i } })));
    await log.checkpoint();
    const app = buildServer({ log, tokens: null, publicReads: true });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const ran = await run(client as string, [url, signed.verifier]);
      assert.equal(ran.code, 0, ran.stderr);
      const lines = ran.stdout.trim().split('\n');
      assert.equal(lines.at(-1), 'ok go-client.example/log 601');
      const entries = await readStore(signed.dir);
      assert.deepEqual(
        lines.slice(0, -1),
        entries.map((e) => e.hash),
        "Go's RFC 9162 leaf hash of each bundle entry is the entry's hash",
      );
    } finally {
      await app.close();
      await log.close();
    }
  });
});
