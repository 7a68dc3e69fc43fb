/**
 * A log in PostgreSQL, against a real server: one pool per process however
 * its first callers race; many writer processes never fork the chain while
 * readers verify; connections killed mid-commit lose nothing acknowledged
 * and leave nothing half written; the schema is made once and refused when
 * it holds something else; an owner who bypasses the append-only triggers
 * is caught by verify, naming the entry, with the file store's reasons.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import type { Entry } from '../../../src/entry.js';
import { Log } from '../../../src/log.js';
import { openPools, parsePostgresUrl, quoted } from '../../../src/store/postgres/connection.js';
import type { WriterResult } from '../../fixtures/writer.js';
import {
  CLI,
  dropTestSchemas,
  FIXTURES,
  POSTGRES,
  postgresLog,
  ROOT,
  readStore,
  runNode,
  signingLog,
  until,
  verifyStore,
} from '../../helpers.js';

/** A connection of the test's own, as the database's owner, outside evident's pools. */
const admin = new pg.Pool({ connectionString: POSTGRES, max: 2, application_name: 'evident-test' });
admin.on('error', () => {}); // an idle connection the server ended (a restart) is dropped, not a crash
/** Runs `text` as the owner; its rows. */
const sql = async (text: string, values: unknown[] = []) => (await admin.query(text, values)).rows;
after(async () => {
  await admin.end();
  await dropTestSchemas();
});

/** The quoted schema of a store URL. */
const schemaOf = (url: string) => quoted(parsePostgresUrl(url).schema);

async function appendN(url: string, n: number, actor = 'a'): Promise<Entry[]> {
  const log = new Log({ store: url, create: true });
  const entries = await log.appendBatch(Array.from({ length: n }, (_, i) => ({ actor, action: 'x.y', data: { i } })));
  await log.close();
  return entries;
}

describe('a PostgreSQL log', () => {
  it('has one pool per process, however many first callers race to open it', async () => {
    const url = postgresLog();
    assert.equal(openPools(), 0);
    const log = new Log({ store: url, create: true });
    const others = Array.from({ length: 3 }, () => new Log({ store: url, create: true }));
    // Ten callers append at once before anything is open, on one log and on three more of the same store.
    const appended = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => log.append({ actor: `racer-${i}`, action: 'x.y' })),
      ...others.map((other, i) => other.append({ actor: `other-${i}`, action: 'x.y' })),
    ]);
    assert.equal(openPools(), 1, 'one pool for the database, shared');
    assert.deepEqual(
      appended.map((e) => e.seq).sort((a, b) => a - b),
      Array.from({ length: 13 }, (_, i) => i),
    );
    await Promise.all([log, ...others].map((l) => l.close()));
    assert.equal(openPools(), 0, 'ended with its last user');
    assert.equal((await verifyStore(url)).size, 13);
  });

  it('8 writer processes × 64 callers, while 2 processes read and verify: exactly what was acknowledged', async () => {
    const url = postgresLog();
    await (await Log.open({ store: url, create: true })).close();
    const PER_WRITER = 200;
    const total = 8 * PER_WRITER;
    const writers = Array.from({ length: 8 }, (_, i) =>
      runNode(join(FIXTURES, 'writer.js'), [url, `writer-${i}`, String(PER_WRITER), '64']).then((ran) => {
        assert.equal(ran.code, 0, ran.stderr);
        return JSON.parse(ran.stdout) as WriterResult;
      }),
    );
    const readers = Array.from({ length: 2 }, () =>
      runNode(join(FIXTURES, 'reader.js'), [url, String(total)]).then((ran) => {
        assert.equal(ran.code, 0, ran.stderr);
        return JSON.parse(ran.stdout) as { rounds: number; problem: string | null };
      }),
    );
    const acked = (await Promise.all(writers)).flatMap((r) => r.acked);
    for (const reader of await Promise.all(readers)) {
      assert.equal(reader.problem, null);
      assert.ok(reader.rounds >= 1);
    }
    assert.equal(acked.length, total);
    const entries = await readStore(url);
    assert.deepEqual(
      entries.map((e) => e.seq),
      Array.from({ length: total }, (_, i) => i),
      'seqs contiguous',
    );
    const seqOf = new Map(entries.map((e) => [e.id, e.seq]));
    assert.equal(seqOf.size, total, 'no duplicate');
    for (const a of acked) assert.equal(seqOf.get(a.id), a.seq, 'acknowledged at its seq');
    const log = new Log({ store: url, readOnly: true });
    const result = await log.verify();
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    await log.treeHead(); // the tree of every entry builds from the leaves stored
    await log.close();
  });

  it("writers' connections killed mid-commit, again and again: nothing acknowledged lost, nothing half there", async () => {
    const url = postgresLog();
    const schema = schemaOf(url);
    const log = new Log({ store: url, create: true });
    await log.ready();
    const acked: { seq: number; id: string }[] = [];
    let failed = 0;
    let running = true;
    const caller = async (c: number) => {
      for (let n = 0; running; n++) {
        try {
          const entry = await log.append({ actor: `caller-${c}`, action: 'x.y', data: { n } });
          acked.push({ seq: entry.seq, id: entry.id });
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'EVIDENT_WRITE_FAILED', String(error));
          failed++;
        }
      }
    };
    const callers = Array.from({ length: 64 }, (_, c) => caller(c));
    let killed = 0;
    // On a loaded machine a kill may find every connection idle: go on until some commit was cut.
    for (let round = 0; round < 25 || (failed === 0 && round < 250); round++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      const rows = await sql(`select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'evident' and datname = current_database()`);
      killed += rows.length;
    }
    running = false;
    await Promise.all(callers);
    assert.ok(killed > 0 && failed > 0, `connections were killed (${killed}) and some commits failed (${failed})`);
    const after = await log.append({ actor: 'after', action: 'x.y' }); // appends resume
    await log.close();
    const entries = await readStore(url);
    const seqOf = new Map(entries.map((e) => [e.id, e.seq]));
    assert.equal(seqOf.size, entries.length, 'no duplicate');
    for (const a of acked) assert.equal(seqOf.get(a.id), a.seq, 'every acknowledged entry, at its seq');
    assert.equal(seqOf.get(after.id), after.seq);
    const result = await verifyStore(url);
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.equal(result.size, entries.length);
    const [head] = await sql(`select size from ${schema}.head`);
    assert.equal(Number(head?.size), entries.length, 'the head moved only with whole batches');
  });

  it('an append or a read on a pooled connection the server ended while idle goes through on a fresh one', async () => {
    const url = postgresLog();
    const log = new Log({ store: url, create: true });
    await log.append({ actor: 'a', action: 'x.y' });
    for (let round = 0; round < 20; round++) {
      // Every idle connection of the pool is ended by the server; the next append must not be refused for it.
      await sql(`select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'evident' and datname = current_database()`);
      if (round % 2 === 1) assert.ok((await log.head()).size > 0, 'reads too: the head first on odd rounds');
      await Promise.all(
        Array.from({ length: 4 }, (_, i) => log.append({ actor: `after-${round}`, action: 'x.y', data: { i } })),
      );
    }
    await log.close();
    assert.equal((await verifyStore(url)).size, 81);
  });

  it('tail -f follows entries another process appends', async () => {
    const url = postgresLog();
    await appendN(url, 2);
    const tail = spawn(process.execPath, [CLI, 'tail', '-f', '-n', '1', '--json', '--store', url]);
    let out = '';
    tail.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    try {
      await until(() => out.split('\n').length > 1, 'the last entry printed');
      const appended = await runNode(join(FIXTURES, 'writer.js'), [url, 'elsewhere', '3', '1']);
      assert.equal(appended.code, 0, appended.stderr);
      await until(() => out.split('\n').filter(Boolean).length === 4, 'the three new entries printed', 10_000);
      const printed = out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Entry);
      assert.deepEqual(
        printed.map((e) => [e.seq, e.actor]),
        [
          [1, 'a'],
          [2, 'elsewhere'],
          [3, 'elsewhere'],
          [4, 'elsewhere'],
        ],
      );
    } finally {
      tail.kill();
    }
  });

  it('is made by init once, safely twice, and never in a schema that holds something else', async () => {
    const url = postgresLog();
    const schema = schemaOf(url);
    await assert.rejects(new Log({ store: url }).ready(), { code: 'EVIDENT_NO_LOG' });
    await Promise.all([Log.init({ store: url }), Log.init({ store: url })]);
    await Log.init({ store: url });
    const [version] = await sql(`select value from ${schema}.meta where key = 'version'`);
    assert.equal(version?.value, '1');
    const foreign = postgresLog();
    await sql(`create schema ${schemaOf(foreign)}`);
    await sql(`create table ${schemaOf(foreign)}.users (id int)`);
    for (const open of [() => Log.init({ store: foreign }), () => new Log({ store: foreign }).ready()]) {
      await assert.rejects(open(), {
        code: 'EVIDENT_INVALID_OPTION',
        message: /holds something other than an evident log/,
      });
    }
    const [tables] = await sql('select count(*)::int as n from information_schema.tables where table_schema = $1', [
      parsePostgresUrl(foreign).schema,
    ]);
    assert.equal(tables?.n, 1, 'nothing written there');
    // Not only tables: any object of another's in the schema, even one named as evident names its own.
    for (const object of [
      'sequence counter',
      "type mood as enum ('ok')",
      "function refuse_change() returns int as 'select 1' language sql",
    ]) {
      const other = postgresLog();
      await sql(`create schema ${schemaOf(other)}`);
      await sql(`create ${object.replace(/^(\w+) /, `$1 ${schemaOf(other)}.`)}`);
      await assert.rejects(
        Log.init({ store: other }),
        { code: 'EVIDENT_INVALID_OPTION', message: /holds .*\?schema=NAME/ },
        object,
      );
    }
  });

  it("takes its URL's parameters as given or refuses them: unknown ones, a bad port, a timeout, a password kept out of messages", async () => {
    const url = postgresLog();
    for (const bad of ['&port=abc', '&port=0', '&port=70000', '&connectionTimeoutMillis=soon']) {
      await assert.rejects(Log.init({ store: `${url}${bad}` }), { code: 'EVIDENT_INVALID_OPTION' }, bad);
    }
    // A misspelt parameter would open the default schema's log instead of the one meant.
    for (const bad of ['&shema=audit', '&binary=true', '&sslmod=require', '&db=other']) {
      await assert.rejects(
        Log.init({ store: `${url}${bad}` }),
        { code: 'EVIDENT_INVALID_OPTION', message: /is not a parameter of a PostgreSQL store URL/ },
        bad,
      );
    }
    await Log.init({ store: `${url}&application_name=audit&statement_timeout=5000` });
    // A server that accepts connections and never answers: given up after the URL's connect timeout.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const started = Date.now();
    try {
      await assert.rejects(
        Log.init({ store: `postgres://u@127.0.0.1:${port}/db?password=hunter2&connectionTimeoutMillis=300` }),
        (error: Error) => {
          assert.match(error.message, /timeout/);
          assert.ok(!error.message.includes('hunter2'), error.message);
          assert.match(error.message, /password=\*\*\*/);
          return true;
        },
      );
    } finally {
      silent.close();
    }
    assert.ok(Date.now() - started < 5000, 'the URL timeout, not the 10 s default');
  });

  it('refuses UPDATE, DELETE and TRUNCATE of entries, even from the owner', async () => {
    const url = postgresLog();
    const s = schemaOf(url);
    await appendN(url, 3);
    for (const change of [
      `update ${s}.entries set actor = 'mallory' where seq = 1`,
      `delete from ${s}.entries where seq = 2`,
      `truncate ${s}.entries`,
    ]) {
      await assert.rejects(sql(change), /the log is append-only/);
    }
    assert.equal((await verifyStore(url)).size, 3);
  });
});

describe('the roles docs/postgres.md sets up', () => {
  it('a writer appends, integrates and signs; a reader verifies; neither changes an entry', async () => {
    const url = postgresLog();
    const schema = parsePostgresUrl(url).schema;
    const keys = signingLog('roles.example/log');
    await Log.init({ store: url, signingKey: keys.keyFile });
    const [writer, reader] = [`${schema}_writer`, `${schema}_reader`];
    const doc = readFileSync(join(ROOT, 'docs', 'postgres.md'), 'utf8');
    const grants = (/```sql\n([\s\S]*?)```/.exec(doc)?.[1] ?? '')
      .replaceAll('evident_writer', writer)
      .replaceAll('evident_reader', reader)
      .replaceAll('schema evident', `schema ${schema}`)
      .replaceAll('evident.', `${schema}.`);
    assert.match(grants, /grant insert on \S+\.entries/);
    await sql(grants);
    const as = (role: string) => url.replace('postgres@', `${role}@`);
    try {
      const log = new Log({ store: as(writer) });
      const entries = await log.appendBatch(
        Array.from({ length: 300 }, (_, i) => ({ actor: 'w', action: 'x.y', data: { i } })),
      );
      const receipt = await log.receipt((entries.at(-1) as Entry).seq);
      assert.match(receipt, /^c2sp.org\/tlog-proof@v1\nindex 300\n/);
      await log.close();
      const result = await verifyStore(as(reader));
      assert.deepEqual([result.ok, result.size], [true, 301]);
      assert.ok(result.root !== undefined, 'against its own signed checkpoint');
      const refused = new Log({ store: as(reader) });
      await assert.rejects(refused.append({ actor: 'r', action: 'x.y' }), {
        code: 'EVIDENT_WRITE_FAILED',
        message: /permission denied/,
      });
      await refused.close().catch(() => undefined);
      const writerSql = new pg.Client({ connectionString: POSTGRES.replace('postgres@', `${writer}@`) });
      await writerSql.connect();
      try {
        for (const change of [
          `update ${schema}.entries set actor = 'mallory' where seq = 1`,
          `delete from ${schema}.entries where seq = 1`,
          `update ${schema}.meta set value = '/tmp/other.key' where key = 'key_file'`,
          `drop table ${schema}.entries`,
        ]) {
          await assert.rejects(writerSql.query(change), /permission denied|must be owner/, change);
        }
      } finally {
        await writerSql.end();
      }
    } finally {
      await sql(`drop schema ${quoted(schema)} cascade`);
      await sql(`drop role ${writer}`);
      await sql(`drop role ${reader}`);
    }
  });
});

describe('an owner who bypasses the triggers is caught by verify', () => {
  /** A log of 10 entries (or `size`) changed by `change` with the triggers off, as an owner can. */
  async function tampered(change: (s: string) => string[], signing = false, size = 10) {
    const url = postgresLog();
    const keys = signing ? signingLog('pg.example/log') : null;
    if (keys !== null) await Log.init({ store: url, signingKey: keys.keyFile });
    const log = new Log({ store: url, create: true });
    await log.appendBatch(
      Array.from({ length: signing ? size - 1 : size }, (_, i) => ({
        actor: 'a',
        action: 'x.y',
        targets: [`t${i}`],
        data: { i },
      })),
    );
    await log.close();
    const s = schemaOf(url);
    await sql(
      `begin; alter table ${s}.entries disable trigger user; ${change(s).join('; ')}; ` +
        `alter table ${s}.entries enable trigger user; commit`,
    );
    return { url, result: await verifyStore(url) };
  }

  it('an edited data member: hash-mismatch at that entry', async () => {
    const { result } = await tampered((s) => [
      `update ${s}.entries set line = replace(line, '"i":4', '"i":40') where seq = 4`,
    ]);
    assert.deepEqual(
      [result.ok, result.size, result.failure?.seq, result.failure?.reason],
      [false, 4, 4, 'hash-mismatch'],
    );
  });

  it("a hash or prev column that is not its line's: hash-mismatch at that row, however far in", async () => {
    const hash = await tampered((s) => [`update ${s}.entries set hash = sha256(hash) where seq = 6`]);
    assert.deepEqual(
      [hash.result.size, hash.result.failure?.seq, hash.result.failure?.reason],
      [6, 6, 'hash-mismatch'],
    );
    assert.match(hash.result.failure?.message ?? '', /the row's seq or hash column .* is not its entry's/);
    const prev = await tampered((s) => [`update ${s}.entries set prev = sha256(prev) where seq = 2`]);
    assert.deepEqual([prev.result.failure?.seq, prev.result.failure?.reason], [2, 'hash-mismatch']);
    assert.match(prev.result.failure?.message ?? '', /prev column is not its entry's/);
    // Bytes moved from one column into the next leave the columns' bytes, joined, as they were.
    for (const move of [
      "hash = hash || prev, prev = ''::bytea",
      'hash = substring(hash for 31), prev = substring(hash from 32) || prev',
    ]) {
      const moved = await tampered((s) => [`update ${s}.entries set ${move} where seq = 5`]);
      assert.deepEqual([moved.result.failure?.seq, moved.result.failure?.reason], [5, 'hash-mismatch'], move);
    }
    // A bad column before a bad line in the same page is the first failure.
    const both = await tampered((s) => [
      `update ${s}.entries set hash = sha256(hash) where seq = 3`,
      `update ${s}.entries set line = replace(line, '"i":7', '"i":70') where seq = 7`,
    ]);
    assert.deepEqual([both.result.failure?.seq, both.result.failure?.reason], [3, 'hash-mismatch']);
    // Past the first page of rows read at once.
    const far = await tampered((s) => [`update ${s}.entries set hash = sha256(hash) where seq = 5500`], false, 6000);
    assert.deepEqual([far.result.size, far.result.failure?.seq], [5500, 5500]);
  });

  it("an actor, action, ts or targets column that is not its line's: named by verify, refused by reads", async () => {
    for (const [change, column] of [
      ["actor = 'mallory'", 'actor'],
      ["action = 'zzz.hidden'", 'action'],
      ["ts = '1999-01-01T00:00:00.000Z'", 'ts'],
      ["targets = '{hidden}'", 'targets'],
      ['targets = null', 'targets'],
      ["targets = '{t3,t3}'", 'targets'],
    ]) {
      const { result } = await tampered((s) => [`update ${s}.entries set ${change} where seq = 3`]);
      assert.deepEqual([result.size, result.failure?.seq, result.failure?.reason], [3, 3, 'hash-mismatch'], change);
      assert.match(result.failure?.message ?? '', new RegExp(`the row's ${column} column is not its entry's`), change);
    }
    // A column made NULL would drop its row from a join and free its separators for the row before to carry.
    const nulled = await tampered((s) => [
      `alter table ${s}.entries alter column actor drop not null`,
      `update ${s}.entries e set action = e.action || E'\\x01' || coalesce(to_json(e.targets)::text, '-') || E'\\x02' ||
        n.ts || E'\\x01' || n.actor || E'\\x01' || n.action, targets = n.targets
        from ${s}.entries n where e.seq = 2 and n.seq = 3`,
      `update ${s}.entries set actor = null where seq = 3`,
    ]);
    assert.deepEqual([nulled.result.failure?.seq, nulled.result.failure?.reason], [2, 'hash-mismatch']);
    const far = await tampered((s) => [`update ${s}.entries set actor = 'b' where seq = 5100`], false, 5200);
    assert.deepEqual([far.result.size, far.result.failure?.seq], [5100, 5100]);
    // Found by the changed column, the entry is not shown as a match: the read fails, naming it.
    const { url } = await tampered((s) => [`update ${s}.entries set actor = 'mallory' where seq = 3`]);
    const reader = new Log({ store: url, readOnly: true });
    const read = async (query: object) => {
      const seqs: number[] = [];
      for await (const entry of reader.read(query)) seqs.push(entry.seq);
      return seqs;
    };
    await assert.rejects(read({ actor: 'mallory' }), { code: 'EVIDENT_LOG_CORRUPT', message: /entry 3 was found by/ });
    await reader.close();
  });

  it('a deleted row: seq-gap where it was', async () => {
    const { result } = await tampered((s) => [`delete from ${s}.entries where seq = 6`]);
    assert.deepEqual([result.size, result.failure?.seq, result.failure?.reason], [6, 6, 'seq-gap']);
  });

  it('two seqs swapped: the first of them is named', async () => {
    const { result } = await tampered((s) => [
      `update ${s}.entries set seq = -1 where seq = 3`,
      `update ${s}.entries set seq = 3 where seq = 5`,
      `update ${s}.entries set seq = 5 where seq = -1`,
    ]);
    assert.equal(result.ok, false);
    assert.equal(result.failure?.seq, 3);
    assert.equal(result.size, 3);
  });

  it("a signing log's tail cut: truncated, and appends refused", async () => {
    const { url, result } = await tampered((s) => [`delete from ${s}.entries where seq >= 7`], true);
    // The head row still says 10: the store reads what is there, and the checkpoint says what was.
    assert.equal(result.ok, false);
    assert.equal(result.failure?.reason, 'truncated');
    assert.equal(result.failure?.seq, 7);
    const writer = new Log({ store: url });
    await assert.rejects(writer.append({ actor: 'b', action: 'x.y' }), {
      code: /EVIDENT_(HISTORY_MISMATCH|LOG_CORRUPT)/,
    });
    await writer.close().catch(() => undefined);
  });
});
