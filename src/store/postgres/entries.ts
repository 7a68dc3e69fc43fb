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
import { createHash } from 'node:crypto';
import { ChainVerifier, type FailureReason, type IndexedMembers, parseEntry } from '../../chain.js';
import { EMPTY_HEAD, type Entry, GENESIS_PREV, type Head } from '../../entry.js';
import { LogCorruptError } from '../../errors.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import { matchesQuery } from '../query.js';
import type {
  ChainCheck,
  CommittedBatch,
  EntryStore,
  Leaves,
  ReadQuery,
  UnsealedBatch,
  VerifyResult,
} from '../store.js';
import { connectionLost, databaseError, type Pool, quoted, withClient } from './connection.js';

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
  readonly #pool: () => Pool;
  /** The schema, quoted. */
  readonly #s: string;
  readonly #location: string;

  constructor(pool: () => Pool, schema: string, location: string) {
    this.#pool = pool;
    this.#s = quoted(schema);
    this.#location = location;
  }

  async commit(batch: UnsealedBatch): Promise<CommittedBatch> {
    for (let attempt = 0; ; attempt++) {
      let sent = false; // whether anything but BEGIN and the locking read went to the server
      try {
        return await this.#commitOnce(batch, () => {
          sent = true;
        });
      } catch (error) {
        // A pooled connection that died while idle (a killed backend, a restart) fails the first round trip,
        // before anything is written: the server rolls that back, and a fresh connection is safe to try once.
        if (!sent && attempt === 0 && connectionLost(error)) continue;
        throw databaseError(error, 'write', this.#location);
      }
    }
  }

  /** One commit on one connection; `sending` is called before the rows are sent. */
  #commitOnce(batch: UnsealedBatch, sending: () => void): Promise<CommittedBatch> {
    const s = this.#s;
    return withClient(this.#pool(), async (client) => {
      const [, locked] = await Promise.all([
        client.query('begin'),
        client.query<HeadRow>(`select log, size, hash, ts from ${s}.head for update`),
      ]);
      sending();
      const row = locked.rows[0];
      if (row === undefined) throw new LogCorruptError(`${this.#location}: the head row is gone`);
      const after = headOfRow(row);
      const sealed = batch.seal(after);
      const rows = rowsOf(sealed.lines, sealed.leaves, after);
      const { head } = sealed;
      // One round trip: the rows, the head moved, COMMIT. The caller is answered only once COMMIT is.
      await Promise.all([
        client.query(
          `insert into ${s}.entries (seq, line, hash, prev, ts, actor, action, targets)
            select seq, line, decode(hash, 'hex'), decode(prev, 'hex'), ts, actor, action, targets::text[]
            from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[]) as r(seq, line, hash, prev, ts, actor, action, targets)`,
          [rows.seq, rows.line, rows.hash, rows.prev, rows.ts, rows.actor, rows.action, rows.targets],
        ),
        client.query(`update ${s}.head set log = $1, size = $2, hash = $3, ts = $4`, [
          head.log,
          head.size,
          head.hash,
          head.ts,
        ]),
        client.query('commit'),
      ]);
      return { after, head, leaves: sealed.leaves };
    });
  }

  async head(): Promise<Head> {
    for (let attempt = 0; ; attempt++) {
      try {
        const row = (await this.#pool().query<HeadRow>(`select log, size, hash, ts from ${this.#s}.head`)).rows[0];
        if (row === undefined) throw new LogCorruptError(`${this.#location}: the head row is gone`);
        return headOfRow(row);
      } catch (error) {
        if (attempt === 0 && connectionLost(error)) continue; // a pooled connection ended while idle
        throw databaseError(error, 'read', this.#location);
      }
    }
  }

  async *read(query: ReadQuery): AsyncGenerator<Entry> {
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    let next = Math.max(0, query.fromSeq ?? 0);
    let count = 0;
    while (count < limit) {
      let rows: { seq: string; line: string }[];
      try {
        rows = await this.#page(query, next, Math.min(PAGE, limit - count)).catch((error: unknown) => {
          if (!connectionLost(error)) throw error;
          return this.#page(query, next, Math.min(PAGE, limit - count)); // once more, on a fresh connection
        });
      } catch (error) {
        throw databaseError(error, 'read', this.#location);
      }
      for (const row of rows) {
        const entry = this.#entryOf(row.line, Number(row.seq));
        // Rows are found by columns copied from the lines: a row an owner changed must not pass for a match.
        if (!matchesQuery(entry, query)) {
          throw new LogCorruptError(
            `${this.#location}: entry ${entry.seq} was found by columns its line does not hold: the table was ` +
              'changed (evident verify names the row)',
          );
        }
        yield entry;
        count++;
      }
      if (rows.length === 0) return;
      next = Number((rows.at(-1) as { seq: string }).seq) + 1;
    }
  }

  /** Up to `limit` rows matching `query` from seq `from` on, by the indexes. */
  async #page(query: ReadQuery, from: number, limit: number): Promise<{ seq: string; line: string }[]> {
    const values: unknown[] = [from];
    const where = ['seq >= $1'];
    const when = (condition: string, value: unknown) => {
      values.push(value);
      where.push(condition.replace('?', `$${values.length}`));
    };
    if (query.toSeq !== undefined) when('seq <= ?', query.toSeq);
    if (query.since !== undefined) when('ts >= ?', query.since);
    if (query.until !== undefined) when('ts <= ?', query.until);
    if (query.actor !== undefined) when('actor = ?', query.actor);
    const action = query.action;
    if (action?.endsWith('.*')) {
      // `proposal.*`: proposal itself, and every action under it (LIKE's own wildcards in the name escaped).
      const family = action.slice(0, -2);
      values.push(family, `${family.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`);
      where.push(`(action = $${values.length - 1} or action like $${values.length})`);
    } else if (action !== undefined) when('action = ?', action);
    if (query.target !== undefined) when('targets @> array[?]::text[]', query.target);
    values.push(limit);
    const text = `select seq, line from ${this.#s}.entries where ${where.join(' and ')} order by seq limit $${values.length}`;
    return (await this.#pool().query<{ seq: string; line: string }>(text, values)).rows;
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
    const pool = this.#pool();
    const out = Buffer.allocUnsafe((to - from) * HASH_SIZE);
    let prev: Buffer | null = null;
    let last: Buffer | null = null;
    try {
      for (let at = from; at < to; ) {
        const { rows } = await pool.query<{ seq: string; hash: Buffer; prev: Buffer }>(
          `select seq, hash, prev from ${this.#s}.entries where seq >= $1 and seq < $2 order by seq`,
          [at, Math.min(to, at + PAGE * 4)],
        );
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
   * copied from a line (seq, hash, prev) must agree with it: the database
   * gives a SHA-256 over each page's columns, which must be the digest of the
   * values its lines hold; only when it is not are the columns read, to name
   * the row. (Hex columns for every row cost a third of the time.)
   */
  async verify(check: ChainCheck): Promise<VerifyResult> {
    if ((check.threads ?? 1) > 1) {
      process.emitWarning(`evident: ${this.#location} is verified as one stream; threads are for directory logs`);
    }
    const pool = this.#pool();
    const bytesBefore = async (seq: number | null) => {
      const { rows } = await pool.query<{ bytes: string }>(
        `select coalesce(sum(octet_length(line) + 1), 0) as bytes from ${this.#s}.entries
        where $1::bigint is null or seq < $1`,
        [seq],
      );
      return Number(rows[0]?.bytes ?? 0);
    };
    const after = check.after ?? EMPTY_HEAD;
    const chain = new ChainVerifier(after);
    let offset = 0;
    try {
      if (after.size > 0) offset = await bytesBefore(after.size);
      // The whole table's size is a pass of its own: only for a progress bar.
      const totalBytes = check.onProgress === undefined ? 0 : await bytesBefore(null);
      const start = offset;
      let reported = 0;
      const page = (from: number) =>
        pool.query<{ seq: string; line: string }>(
          `select seq, line from ${this.#s}.entries where seq >= $1 order by seq limit $2`,
          [from, PAGE],
        );
      // The digest of the columns of rows first to last, as the database holds them.
      const digestOf = async (first: number, last: number) => {
        const { rows } = await pool.query<{ digest: string | null }>(
          // A row whose hash or prev is not 32 bytes adds a byte that no row's values can: bytes moved from one
          // column to the next would otherwise leave the joined bytes, and the digest, as they were.
          `select encode(sha256(string_agg(
              case when octet_length(hash) = 32 and octet_length(prev) = 32 then int8send(seq) || hash || prev
              else '\\x00'::bytea end, ''::bytea order by seq)), 'hex') || ' ' ||
            encode(sha256(textsend(string_agg(
              coalesce(ts, E'\\x03') || E'\\x01' || coalesce(actor, E'\\x03') || E'\\x01' || coalesce(action, E'\\x03')
                || E'\\x01' || coalesce(to_json(targets)::text, '-'),
              E'\\x02' order by seq))), 'hex') as digest
          from ${this.#s}.entries where seq between $1 and $2`,
          [first, last],
        );
        return rows[0]?.digest ?? null;
      };
      const failed = (seq: number, at: number, head: string, reason: FailureReason, message: string) => ({
        ok: false,
        size: seq,
        head,
        bytes: at - start,
        failure: { seq, line: seq + 1, offset: at, reason, message },
      });
      let coming = page(after.size);
      for (;;) {
        const { rows } = await coming;
        const last = Number(rows.at(-1)?.seq);
        // The next page, and this one's digest, are read while this one is checked.
        if (rows.length === PAGE) {
          coming = page(last + 1);
          coming.catch(() => undefined); // awaited next round, unless a failure ends the verify first
        }
        const digest = rows.length === 0 ? null : digestOf(Number((rows[0] as { seq: string }).seq), last);
        digest?.catch(() => undefined); // awaited below, unless a line fails first
        const columns = new PageColumns(rows.length);
        for (const row of rows) {
          const bytes = Buffer.from(row.line, 'utf8');
          const expectedPrev = chain.lastHash;
          const failure = chain.checkBytes(bytes, 0, bytes.length, offset);
          if (failure !== null) {
            // A row before it whose columns are not its entry's is the first bad one.
            const earlier = await this.#columnsDisagree(columns);
            if (earlier !== null)
              return failed(earlier.seq, earlier.offset, earlier.prev, 'hash-mismatch', earlier.why);
            return { ok: false, size: chain.head.size, head: chain.head.hash, bytes: offset - start, failure };
          }
          const indexed = chain.indexed as IndexedMembers;
          const leaf = columns.add(chain.head.size - 1, chain.head.hash, expectedPrev, indexed, offset);
          offset += bytes.length + 1;
          check.onLeaf?.(leaf);
        }
        if (digest !== null && columns.digest() !== (await digest)) {
          const bad = await this.#columnsDisagree(columns);
          if (bad !== null) return failed(bad.seq, bad.offset, bad.prev, 'hash-mismatch', bad.why);
          const first = columns.first;
          const why = `the rows from seq ${first.seq} changed while they were verified`;
          return failed(first.seq, first.offset, first.prev, 'hash-mismatch', why);
        }
        if (check.onProgress !== undefined && (rows.length === 0 || offset - reported >= 4 << 20)) {
          reported = offset;
          check.onProgress({ entries: chain.head.size - after.size, bytes: offset - start, totalBytes });
        }
        if (rows.length < PAGE) break;
      }
      const { size, hash } = chain.head;
      return { ok: true, size, head: hash, bytes: offset - start };
    } catch (error) {
      throw databaseError(error, 'read', this.#location);
    }
  }

  /** The first row of the page whose columns are not what its entry holds (which, and why); null if none. */
  async #columnsDisagree(
    columns: PageColumns,
  ): Promise<{ seq: number; offset: number; prev: string; why: string } | null> {
    if (columns.count === 0) return null;
    const { rows } = await this.#pool().query<{
      seq: string;
      hash: string;
      prev: string;
      ts: string;
      actor: string;
      action: string;
      targets: string | null;
    }>(
      `select seq, encode(hash, 'hex') as hash, encode(prev, 'hex') as prev, ts, actor, action,
        to_json(targets)::text as targets from ${this.#s}.entries where seq >= $1 order by seq limit $2`,
      [columns.first.seq, columns.count],
    );
    for (let i = 0; i < columns.count; i++) {
      const want = columns.at(i);
      const row = rows[i];
      let why: string | null = null;
      if (row === undefined || Number(row.seq) !== want.seq || row.hash !== want.hash) {
        why = `the row's seq or hash column (${row?.seq}, ${row?.hash}) is not its entry's`;
      } else if (row.prev !== want.prev) {
        why = "the row's prev column is not its entry's";
      } else {
        // The columns reads filter by: one changed would hide the entry from a query, or show it to another.
        const changed = (['ts', 'actor', 'action', 'targets'] as const).filter((name) => row[name] !== want[name]);
        if (changed.length > 0) why = `the row's ${changed.join(', ')} column is not its entry's (reads filter by it)`;
      }
      if (why !== null) return { seq: want.seq, offset: want.offset, prev: want.prev, why };
    }
    return null;
  }
}

/** A row's columns as a page's lines hold them: what the database's columns must say. */
interface RowColumns extends IndexedMembers {
  seq: number;
  hash: string;
  prev: string;
  /** Where the line would start in the log exported as JSONL. */
  offset: number;
}

/**
 * The columns the lines of a page hold, encoded as the database encodes its
 * own for the page's digests. Seq, hash and prev: per row an 8-byte
 * big-endian seq and the two 32-byte hashes. The columns reads filter by:
 * per row ts, actor, action and targets (JSON text, or `-` for none) joined
 * by U+0001, rows joined by U+0002. No value an entry may hold contains
 * either (control characters are refused, and JSON escapes them), so a page
 * has exactly 3 of the one a row and one fewer of the other than rows: a
 * column changed to hold one cannot leave the joined text as it was. The
 * database writes U+0003 for a column an owner made NULL, which would
 * otherwise drop the row from the join and free its separators.
 */
class PageColumns {
  static readonly ROW = 8 + 2 * HASH_SIZE;
  readonly #bytes: Buffer;
  readonly #offsets: number[] = [];
  /** The rows' indexed columns, joined as described above, in UTF-8 (each row's ends with its separator). */
  #indexed: Buffer;
  #indexedLength = 0;
  count = 0;

  constructor(rows: number) {
    this.#bytes = Buffer.allocUnsafe(rows * PageColumns.ROW);
    this.#indexed = Buffer.allocUnsafe(rows * 64);
  }

  /** Appends `text` and then the byte `separator` to the indexed columns' bytes. */
  #write(text: string, separator: number): void {
    if (this.#indexedLength + 3 * text.length + 1 > this.#indexed.length) {
      const grown = Buffer.allocUnsafe(2 * this.#indexed.length + 3 * text.length + 1);
      this.#indexed.copy(grown, 0, 0, this.#indexedLength);
      this.#indexed = grown;
    }
    this.#indexedLength += this.#indexed.write(text, this.#indexedLength);
    this.#indexed[this.#indexedLength++] = separator;
  }

  /** Records a row; returns its hash's bytes (a view: the leaf). */
  add(seq: number, hash: string, prev: string, indexed: IndexedMembers, offset: number): Buffer {
    const at = this.count++ * PageColumns.ROW;
    this.#bytes.writeUInt32BE(Math.floor(seq / 2 ** 32), at);
    this.#bytes.writeUInt32BE(seq >>> 0, at + 4);
    this.#bytes.write(hash, at + 8, HASH_SIZE, 'hex');
    this.#bytes.write(prev, at + 8 + HASH_SIZE, HASH_SIZE, 'hex');
    this.#offsets.push(offset);
    const { ts, actor, action, targets } = indexed;
    this.#write(ts, 1);
    this.#write(actor, 1);
    this.#write(action, 1);
    this.#write(targets ?? '-', 2);
    return this.#bytes.subarray(at + 8, at + 8 + HASH_SIZE);
  }

  at(i: number): RowColumns {
    const at = i * PageColumns.ROW;
    // Only to name a row that disagrees: the rows are split out again.
    const row = this.#indexed.toString('utf8', 0, this.#indexedLength).split('\u0002')[i] as string;
    const [ts, actor, action, targets] = row.split('\u0001') as [string, string, string, string];
    return {
      seq: this.#bytes.readUInt32BE(at) * 2 ** 32 + this.#bytes.readUInt32BE(at + 4),
      hash: this.#bytes.toString('hex', at + 8, at + 8 + HASH_SIZE),
      prev: this.#bytes.toString('hex', at + 8 + HASH_SIZE, at + PageColumns.ROW),
      ts,
      actor,
      action,
      targets: targets === '-' ? null : targets,
      offset: this.#offsets[i] as number,
    };
  }

  get first(): RowColumns {
    return this.at(0);
  }

  /** SHA-256 of the rows' seq, hash and prev columns, and of their indexed ones, hex: what the database's must be. */
  digest(): string {
    const fixed = createHash('sha256').update(this.#bytes.subarray(0, this.count * PageColumns.ROW));
    const indexed = createHash('sha256').update(this.#indexed.subarray(0, this.#indexedLength - 1)); // no last \x02
    return `${fixed.digest('hex')} ${indexed.digest('hex')}`;
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
