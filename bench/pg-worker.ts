/**
 * One PostgreSQL benchmark writer process: waits for the wall-clock time
 * `startAt` so that every writer's window is the same one, then `callers`
 * async callers append durably until `ms` have passed; prints
 * {"count","latencies"} (each append's milliseconds, for percentiles).
 *
 *   node pg-worker.js <evident|naive|insert> <store URL> <callers> <ms> <startAt>
 *
 * evident  appends through Log on the PostgreSQL store
 * naive    the way this is usually done: one entry per transaction under an
 *          advisory lock, the head read with ORDER BY seq DESC LIMIT 1, the
 *          hash computed, one INSERT (table naive_entries)
 * insert   no chain, no lock: each process's queued payloads go in as one
 *          multi-row INSERT at a time (table bare_entries)
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { canonicalize } from '../src/encoding/canonical.js';
import { Log } from '../src/log.js';
import { parsePostgresUrl, quoted } from '../src/store/postgres/connection.js';
import { event } from './events.js';

const [mode = 'evident', store = '', callersText = '64', msText = '1000', startAtText = '0'] = process.argv.slice(2);
const target = parsePostgresUrl(store);
const s = quoted(target.schema);

let append: (i: number) => Promise<unknown>;
let close: () => Promise<void>;
if (mode === 'evident') {
  const log = await Log.open({ store });
  append = (i) => log.append(event(i));
  close = () => log.close();
} else {
  const pool = new pg.Pool({ connectionString: target.url, max: 10 });
  await pool.query('select 1');
  close = () => pool.end();
  if (mode === 'naive') {
    append = async (i) => {
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query('select pg_advisory_xact_lock(42)');
        const { rows } = await client.query<{ seq: string; hash: string }>(
          `select seq, hash from ${s}.naive_entries order by seq desc limit 1`,
        );
        const seq = rows[0] === undefined ? 0 : Number(rows[0].seq) + 1;
        const payload = canonicalize(event(i));
        const hash = createHash('sha256')
          .update(`${rows[0]?.hash ?? ''}${payload}`)
          .digest('hex');
        await client.query(`insert into ${s}.naive_entries (seq, line, hash) values ($1, $2, $3)`, [
          seq,
          payload,
          hash,
        ]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw error;
      } finally {
        client.release();
      }
    };
  } else {
    // Group commit without a chain: whatever the callers queued while the last INSERT ran goes in the next.
    let queue: { line: string; done: () => void; failed: (error: unknown) => void }[] = [];
    let running = false;
    const drain = async () => {
      running = true;
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        try {
          await pool.query(`insert into ${s}.bare_entries (line) select unnest($1::text[])`, [
            batch.map((b) => b.line),
          ]);
          for (const b of batch) b.done();
        } catch (error) {
          for (const b of batch) b.failed(error);
        }
      }
      running = false;
    };
    append = (i) =>
      new Promise<void>((done, failed) => {
        queue.push({ line: canonicalize(event(i)), done, failed });
        if (!running) void drain();
      });
  }
}

const wait = Number(startAtText) - Date.now();
if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
let count = 0;
const latencies: number[] = [];
const end = performance.now() + Number(msText);
await Promise.all(
  Array.from({ length: Number(callersText) }, async () => {
    while (performance.now() < end) {
      const started = performance.now();
      await append(count);
      latencies.push(performance.now() - started);
      count++;
    }
  }),
);
await close();
process.stdout.write(`${JSON.stringify({ count, latencies })}\n`);
