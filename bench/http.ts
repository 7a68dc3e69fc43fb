/**
 * The HTTP service under load, from a load generator (autocannon, fastify's
 * own) in this process against a server in another, over loopback with
 * keep-alive:
 *   - durable single-entry appends, 64 connections, against a bare fastify
 *     route that parses the same body and answers 201 without storing it;
 *     and the same with an Idempotency-Key on each;
 *   - NDJSON batches of 1,000 entries;
 *   - GETs of the checkpoint, of a full tile (from the server's cache) and of
 *     a full entry bundle.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Log } from '../src/log.js';
import { addToken } from '../src/server/tokens.js';
import { event } from './events.js';

export interface HttpFigures {
  baselinePerS: number;
  appendsPerS: number;
  appendP99Ms: number;
  keyedAppendsPerS: number;
  batchEntriesPerS: number;
  checkpointPerS: number;
  tilePerS: number;
  bundlePerS: number;
}

/** Starts bench/http-server.js; resolves with its URL and the child. */
function startServer(here: string, args: string[]): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'http-server.js'), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout?.setEncoding('utf8').once('data', (line: string) => resolve({ url: line.trim(), child }));
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`http-server exited ${code}`)));
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Requests per second (and p99 latency) under `connections` connections for `seconds`; any non-2xx fails it. */
async function load(
  options: autocannon.Options,
  seconds: number,
): Promise<{ perS: number; p99: number; requests: number }> {
  const result = await autocannon({ connections: 64, pipelining: 1, ...options, duration: seconds });
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${options.url}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return { perS: result.requests.total / seconds, p99: result.latency.p99, requests: result.requests.total };
}

/** One run of every HTTP measurement, on a fresh signing log in `dir` signed with `signingKey`. */
export async function httpFigures(
  here: string,
  dir: string,
  signingKey: string,
  seconds: number,
): Promise<HttpFigures> {
  await Log.init({ store: dir, signingKey });
  const tokens = join(dir, '..', `${dir.split('/').at(-1)}-tokens.json`);
  const secret = addToken(tokens, 'bench', ['append', 'read']);
  const body = JSON.stringify(event(0));
  /**
   * POSTs of the event with a fresh `header` on each request, so that the load generator does the same work for
   * every subject: an X-Request-Id the servers ignore, or an Idempotency-Key (what recording keys costs).
   */
  const fresh = (url: string, header: string, auth: Record<string, string>): autocannon.Options => ({
    url,
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...auth },
    requests: [
      { setupRequest: (request) => ({ ...request, headers: { ...request.headers, [header]: randomUUID() } }) },
    ],
  });

  const baseline = await startServer(here, ['baseline']);
  let baselinePerS: number;
  try {
    baselinePerS = (await load(fresh(`${baseline.url}/v1/entries`, 'x-request-id', {}), seconds)).perS;
  } finally {
    await stopServer(baseline.child);
  }

  const served = await startServer(here, ['evident', dir, tokens]);
  try {
    const auth = { authorization: `Bearer ${secret}` };
    const single = await load(fresh(`${served.url}/v1/entries`, 'x-request-id', auth), seconds);
    const keyed = await load(fresh(`${served.url}/v1/entries`, 'idempotency-key', auth), seconds);
    const ndjson = Array.from({ length: 1000 }, (_, i) => `${JSON.stringify(event(i))}\n`).join('');
    const batches = await load(
      {
        url: `${served.url}/v1/entries`,
        method: 'POST',
        body: ndjson,
        headers: { 'content-type': 'application/x-ndjson', ...auth },
        connections: 4,
      },
      seconds,
    );
    // Reads, now that the log holds tens of thousands of entries and has signed checkpoints of them.
    await fetch(`${served.url}/tile/0/000`); // into the cache
    const checkpoint = await load({ url: `${served.url}/checkpoint` }, seconds);
    const tile = await load({ url: `${served.url}/tile/0/000` }, seconds);
    const bundle = await load({ url: `${served.url}/tile/entries/001` }, seconds);
    return {
      baselinePerS,
      appendsPerS: single.perS,
      appendP99Ms: single.p99,
      keyedAppendsPerS: keyed.perS,
      batchEntriesPerS: batches.perS * 1000,
      checkpointPerS: checkpoint.perS,
      tilePerS: tile.perS,
      bundlePerS: bundle.perS,
    };
  } finally {
    await stopServer(served.child);
  }
}
