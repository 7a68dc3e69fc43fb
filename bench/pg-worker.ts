/**
 * One PostgreSQL benchmark writer process: waits for the wall-clock time
 * `startAt` so that every writer's window is the same one, then `callers`
 * async callers append durably until `ms` have passed; prints
 * {"count","latencies"} (each append's milliseconds, for percentiles).
 *
 *   node pg-worker.js <evident|naive|insert|headrow-pg|headrow-postgresjs> <store URL> <callers> <ms> <startAt>
 *
 * evident  appends through Log on the PostgreSQL store
 * naive    the way this is usually done: one entry per transaction under an
 *          advisory lock, the head read with ORDER BY seq DESC LIMIT 1, the
 *          hash computed, one INSERT (table naive_entries)
 * insert   no chain, no lock: each process's queued payloads go in as one
 *          multi-row INSERT at a time (table bare_entries)
 * headrow-pg, headrow-postgresjs
 *          the shape of evident's commit, with no chain: the queued payloads
 *          go in as one transaction that locks the head row, inserts them
 *          after it and moves it (BEGIN and the locking read, then the
 *          INSERT, the UPDATE and COMMIT pipelined), through node-postgres or
 *          postgres.js: the two clients on this workload
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import postgres from 'postgres';
import { canonicalize } from '../src/encoding/canonical.js';
import { Log } from '../src/log.js';
import { parsePostgresUrl, quoted } from '../src/store/postgres/connection.js';
import { event } from './events.js';

const [mode = 'evident', store = '', callersText = '64', msText = '1000', startAtText = '0'] = process.argv.slice(2);
const target = parsePostgresUrl(store);
const s = quoted(target.schema);

let append: (i: number) => Promise<unknown>;
let close: () => Promise<void>;

/** Group commit: whatever the callers queued while the last commit ran goes in the next, through `commit`. */
function groupCommit(commit: (lines: string[]) => Promise<void>): (i: number) => Promise<void> {
  let queue: { line: string; done: () => void; failed: (error: unknown) => void }[] = [];
  let running = false;
  const drain = async () => {
    running = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await commit(batch.map((b) => b.line));
        for (const b of batch) b.done();
      } catch (error) {
        for (const b of batch) b.failed(error);
      }
    }
    running = false;
  };
  return (i) =>
    new Promise<void>((done, failed) => {
      queue.push({ line: canonicalize(event(i)), done, failed });
      if (!running) void drain();
    });
}

const HEAD = `select size from ${s}.headrow_head where id = 1 for update`;
const ROWS = `insert into ${s}.headrow_entries (seq, line) select $1::bigint + n - 1, line from unnest($2::text[]) with ordinality as t(line, n)`;
const MOVE = `update ${s}.headrow_head set size = $1 where id = 1`;

if (mode === 'headrow-postgresjs') {
  const sql = postgres(target.url, { max: 1, onnotice: () => {} });
  close = () => sql.end();
  append = groupCommit(async (lines) => {
    await sql.begin(async (tx) => {
      const [head] = await tx.unsafe(HEAD);
      const size = Number(head?.size);
      await Promise.all([tx.unsafe(ROWS, [size, lines]), tx.unsafe(MOVE, [size + lines.length])]);
    });
  });
} else if (mode === 'headrow-pg') {
  const client = new pg.Client({ connectionString: target.url, pipeline: true });
  await client.connect();
  close = () => client.end();
  append = groupCommit(async (lines) => {
    const [, head] = await Promise.all([client.query('begin'), client.query<{ size: string }>(HEAD)]);
    const size = Number(head.rows[0]?.size);
    await Promise.all([
      client.query(ROWS, [size, lines]),
      client.query(MOVE, [size + lines.length]),
      client.query('commit'),
    ]);
  });
} else if (mode === 'evident') {
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
    // Group commit without a chain or a lock.
    append = groupCommit(async (lines) => {
      await pool.query(`insert into ${s}.bare_entries (line) select unnest($1::text[])`, [lines]);
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
