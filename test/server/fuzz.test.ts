/**
 * Hostile and malformed requests against a real server: bad and deep JSON,
 * wrong types, invalid UTF-8, huge headers and bodies, path traversal in tile
 * paths, nonsense parameters, bodies that never finish. Every answer is a
 * 4xx (never a 5xx, never a hang), and the log still verifies.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Log } from '../../src/log.js';
import { buildServer } from '../../src/server/server.js';
import { addToken } from '../../src/server/tokens.js';
import { signingLog, tempDir, verifyStore } from '../helpers.js';

let port = 0;
let token = '';
let close: () => Promise<void>;
let dir = '';
// A connection per request: the server closes one after some refusals (431, 413), and a reused socket would
// then fail on the client's side, not the server's.
const agent = new Agent({ keepAlive: false });

function send(method: string, path: string, headers: Record<string, string>, body?: Buffer | string) {
  const what = `${method} ${path.slice(0, 60)} (${Object.keys(headers).join(',')}; body ${body?.length ?? 0} bytes)`;
  return new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode as number));
    });
    req.on('error', (error) => reject(new Error(`${what}: ${error.message}`)));
    req.end(body);
  });
}

/** A small deterministic generator: the same hostile requests every run. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] as T,
  };
}

const BODIES: ((r: ReturnType<typeof random>) => Buffer | string)[] = [
  (r) => Buffer.from(Array.from({ length: r.int(200) }, () => r.int(256))),
  () => '{"actor":"a","action":',
  () => `${'['.repeat(100_000)}`,
  () => `{"actor":"a","action":"x.y","data":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
  () => '{"actor":"a","action":"x.y","data":{"n":1e400}}',
  () => '{"actor":"a","action":"x.y","data":{"n":18446744073709551616}}',
  () => '{"actor":1,"action":"x.y"}',
  () => '{"actor":"a","action":"no spaces allowed"}',
  () => '{"actor":"a\\u0000","action":"x.y"}',
  () => '{"actor":"a","action":"x.y","targets":"not-an-array"}',
  () => '{"actor":"a","action":"x.y","data":[]}',
  () => '{"actor":"a","action":"evident.log.init"}',
  () => '{"actor":"a","action":"x.y","seq":5}',
  () => '{"actor":"a","action":"x.y","via":{"token":"root"}}',
  () => '{"actor":"a","action":"x.y","k":1,"k":2}',
  () => Buffer.from([0x7b, 0x22, 0x61, 0x63, 0x74, 0x6f, 0x72, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
  () => '"just a string"',
  () => 'null',
  () => '',
  () => '\n\n\n',
  () => `{"actor":"a","action":"x.y","data":{"s":"${'x'.repeat(300_000)}"}}`,
  (r) => `${'{"actor":"a","action":"x.y"}\n'.repeat(r.int(3))}{"broken"\n`,
];
const TYPES = ['application/json', 'application/x-ndjson', 'text/plain', 'application/json; charset=latin1', ''];
const PATHS = [
  '/tile/0/../../etc/passwd',
  '/tile/0/%2e%2e/%2e%2e/checkpoint',
  '/tile/entries/..%2f..%2fconfig.json',
  '/tile/0/x000/000',
  '/tile/0/000.p/0',
  '/tile/0/000.p/999',
  '/tile/99/000',
  '/tile/-1/000',
  '/tile/0/1000',
  '/tile/0/x001/x002/x003/x004/x005/x006/000',
  '/tile/entries/000.p/256',
  '/v1/entries/-1',
  '/v1/entries/abc',
  '/v1/entries/99999999999999999999',
  '/v1/entries/0/receipt?wait=99999',
  '/v1/entries/0/receipt?wait=-1',
  '/v1/entries?limit=abc',
  '/v1/entries?limit=0',
  '/v1/entries?after=1e99',
  '/v1/entries?since=not-a-time',
  '/v1/entries?until=2026-13-45',
  '/v1/entries?actor=a&actor=b',
  '/v1/tail?after=x',
  '/%00',
  '/v1/entries/%ff',
  '/checkpoint/..',
  `/${'a'.repeat(10_000)}`,
];

describe('hostile requests', () => {
  before(async () => {
    const keys = signingLog('fuzz.example/log');
    await keys.init();
    dir = keys.dir;
    const tokens = `${tempDir()}/tokens.json`;
    token = addToken(tokens, 'fuzzer', ['append', 'read']);
    const log = new Log({ store: keys.dir });
    const app = buildServer({ log, tokens, bodyLimit: 256 * 1024, requestTimeoutMs: 1000 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
    close = async () => {
      agent.destroy();
      await app.close();
      await log.close();
    };
  });
  after(() => close());

  it('2,000 of them get only 4xx answers, and the log still verifies', async () => {
    const r = random(20261202);
    const statuses = new Map<number, number>();
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 2000; i++) {
      let status = 0;

      const kind = r.int(4);
      if (kind === 0 || kind === 1) {
        const body = (r.pick(BODIES) as (g: typeof r) => Buffer | string)(r);
        const type = r.pick(TYPES);
        status = await send('POST', '/v1/entries', { ...auth, ...(type === '' ? {} : { 'content-type': type }) }, body);
      } else if (kind === 2) {
        status = await send('GET', r.pick(PATHS), auth);
      } else {
        const headers: Record<string, string> =
          r.next() < 0.5
            ? { authorization: `Bearer ${'x'.repeat(r.int(20_000))}` }
            : { ...auth, 'x-junk': 'y'.repeat(17_000 + r.int(100_000)) };
        status = await send(
          r.pick(['GET', 'POST', 'PUT', 'DELETE']),
          r.pick(['/v1/entries', '/checkpoint', '/tile/0/000']),
          headers,
        ).catch(() => 431);
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      assert.ok(status >= 400 && status < 500, `request ${i} (kind ${kind}) got ${status}`);
    }
    assert.ok(statuses.size >= 5, `a variety of refusals: ${JSON.stringify([...statuses])}`);
    const result = await verifyStore(dir);
    assert.equal(result.ok, true, JSON.stringify(result.failure));
  });

  it('a body that never finishes is cut off with a 4xx, not kept open', async () => {
    const status = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `POST /v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"actor":`,
        );
      });
      let answer = '';
      socket.setEncoding('utf8').on('data', (d: string) => {
        answer += d;
      });
      socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
      socket.on('error', reject);
    });
    assert.match(status, /^HTTP\/1\.1 4\d\d /);
  });
});
