/**
 * The record of a PostgreSQL log: one row per entry, holding its canonical
 * line. A commit is one transaction that locks the single head row (SELECT …
 * FOR UPDATE), seals the batch after it, inserts the rows and moves the
 * head: commits are serial, seqs contiguous, and each commits in seq order,
 * so a reader following the log never skips a row. No sequence (nextval
 * leaves gaps and commits out of order). Inside the lock there are two round
 * trips: the head read, then the inserts, the head update and COMMIT sent
 * at once.
 */
import { ChainVerifier, parseEntry } from '../../chain.js';
import { EMPTY_HEAD, type Entry, GENESIS_PREV, type Head } from '../../entry.js';
import { LogCorruptError } from '../../errors.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import type {
  ChainCheck,
  CommittedBatch,
  EntryStore,
  Leaves,
  ReadQuery,
  UnsealedBatch,
  VerifyResult,
} from '../store.js';
import { databaseError, type Sql } from './connection.js';

/** Rows read per query when streaming. */
const PAGE = 5000;

interface HeadRow {
  log: string | null;
  size: string;
  hash: string;
  ts: string | null;
}

const headOfRow = (row: HeadRow): Head => ({ log: row.log, size: Number(row.size), hash: row.hash, ts: row.ts });

export class PostgresEntries implements EntryStore {
  readonly #sql: () => Sql;
  readonly #schema: string;
  readonly #location: string;

  constructor(sql: () => Sql, schema: string, location: string) {
    this.#sql = sql;
    this.#schema = schema;
    this.#location = location;
  }

  async commit(batch: UnsealedBatch): Promise<CommittedBatch> {
    const sql = this.#sql();
    const s = sql(this.#schema);
    try {
      return await sql.begin(async (tx) => {
        const [row] = await tx<HeadRow[]>`select log, size, hash, ts from ${s}.head for update`;
        if (row === undefined) throw new LogCorruptError(`${this.#location}: the head row is gone`);
        const after = headOfRow(row);
        const sealed = batch.seal(after);
        const rows = rowsOf(sealed.lines, sealed.leaves, after);
        const { head } = sealed;
        // Sent together: postgres.js pipelines the queries of a transaction that are not awaited one by one.
        await Promise.all([
          tx`insert into ${s}.entries (seq, line, hash, prev, ts, actor, action, targets)
            select seq, line, decode(hash, 'hex'), decode(prev, 'hex'), ts, actor, action, targets::text[]
            from unnest(${rows.seq}::bigint[], ${rows.line}::text[], ${rows.hash}::text[], ${rows.prev}::text[],
              ${rows.ts}::text[], ${rows.actor}::text[], ${rows.action}::text[], ${rows.targets}::text[])
              as r(seq, line, hash, prev, ts, actor, action, targets)`,
          tx`update ${s}.head set log = ${head.log}, size = ${head.size}, hash = ${head.hash}, ts = ${head.ts}`,
        ]);
        return { after, head, leaves: sealed.leaves };
      });
    } catch (error) {
      throw databaseError(error, 'write', this.#location);
    }
  }

  async head(): Promise<Head> {
    const sql = this.#sql();
    try {
      const [row] = await sql<HeadRow[]>`select log, size, hash, ts from ${sql(this.#schema)}.head`;
      if (row === undefined) throw new LogCorruptError(`${this.#location}: the head row is gone`);
      return headOfRow(row);
    } catch (error) {
      throw databaseError(error, 'read', this.#location);
    }
  }

  async *read(query: ReadQuery): AsyncGenerator<Entry> {
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    let next = Math.max(0, query.fromSeq ?? 0);
    let count = 0;
    while (count < limit) {
      let rows: { seq: string; line: string }[];
      try {
        rows = await this.#page(query, next, Math.min(PAGE, limit - count));
      } catch (error) {
        throw databaseError(error, 'read', this.#location);
      }
      for (const row of rows) {
        yield this.#entryOf(row.line, Number(row.seq));
        count++;
      }
      if (rows.length === 0) return;
      next = Number((rows.at(-1) as { seq: string }).seq) + 1;
    }
  }

  /** Up to `limit` rows matching `query` from seq `from` on, by the indexes. */
  #page(query: ReadQuery, from: number, limit: number) {
    const sql = this.#sql();
    const action = query.action;
    const family = action?.endsWith('.*') ? action.slice(0, -2) : undefined;
    const like = (text: string) => `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`;
    return sql<{ seq: string; line: string }[]>`
      select seq, line from ${sql(this.#schema)}.entries
      where seq >= ${from}
        ${query.toSeq === undefined ? sql`` : sql`and seq <= ${query.toSeq}`}
        ${query.since === undefined ? sql`` : sql`and ts >= ${query.since}`}
        ${query.until === undefined ? sql`` : sql`and ts <= ${query.until}`}
        ${query.actor === undefined ? sql`` : sql`and actor = ${query.actor}`}
        ${
          action === undefined
            ? sql``
            : family === undefined
              ? sql`and action = ${action}`
              : sql`and (action = ${family} or action like ${like(family)})`
        }
        ${query.target === undefined ? sql`` : sql`and targets @> array[${query.target}]::text[]`}
      order by seq limit ${limit}`;
  }

  #entryOf(line: string, seq: number): Entry {
    const entry = parseEntry(line);
    if (typeof entry === 'string') throw new LogCorruptError(`${this.#location}: entry ${seq} is malformed: ${entry}`);
    if (entry.seq !== seq) {
      throw new LogCorruptError(`${this.#location}: the row of seq ${seq} holds entry ${entry.seq}`);
    }
    return entry;
  }

  async leaves(from: number, to: number): Promise<Leaves> {
    const sql = this.#sql();
    const out = Buffer.allocUnsafe((to - from) * HASH_SIZE);
    let prev: Buffer | null = null;
    let last: Buffer | null = null;
    try {
      for (let at = from; at < to; ) {
        const rows = await sql<{ seq: string; hash: Buffer; prev: Buffer }[]>`
          select seq, hash, prev from ${sql(this.#schema)}.entries
          where seq >= ${at} and seq < ${Math.min(to, at + PAGE * 4)} order by seq`;
        for (const row of rows) {
          const seq = Number(row.seq);
          if (seq !== at) throw new LogCorruptError(`${this.#location}: entry ${at} is missing`);
          if (last !== null && !row.prev.equals(last)) {
            throw new LogCorruptError(`${this.#location}: entry ${seq} does not follow entry ${seq - 1}`);
          }
          prev ??= row.prev;
          row.hash.copy(out, (seq - from) * HASH_SIZE);
          last = row.hash;
          at++;
        }
        if (rows.length === 0) throw new LogCorruptError(`${this.#location}: entry ${at} is missing`);
      }
    } catch (error) {
      throw databaseError(error, 'read', this.#location);
    }
    if (prev === null) {
      prev = from === 0 ? Buffer.from(GENESIS_PREV, 'hex') : (await this.leaves(from - 1, from)).leaves;
    }
    return { leaves: out, prev };
  }

  /**
   * Streams every line in seq order through the chain rules. Offsets are
   * where each line would start in the log exported as JSONL (`evident copy`
   * to a directory), so a failure names the same place in both. The columns
   * copied from a line must agree with it.
   */
  async verify(check: ChainCheck): Promise<VerifyResult> {
    const sql = this.#sql();
    const after = check.after ?? EMPTY_HEAD;
    const chain = new ChainVerifier(after);
    let offset = 0;
    try {
      if (after.size > 0) {
        const [row] = await sql<{ bytes: string }[]>`
          select coalesce(sum(octet_length(line) + 1), 0) as bytes from ${sql(this.#schema)}.entries
          where seq < ${after.size}`;
        offset = Number(row?.bytes ?? 0);
      }
      const [total] = await sql<{ bytes: string }[]>`
        select coalesce(sum(octet_length(line) + 1), 0) as bytes from ${sql(this.#schema)}.entries`;
      const totalBytes = Number(total?.bytes ?? 0);
      const start = offset;
      let next = after.size;
      let reported = 0;
      for (;;) {
        const rows = await sql<{ seq: string; line: string; hash: Buffer; prev: Buffer }[]>`
          select seq, line, hash, prev from ${sql(this.#schema)}.entries
          where seq >= ${next} order by seq limit ${PAGE}`;
        for (const row of rows) {
          const bytes = Buffer.from(row.line, 'utf8');
          const expectedPrev = chain.lastHash;
          const failure = chain.checkBytes(bytes, 0, bytes.length, offset);
          const { size, hash } = chain.head;
          if (failure !== null) return { ok: false, size, head: hash, bytes: offset - start, failure };
          const columns =
            Number(row.seq) !== size - 1 || row.hash.toString('hex') !== hash
              ? `the row's seq or hash column (${row.seq}, ${row.hash.toString('hex')}) is not its entry's`
              : row.prev.toString('hex') !== expectedPrev
                ? "the row's prev column is not its entry's"
                : null;
          if (columns !== null) {
            const failure = { seq: size - 1, line: size, offset, reason: 'hash-mismatch', message: columns } as const;
            return { ok: false, size: size - 1, head: expectedPrev, bytes: offset - start, failure };
          }
          offset += bytes.length + 1;
          check.onLeaf?.(row.hash);
        }
        if (check.onProgress !== undefined && (rows.length === 0 || offset - reported >= 4 << 20)) {
          reported = offset;
          check.onProgress({ entries: chain.head.size - after.size, bytes: offset - start, totalBytes });
        }
        if (rows.length < PAGE) break;
        next = Number((rows.at(-1) as { seq: string }).seq) + 1;
      }
      const { size, hash } = chain.head;
      return { ok: true, size, head: hash, bytes: offset - start };
    } catch (error) {
      throw databaseError(error, 'read', this.#location);
    }
  }
}

/** The rows of a sealed batch: each line split out, with the columns the indexes need. */
function rowsOf(lines: Buffer, leaves: Buffer, after: Head) {
  const rows = {
    seq: [] as number[],
    line: [] as string[],
    hash: [] as string[],
    prev: [] as string[],
    ts: [] as string[],
    actor: [] as string[],
    action: [] as string[],
    targets: [] as (string | null)[],
  };
  let prev = after.hash;
  let start = 0;
  for (let i = 0; start < lines.length; i++) {
    const end = lines.indexOf(0x0a, start);
    const line = lines.toString('utf8', start, end);
    const entry = JSON.parse(line) as Entry;
    const hash = leaves.toString('hex', i * HASH_SIZE, (i + 1) * HASH_SIZE);
    rows.seq.push(after.size + i);
    rows.line.push(line);
    rows.hash.push(hash);
    rows.prev.push(prev);
    rows.ts.push(entry.ts);
    rows.actor.push(entry.actor);
    rows.action.push(entry.action);
    rows.targets.push(entry.targets === undefined ? null : `{${entry.targets.map(arrayItem).join(',')}}`);
    prev = hash;
    start = end + 1;
  }
  return rows;
}

/** One element of a PostgreSQL array literal, quoted. */
function arrayItem(text: string): string {
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
