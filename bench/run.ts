/**
 * `npm run bench`: evident against baselines measured in the same run.
 * Every figure is the median of BENCH_RUNS runs (default 3), with runs of the
 * different subjects interleaved so that machine noise hits them alike.
 * Writes bench/results/latest.json and prints a table.
 *
 * Every timed append measurement starts after sync(1), so that one
 * subject's writeback does not land in the next one's window. Overheads
 * (tree, signing) are the median of per-run ratios against the bare chain
 * measured next to them.
 *
 * The reference group measures a reference build (BENCH_REFERENCE, a commit of this repository; default
 * dd9301f, the build before the lifecycle redesign) beside this one, on the same logs, in a shuffled order.
 *
 * Env: BENCH_RUNS (3), BENCH_MS per append measurement (1000), BENCH_BIG entries in the large log (1000000),
 * BENCH_TREE_SIZES (1000000,10000000), BENCH_REFERENCE (dd9301f), BENCH_IMPORT entries piped to
 * `evident append --batch` (200000), BENCH_ONLY: some of appends,threads,verify,import,reference,overhead,proofs,
 * postgres,pgclients,http
 * (default all), BENCH_POSTGRES: the database of the postgres group (postgres://postgres@127.0.0.1:5432/test),
 * BENCH_PG_BIG entries copied into PostgreSQL and verified there (1000000), BENCH_HTTP_SECONDS each HTTP load
 * lasts (5).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import pino from 'pino';
import { copyLog } from '../src/copy.js';
import { Log } from '../src/log.js';
import { generateNoteKey } from '../src/note/keys.js';
import { quoted } from '../src/store/postgres/connection.js';
import { PerEventAppender } from './baselines.js';
import { event } from './events.js';
import { httpFigures } from './http.js';
import { type Appender, type Build, referenceBuild } from './reference.js';
import { type ProofFigures, proofFigures } from './tree.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MS = Number(process.env.BENCH_MS ?? 1000);
const BIG = Number(process.env.BENCH_BIG ?? 1_000_000);
const SMALL = 1000;
const GROUPS = [
  'appends',
  'threads',
  'verify',
  'import',
  'reference',
  'overhead',
  'proofs',
  'postgres',
  'pgclients',
  'http',
];
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const ONLY = (process.env.BENCH_ONLY ?? GROUPS.join(',')).split(',');
for (const group of ONLY) {
  if (!GROUPS.includes(group)) throw new Error(`BENCH_ONLY: no group ${group}; there are ${GROUPS.join(', ')}`);
}
const runs = (group: string) => ONLY.includes(group);
const here = dirname(fileURLToPath(import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'evident-bench-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

/** A log holding `n` entries, written fast (batched, no fsync): the starting point of a measurement. */
async function seeded(n: number): Promise<string> {
  const dir = join(scratch, `log-${dirs++}`);
  const log = await Log.open({ store: dir, create: true, durability: 'write' });
  for (let i = 0; i < n; i += 4096) {
    await log.appendBatch(Array.from({ length: Math.min(4096, n - i) }, (_, j) => event(i + j)));
  }
  await log.close();
  return dir;
}

/** This build. */
const current: Build = {
  name: 'current',
  open: (dir) => Log.open({ store: dir }) as Promise<Appender>,
  worker: 'append-worker.js',
};

/** Durable appends per second through `build`'s log in `dir` with `callers` concurrent async callers. */
async function evidentRate(dir: string, callers: number, build: Build = current): Promise<number> {
  const log = await build.open(dir);
  settleDisk();
  let count = 0;
  const started = performance.now();
  const end = started + MS;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await log.append(event(count));
        count++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await log.close();
  return count / seconds;
}

/** appendBatch calls of two entries per second, one caller: each its own commit, as each append of evident_1. */
async function batchRate(dir: string): Promise<number> {
  const log = await Log.open({ store: dir });
  settleDisk();
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < MS) {
    await log.appendBatch([event(count), event(count + 1)]);
    count++;
  }
  const seconds = (performance.now() - started) / 1000;
  await log.close();
  return count / seconds;
}

/** Per-event baselines (a) and (b): one caller, since each append holds the lock from read to fsync anyway. */
function baselineRate(dir: string, headFromEnd: boolean): number {
  const appender = new PerEventAppender(dir, headFromEnd);
  settleDisk();
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < MS) appender.append(event(count++));
  const seconds = (performance.now() - started) / 1000;
  appender.close();
  return count / seconds;
}

/** (c) pino writing the same events to a file: synchronous writes, no fsync, no chain. */
function pinoRate(): number {
  const file = join(scratch, `pino-${dirs++}.log`);
  const destination = pino.destination({ dest: file, sync: true });
  const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < MS) {
    for (let k = 0; k < 100; k++) logger.info(event(count++));
  }
  const seconds = (performance.now() - started) / 1000;
  destination.flushSync();
  return count / seconds;
}

function runNode(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [resolvePath(here, script), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}`))));
  });
}

/** Writes back every dirty page now, so that it does not land in the next measurement's window. */
function settleDisk(): void {
  execFileSync('sync');
}

/** How long writer processes are given to start and open the log before their common window opens. */
const PROCESS_START_MS = 1500;

/**
 * 4 writer processes × 64 callers on one log: total durable appends per second, all in one window of MS.
 * `burn`: another process meanwhile uses that share of one core, and nothing else.
 */
async function processesRate(
  dir: string,
  processes: number,
  callers: number,
  burn = 0,
  build: Build = current,
): Promise<number> {
  settleDisk();
  // Every writer opens the log, then waits for the same start time: start-up is outside the window, and one
  // writer's start-up does not eat into another's window.
  const startAt = String(Date.now() + PROCESS_START_MS);
  const burner = burn > 0 ? runNode('burner.js', [String(burn), String(MS), startAt]) : Promise.resolve('');
  const counts = await Promise.all(
    Array.from({ length: processes }, () => runNode(build.worker, [dir, String(callers), String(MS), startAt])),
  );
  await burner;
  return counts.reduce((sum, c) => sum + Number(c), 0) / (MS / 1000);
}

interface VerifyRun {
  ok: boolean;
  size: number;
  bytes: number;
  seconds: number;
  maxRssMB: number;
}

function sha256sumSeconds(file: string): number {
  const started = performance.now();
  execFileSync('sha256sum', [file], { stdio: ['ignore', 'ignore', 'inherit'] });
  return (performance.now() - started) / 1000;
}

const results: Record<string, number[]> = {};
const add = (name: string, value: number) => {
  results[name] ??= [];
  (results[name] as number[]).push(value);
};

const signingKey = join(scratch, 'bench.key');
writeFileSync(signingKey, `${generateNoteKey('bench.example/log').signer}\n`, { mode: 0o600 });

/** A log of SMALL entries that signs its checkpoints (at the default interval). */
async function signingLog(): Promise<string> {
  const dir = join(scratch, `log-${dirs++}`);
  await Log.init({ store: dir, signingKey });
  const log = await Log.open({ store: dir, durability: 'write' });
  for (let i = 0; i < SMALL; i += 500) await log.appendBatch(Array.from({ length: 500 }, (_, j) => event(i + j)));
  await log.close();
  return dir;
}

let big = '';
let bigBytes = 0;
const PG_BIG = Number(process.env.BENCH_PG_BIG ?? 1_000_000);
if (runs('appends') || runs('verify') || runs('postgres')) {
  const n = runs('appends') || runs('verify') ? BIG : PG_BIG;
  console.error(`seeding a ${n.toLocaleString('en-US')}-entry log...`);
  big = await seeded(n);
  bigBytes = statSync(join(big, 'log.jsonl')).size;
}
const bigFile = join(big, 'log.jsonl');

const POSTGRES = process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgAdmin = runs('postgres') || runs('pgclients') ? new pg.Pool({ connectionString: POSTGRES, max: 1 }) : null;
const pgSchemas: string[] = [];

const IMPORT = Number(process.env.BENCH_IMPORT ?? 200_000);
const importFile = join(scratch, 'import.ndjson');
if (runs('import')) {
  writeFileSync(importFile, Array.from({ length: IMPORT }, (_, i) => `${JSON.stringify(event(i))}\n`).join(''));
}

const REFERENCE = process.env.BENCH_REFERENCE ?? 'dd9301f';
const reference = runs('reference') ? await referenceBuild(join(here, '..', '..'), REFERENCE) : null;

for (let run = 1; run <= RUNS; run++) {
  console.error(`run ${run}/${RUNS}`);
  if (runs('appends')) await appendRun();
  if (runs('threads')) await threadsRun(run);
  if (runs('verify')) await verifyRun();
  if (runs('import')) add('import_per_s', importRate());
  if (reference !== null) await referenceRun(run, reference);
  if (runs('overhead')) await overheadRun(run);
  if (runs('postgres')) await postgresRun();
  if (runs('pgclients')) await pgClientsRun(run);
  if (runs('http')) await httpRun();
}
if (runs('postgres')) await postgresBulk();

/** Entries per second `evident append --batch` takes from a file of IMPORT events, into a new log. */
function importRate(): number {
  const dir = join(scratch, `log-${dirs++}`);
  const cli = join(here, '..', 'src', 'cli', 'main.js');
  execFileSync(process.execPath, [cli, 'init', '--dir', dir]);
  settleDisk();
  const started = performance.now();
  execFileSync(process.execPath, [cli, 'append', '--batch', '--dir', dir], {
    stdio: [openSync(importFile, 'r'), 'ignore', 'inherit'],
  });
  return IMPORT / ((performance.now() - started) / 1000);
}

async function httpRun(): Promise<void> {
  const f = await httpFigures(here, join(scratch, `log-${dirs++}`), signingKey, HTTP_SECONDS);
  add('http_baseline', f.baselinePerS);
  add('http_appends', f.appendsPerS);
  add('http_ratio', f.appendsPerS / f.baselinePerS);
  add('http_append_p99', f.appendP99Ms);
  add('http_keyed', f.keyedAppendsPerS);
  add('http_keyed_ratio', f.keyedAppendsPerS / f.appendsPerS);
  add('http_batch_entries', f.batchEntriesPerS);
  add('http_checkpoint', f.checkpointPerS);
  add('http_tile', f.tilePerS);
  add('http_bundle', f.bundlePerS);
}

async function appendRun(): Promise<void> {
  add('evident_1', await evidentRate(await seeded(SMALL), 1));
  add('evident_batch_1', await batchRate(await seeded(SMALL)));
  add('evident_16', await evidentRate(await seeded(SMALL), 16));
  add('evident_256', await evidentRate(await seeded(SMALL), 256));
  add('evident_4x64', await processesRate(await seeded(SMALL), 4, 64));
  add('naive_a', baselineRate(await seeded(SMALL), false));
  add('o1head_b', baselineRate(await seeded(SMALL), true));
  add('pino_c', pinoRate());
  add('evident_16_at_1k', await evidentRate(await seeded(SMALL), 16));
  add('evident_16_at_big', await evidentRate(big, 16));
}

/**
 * 4 worker threads × 64 callers on one log, durable appends per second: each thread with a Log of its own on
 * the directory (the threads' commits then take turns at the lock like processes'), or each with a SharedLog on
 * one Log of the main thread's (one queue: their appends are committed together).
 */
async function threadsRate(dir: string, shared: boolean): Promise<number> {
  const owner = shared ? await Log.open({ store: dir }) : null;
  settleDisk();
  const startAt = Date.now() + PROCESS_START_MS;
  const counts = await Promise.all(
    Array.from({ length: 4 }, () => {
      const port = owner?.share();
      const data = { dir, port, callers: 64, ms: MS, startAt };
      const worker = new Worker(join(here, 'thread-worker.js'), {
        workerData: data,
        transferList: port === undefined ? [] : [port],
      });
      return new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  await owner?.close();
  return counts.reduce((sum, c) => sum + c, 0) / (MS / 1000);
}

async function threadsRun(run: number): Promise<void> {
  const rate: Record<string, number> = {};
  for (const name of shuffled(['own', 'shared'] as const, run)) {
    rate[name] = await threadsRate(await seeded(SMALL), name === 'shared');
  }
  add('threads_own', rate.own as number);
  add('threads_shared', rate.shared as number);
  add('threads_ratio', (rate.shared as number) / (rate.own as number));
}

async function verifyRun(): Promise<void> {
  const verify = JSON.parse(await runNode('verify-worker.js', [big])) as VerifyRun;
  if (!verify.ok) throw new Error('the benchmark log failed verification');
  add('verify_entries_per_s', verify.size / verify.seconds);
  add('verify_mb_per_s', verify.bytes / 1e6 / verify.seconds);
  add('verify_peak_rss_mb', verify.maxRssMB);
  const parallel = JSON.parse(await runNode('verify-worker.js', [big, String(cpus().length)])) as VerifyRun;
  if (!parallel.ok) throw new Error('the benchmark log failed parallel verification');
  add('verify_parallel_entries_per_s', parallel.size / parallel.seconds);
  add('verify_parallel_peak_rss_mb', parallel.maxRssMB);
  add('sha256sum_mb_per_s', bigBytes / 1e6 / sha256sumSeconds(bigFile));
}

/**
 * The order of `names` for run `run`: a shuffle seeded by the run. Each
 * subject's figure depends on the one measured before it (one order read
 * the default log, which does nothing more per commit than the bare chain,
 * at 0.85× of it over 7 runs), so no subject may always follow the same one.
 */
function shuffled<T>(names: readonly T[], run: number): T[] {
  let seed = (run * 2654435761) % 2 ** 32;
  const next = () => {
    seed = (seed * 1664525 + 1013904223) % 2 ** 32;
    return seed / 2 ** 32;
  };
  const order = [...names];
  for (let k = order.length - 1; k > 0; k--) {
    const j = Math.floor(next() * (k + 1));
    [order[k], order[j]] = [order[j] as T, order[k] as T];
  }
  return order;
}

/** This build and the reference beside it, on logs that do not sign, in an order shuffled from run to run. */
async function referenceRun(run: number, build: Build): Promise<void> {
  for (const callers of [16, 256]) {
    const rate: Record<string, number> = {};
    for (const name of shuffled(['current', 'reference'] as const, run * 3 + callers)) {
      rate[name] = await evidentRate(await seeded(SMALL), callers, name === 'current' ? current : build);
    }
    add(`current_${callers}`, rate.current as number);
    add(`reference_${callers}`, rate.reference as number);
    add(`current_ratio_${callers}`, (rate.current as number) / (rate.reference as number));
  }
  await processesRate(await seeded(SMALL), 4, 64); // an untimed round first, so that neither is the first
  const by: Record<string, number> = {};
  for (const name of shuffled(['current', 'reference'] as const, run)) {
    by[name] = await processesRate(await seeded(SMALL), 4, 64, 0, name === 'current' ? current : build);
  }
  add('current_4x64', by.current as number);
  add('reference_4x64', by.reference as number);
  add('current_ratio_4x64', (by.current as number) / (by.reference as number));
}

/** A log that signs (at the default interval) beside one that does not, in an order shuffled from run to run. */
async function overheadRun(run: number): Promise<void> {
  for (const callers of [16, 256]) {
    const subjects = {
      plain: async () => evidentRate(await seeded(SMALL), callers),
      signed: async () => evidentRate(await signingLog(), callers),
    };
    const rate: Record<string, number> = {};
    for (const name of shuffled(['plain', 'signed'] as const, run * 2 + callers)) rate[name] = await subjects[name]();
    const { plain, signed } = rate as { plain: number; signed: number };
    add(`plain_${callers}`, plain);
    add(`signed_${callers}`, signed);
    add(`signed_ratio_${callers}`, signed / plain);
  }
  // Several processes on one signing log: one of them integrates and signs for all. The control: what a quarter
  // of a core used by something else costs the processes of a log that does not sign.
  const processSubjects = {
    plain: async () => processesRate(await seeded(SMALL), 4, 64),
    signing: async () => processesRate(await signingLog(), 4, 64),
    burnt: async () => processesRate(await seeded(SMALL), 4, 64, 0.25),
  };
  await processesRate(await seeded(SMALL), 4, 64); // an untimed round first, so that none is the first
  const by: Record<string, number> = {};
  for (const name of shuffled(['plain', 'signing', 'burnt'] as const, run)) by[name] = await processSubjects[name]();
  const { plain, signing, burnt } = by as { plain: number; signing: number; burnt: number };
  add('plain_4x64', plain);
  add('signed_4x64', signing);
  add('signed_ratio_4x64', signing / plain);
  add('burnt_4x64', burnt);
  add('burnt_ratio_4x64', burnt / plain);
}

/** A fresh schema's store URL: an evident log (`init`), or pg-worker.ts's naive and bare tables, or empty. */
async function pgLog(init: boolean, tables = !init): Promise<string> {
  const schema = `evident_bench_${process.pid}_${pgSchemas.length}`;
  pgSchemas.push(schema);
  const admin = pgAdmin as pg.Pool;
  await admin.query(`drop schema if exists ${quoted(schema)} cascade`);
  const url = `${POSTGRES}?schema=${schema}`;
  if (init) await Log.init({ store: url });
  else await admin.query(`create schema ${quoted(schema)}`);
  if (tables) {
    await admin.query(`create table ${quoted(schema)}.naive_entries (seq bigint primary key, line text, hash text)`);
    await admin.query(`create table ${quoted(schema)}.bare_entries (id bigserial primary key, line text)`);
    await admin.query(`create table ${quoted(schema)}.headrow_entries (seq bigint primary key, line text)`);
    await admin.query(`create table ${quoted(schema)}.headrow_head (id int primary key, size bigint)`);
    await admin.query(`insert into ${quoted(schema)}.headrow_head values (1, 0)`);
  }
  return url;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

/** `processes` pg-worker.js processes × 64 callers in one window: appends/s and the latency percentiles. */
async function pgRate(mode: string, processes: number): Promise<{ rate: number; p50: number; p99: number }> {
  const url = await pgLog(mode === 'evident');
  const startAt = String(Date.now() + PROCESS_START_MS);
  const outs = await Promise.all(
    Array.from({ length: processes }, () => runNode('pg-worker.js', [mode, url, '64', String(MS), startAt])),
  );
  const parsed = outs.map((out) => JSON.parse(out) as { count: number; latencies: number[] });
  const latencies = parsed.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const count = parsed.reduce((sum, p) => sum + p.count, 0);
  return { rate: count / (MS / 1000), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

async function postgresRun(): Promise<void> {
  for (const processes of [1, 4, 8]) {
    const figures = await pgRate('evident', processes);
    add(`pg_evident_${processes}`, figures.rate);
    add(`pg_evident_${processes}_p50`, figures.p50);
    add(`pg_evident_${processes}_p99`, figures.p99);
  }
  const naive = await pgRate('naive', 8);
  const bare = await pgRate('insert', 8);
  add('pg_naive_8', naive.rate);
  add('pg_insert_8', bare.rate);
  add('pg_ratio_naive_8', (m8() as number) / naive.rate);
  add('pg_ratio_insert_8', (m8() as number) / bare.rate);
}
/** The two PostgreSQL clients on the shape of evident's commit, 1 process × 64 callers, in alternating order. */
async function pgClientsRun(run: number): Promise<void> {
  const modes = run % 2 === 0 ? ['headrow-pg', 'headrow-postgresjs'] : ['headrow-postgresjs', 'headrow-pg'];
  for (const mode of modes) {
    const figures = await pgRate(mode, 1);
    add(`${mode}`, figures.rate);
    add(`${mode}_p99`, figures.p99);
  }
  add('pgclients_ratio', (results['headrow-pg']?.at(-1) as number) / (results['headrow-postgresjs']?.at(-1) as number));
}

function m8(): number | undefined {
  return results.pg_evident_8?.at(-1);
}

/** Once: the big log copied into PostgreSQL and back out, and verified streaming from PostgreSQL. */
async function postgresBulk(): Promise<void> {
  const url = await pgLog(false, false);
  let started = performance.now();
  const { entries } = await copyLog({ from: big, to: url });
  add('pg_copy_in_per_s', entries / ((performance.now() - started) / 1000));
  started = performance.now();
  await copyLog({ from: url, to: join(scratch, `log-${dirs++}`) });
  add('pg_copy_out_per_s', entries / ((performance.now() - started) / 1000));
  const verify = JSON.parse(await runNode('verify-worker.js', [url])) as VerifyRun;
  if (!verify.ok) throw new Error('the PostgreSQL benchmark log failed verification');
  add('pg_verify_per_s', verify.size / verify.seconds);
  add('pg_verify_rss_mb', verify.maxRssMB);
  add('pg_entries', entries);
  for (const schema of pgSchemas) await pgAdmin?.query(`drop schema if exists ${quoted(schema)} cascade`);
  await pgAdmin?.end();
}

const TREE_SIZES = runs('proofs') ? (process.env.BENCH_TREE_SIZES ?? '1000000,10000000').split(',').map(Number) : [];
const proofs: ProofFigures[] = [];
for (const size of TREE_SIZES) {
  console.error(`building a ${size.toLocaleString('en-US')}-leaf tree for proof timings...`);
  proofs.push(await proofFigures(size));
}

const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)])) as Record<string, number>;
const get = (k: string) => m[k] as number;
const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, runs: RUNS, ms: MS };
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');

const rows: [string, string, string][] = [];
if (runs('appends')) {
  rows.push(
    ['durable appends/s, 1 caller', int(get('evident_1')), `${ratio(get('evident_1'), get('o1head_b'))} (b)`],
    [
      'durable appendBatch calls/s of 2 entries, 1 caller',
      int(get('evident_batch_1')),
      `${ratio(get('evident_batch_1'), get('evident_1'))} appends (its range recorded first: one more sync)`,
    ],
    ['durable appends/s, 16 callers', int(get('evident_16')), `${ratio(get('evident_16'), get('o1head_b'))} (b)`],
    [
      'durable appends/s, 256 callers',
      int(get('evident_256')),
      `${ratio(get('evident_256'), get('o1head_b'))} (b), ${ratio(get('evident_256'), get('pino_c'))} (c)`,
    ],
    [
      'durable appends/s, 4 processes × 64 callers',
      int(get('evident_4x64')),
      `${ratio(get('evident_4x64'), get('o1head_b'))} (b)`,
    ],
    ['(a) naive: lock + full scan + fsync per event', int(get('naive_a')), 'baseline'],
    ['(b) lock + O(1) head + fsync per event', int(get('o1head_b')), `${ratio(get('o1head_b'), get('naive_a'))} (a)`],
    ['(c) pino, sync file writes, no fsync, no chain', int(get('pino_c')), 'baseline'],
    [`appends/s at ${int(SMALL)} entries (16 callers)`, int(get('evident_16_at_1k')), ''],
    [
      `appends/s at ${int(BIG)} entries (16 callers)`,
      int(get('evident_16_at_big')),
      `${ratio(get('evident_16_at_big'), get('evident_16_at_1k'))} of the ${int(SMALL)} figure`,
    ],
  );
}
if (runs('threads')) {
  rows.push(
    ['durable appends/s, 4 threads × 64 callers, a Log per thread', int(get('threads_own')), 'baseline'],
    [
      'durable appends/s, 4 threads × 64 callers, one Log shared',
      int(get('threads_shared')),
      `${get('threads_ratio').toFixed(2)}×`,
    ],
  );
}
if (runs('verify')) {
  rows.push(
    ['verify, entries/s (1 thread)', int(get('verify_entries_per_s')), ''],
    [
      'verify, MB/s (1 thread)',
      get('verify_mb_per_s').toFixed(0),
      `${ratio(get('verify_mb_per_s'), get('sha256sum_mb_per_s'))} sha256sum`,
    ],
    [
      `verify, entries/s (${machine.cores} threads)`,
      int(get('verify_parallel_entries_per_s')),
      `${ratio(get('verify_parallel_entries_per_s'), get('verify_entries_per_s'))} 1 thread`,
    ],
    ['sha256sum on the same file, MB/s', get('sha256sum_mb_per_s').toFixed(0), 'baseline'],
    [
      `verify peak RSS, ${int(BIG)} entries (${(bigBytes / 1e6).toFixed(0)} MB), 1 thread`,
      `${get('verify_peak_rss_mb').toFixed(0)} MB`,
      '',
    ],
    [`verify peak RSS, ${machine.cores} threads`, `${get('verify_parallel_peak_rss_mb').toFixed(0)} MB`, ''],
  );
}

if (runs('import')) {
  rows.push([`evident append --batch, entries/s (${int(IMPORT)} piped in)`, int(get('import_per_s')), '']);
}
if (reference !== null) {
  for (const [what, key] of [
    ['16 callers', '16'],
    ['256 callers', '256'],
    ['4 processes × 64 callers', '4x64'],
  ] as const) {
    rows.push(
      [`${what}: reference build ${reference.name}`, int(get(`reference_${key}`)), 'baseline'],
      [`${what}: this build`, int(get(`current_${key}`)), `${get(`current_ratio_${key}`).toFixed(2)}×`],
    );
  }
}
if (runs('overhead')) {
  for (const [what, key] of [
    ['16 callers', '16'],
    ['256 callers', '256'],
    ['4 processes × 64 callers', '4x64'],
  ] as const) {
    rows.push(
      [`${what}: a log that does not sign`, int(get(`plain_${key}`)), 'baseline'],
      [
        `${what}: a signing log (default interval)`,
        int(get(`signed_${key}`)),
        `${get(`signed_ratio_${key}`).toFixed(2)}×`,
      ],
    );
  }
  rows.push([
    '4 processes × 64 callers: no signing, another process using ¼ core',
    int(get('burnt_4x64')),
    `${get('burnt_ratio_4x64').toFixed(2)}×`,
  ]);
}
if (runs('postgres')) {
  for (const processes of [1, 4, 8]) {
    rows.push([
      `PostgreSQL: durable appends/s, ${processes} process(es) × 64 callers`,
      int(get(`pg_evident_${processes}`)),
      `p50 ${get(`pg_evident_${processes}_p50`).toFixed(1)} ms, p99 ${get(`pg_evident_${processes}_p99`).toFixed(1)} ms`,
    ]);
  }
  rows.push(
    ['PostgreSQL (a): naive, advisory lock + ORDER BY seq DESC + 1 row/tx, 8 × 64', int(get('pg_naive_8')), 'baseline'],
    ['PostgreSQL: evident, 8 × 64, against (a)', '', `${get('pg_ratio_naive_8').toFixed(1)}×`],
    ['PostgreSQL (b): bare multi-row INSERT, no chain, no lock, 8 × 64', int(get('pg_insert_8')), 'baseline'],
    ['PostgreSQL: evident, 8 × 64, against (b)', '', `${get('pg_ratio_insert_8').toFixed(2)}×`],
    [`PostgreSQL: copy in, entries/s (${int(get('pg_entries'))} entries)`, int(get('pg_copy_in_per_s')), ''],
    ['PostgreSQL: copy out to a directory, entries/s', int(get('pg_copy_out_per_s')), ''],
    ['PostgreSQL: verify streaming, entries/s', int(get('pg_verify_per_s')), ''],
    ['PostgreSQL: verify peak RSS', `${get('pg_verify_rss_mb').toFixed(0)} MB`, ''],
  );
}
if (runs('pgclients')) {
  rows.push(
    [
      'PostgreSQL clients, commit shape, 1 × 64: postgres.js 3.4.9',
      int(get('headrow-postgresjs')),
      `baseline, p99 ${get('headrow-postgresjs_p99').toFixed(1)} ms`,
    ],
    [
      'PostgreSQL clients, commit shape, 1 × 64: node-postgres (pg) 8.23',
      int(get('headrow-pg')),
      `${get('pgclients_ratio').toFixed(2)}× postgres.js, p99 ${get('headrow-pg_p99').toFixed(1)} ms`,
    ],
  );
}
if (runs('http')) {
  rows.push(
    [
      'HTTP (a): fastify route, parses the JSON body, answers 201, 64 connections',
      int(get('http_baseline')),
      'baseline',
    ],
    [
      'HTTP: durable single-entry appends/s, 64 connections',
      int(get('http_appends')),
      `${get('http_ratio').toFixed(2)}× (a), p99 ${get('http_append_p99').toFixed(0)} ms`,
    ],
    [
      'HTTP: the same, each with an Idempotency-Key',
      int(get('http_keyed')),
      `${get('http_keyed_ratio').toFixed(2)}× without`,
    ],
    ['HTTP: NDJSON batches of 1,000, entries/s (4 connections)', int(get('http_batch_entries')), ''],
    ['HTTP: GET /checkpoint, req/s', int(get('http_checkpoint')), ''],
    ['HTTP: GET a full tile (cached), req/s', int(get('http_tile')), ''],
    ['HTTP: GET a full entry bundle (cached), req/s', int(get('http_bundle')), ''],
  );
}
for (const p of proofs) {
  const n = int(p.size);
  rows.push(
    [
      `inclusion proof, ${n} leaves (median)`,
      `${p.inclusionMicros.toFixed(0)} µs`,
      `${p.tilesPerInclusion.toFixed(1)} tile reads`,
    ],
    [
      `consistency proof, ${n} leaves (median)`,
      `${p.consistencyMicros.toFixed(0)} µs`,
      `${p.tilesPerConsistency.toFixed(1)} tile reads`,
    ],
    [`receipt size, ${n} leaves`, `${p.receiptBytes} B`, ''],
  );
}

const width = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length))];
console.log(`\n${machine.cores} cores (${machine.cpu}), Node ${machine.node}, median of ${RUNS} runs\n`);
console.log(`| ${'measure'.padEnd(width[0] as number)} | ${'value'.padStart(width[1] as number)} | ratio |`);
console.log(`|${'-'.repeat((width[0] as number) + 2)}|${'-'.repeat((width[1] as number) + 2)}|---|`);
for (const [a, b, c] of rows)
  console.log(`| ${a.padEnd(width[0] as number)} | ${b.padStart(width[1] as number)} | ${c} |`);

const out = join(here, '..', '..', 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'latest.json'),
  `${JSON.stringify({ machine, medians: m, samples: results, proofs }, null, 2)}\n`,
);
console.log(`\nwritten: bench/results/latest.json`);
