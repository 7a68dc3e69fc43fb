/**
 * The PostgreSQL backend: a log in one schema of a database (schema.ts), for
 * writers on many hosts. Entries are rows (entries.ts); the seams that are
 * not the record are small enough to live here:
 *
 *   tiles        rows of the tiles table; meta's tree_size is written in the
 *                same transaction, after them
 *   checkpoint   one row, replaced by a conditional UPDATE (or an INSERT of
 *                the first), so compare-and-replace is one statement
 *   lease        a session advisory lock on a connection kept for it: it
 *                ends when its holder's session does, however that dies
 *   cosignatures rows by key
 */
import { resolve } from 'node:path';
import { LogNotFoundError } from '../../errors.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import type { TileWrite } from '../../merkle/tiles.js';
import type { CheckpointStore, CosignatureStore, Lease, OpenOptions, Store, TileStore } from '../store.js';
import { acquirePool, databaseError, type PostgresTarget, releasePool, type Sql } from './connection.js';
import { PostgresEntries } from './entries.js';
import { LOCK_NAMESPACE, migrate, requireLog } from './schema.js';

export class PostgresStore implements Store {
  readonly location: string;
  readonly entries: PostgresEntries;
  readonly tiles: TileStore;
  readonly checkpoints: CheckpointStore;
  readonly lease: Lease;
  readonly cosignatures: CosignatureStore;
  readonly #target: PostgresTarget;
  #pool: Sql | null = null;
  #lease: Awaited<ReturnType<Sql['reserve']>> | null = null;

  constructor(target: PostgresTarget) {
    this.#target = target;
    this.location = target.location;
    const sql = () => this.#sql();
    const schema = target.schema;
    const location = target.location;
    this.entries = new PostgresEntries(sql, schema, location);
    this.tiles = new PostgresTiles(sql, schema, location);
    this.checkpoints = new PostgresCheckpoints(sql, schema, location);
    this.cosignatures = new PostgresCosignatures(sql, schema, location);
    this.lease = {
      tryAcquire: () => this.#tryLease(),
      release: () => this.#releaseLease(),
    };
  }

  #sql(): Sql {
    if (this.#pool === null) throw new LogNotFoundError(this.location); // not opened, or closed
    return this.#pool;
  }

  async open(options: OpenOptions): Promise<void> {
    this.#pool ??= acquirePool(this.#target.url);
    try {
      if (options.create && !options.readOnly) await migrate(this.#pool, this.#target.schema, this.location);
      else await requireLog(this.#pool, this.#target.schema, this.location);
    } catch (error) {
      await this.close();
      throw databaseError(error, options.readOnly ? 'read' : 'write', this.location);
    }
  }

  async #tryLease(): Promise<boolean> {
    if (this.#lease !== null) return true;
    const sql = this.#sql();
    try {
      const reserved = await sql.reserve();
      try {
        const [row] = await reserved<{ taken: boolean }[]>`
          select pg_try_advisory_lock(${LOCK_NAMESPACE + 1}, hashtext(${this.#target.schema})) as taken`;
        if (row?.taken === true) {
          this.#lease = reserved;
          return true;
        }
      } catch (error) {
        reserved.release();
        throw error;
      }
      reserved.release();
      return false;
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }

  async #releaseLease(): Promise<void> {
    const reserved = this.#lease;
    if (reserved === null) return;
    this.#lease = null;
    try {
      await reserved`select pg_advisory_unlock(${LOCK_NAMESPACE + 1}, hashtext(${this.#target.schema}))`;
    } catch {
      // A session that is gone holds no lock: the lease ended with it.
    } finally {
      reserved.release();
    }
  }

  async keyFile(): Promise<string | null> {
    const sql = this.#sql();
    try {
      const [row] = await sql<{ value: string }[]>`
        select value from ${sql(this.#target.schema)}.meta where key = 'key_file'`;
      return row?.value ?? null;
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  /** Records the key file's absolute path: a database is shared by hosts, so the path is each writer's own. */
  async setKeyFile(path: string): Promise<void> {
    const sql = this.#sql();
    try {
      await sql`insert into ${sql(this.#target.schema)}.meta (key, value) values ('key_file', ${resolve(path)})
        on conflict (key) do update set value = excluded.value`;
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }

  async close(): Promise<void> {
    await this.#releaseLease();
    if (this.#pool === null) return;
    this.#pool = null;
    await releasePool(this.#target.url);
  }
}

class PostgresTiles implements TileStore {
  constructor(
    readonly sql: () => Sql,
    readonly schema: string,
    readonly location: string,
  ) {}

  async read(level: number, index: number, width: number): Promise<Buffer | null> {
    const sql = this.sql();
    try {
      const [row] = await sql<{ hashes: Buffer }[]>`
        select hashes from ${sql(this.schema)}.tiles where level = ${level} and index = ${index}`;
      if (row === undefined || row.hashes.length < width * HASH_SIZE) return null;
      return row.hashes.subarray(0, width * HASH_SIZE);
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  async write(tiles: readonly TileWrite[], size: number): Promise<void> {
    const sql = this.sql();
    const s = sql(this.schema);
    try {
      await sql.begin(async (tx) => {
        if (tiles.length > 0) {
          await tx`insert into ${s}.tiles (level, index, hashes)
            select level, index, decode(hashes, 'hex')
            from unnest(${tiles.map((t) => t.level)}::integer[], ${tiles.map((t) => t.index)}::bigint[],
              ${tiles.map((t) => t.hashes.toString('hex'))}::text[]) as r(level, index, hashes)
            on conflict (level, index) do update set hashes = excluded.hashes`;
        }
        await tx`insert into ${s}.meta (key, value) values ('tree_size', ${String(size)})
          on conflict (key) do update set value = excluded.value`;
      });
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }

  async size(): Promise<number> {
    const sql = this.sql();
    try {
      const [row] = await sql<{ value: string }[]>`
        select value from ${sql(this.schema)}.meta where key = 'tree_size'`;
      return row !== undefined && /^(0|[1-9][0-9]{0,15})$/.test(row.value) ? Number(row.value) : 0;
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  async clear(): Promise<void> {
    const sql = this.sql();
    const s = sql(this.schema);
    try {
      await sql.begin(async (tx) => {
        await tx`delete from ${s}.meta where key = 'tree_size'`;
        await tx`delete from ${s}.tiles`;
      });
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }
}

class PostgresCheckpoints implements CheckpointStore {
  constructor(
    readonly sql: () => Sql,
    readonly schema: string,
    readonly location: string,
  ) {}

  async read(): Promise<string | null> {
    const sql = this.sql();
    try {
      const [row] = await sql<{ note: string }[]>`select note from ${sql(this.schema)}.checkpoint`;
      return row?.note ?? null;
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  async replace(expected: string | null, next: string): Promise<boolean> {
    const sql = this.sql();
    const s = sql(this.schema);
    try {
      const result =
        expected === null
          ? await sql`insert into ${s}.checkpoint (note) values (${next}) on conflict do nothing`
          : await sql`update ${s}.checkpoint set note = ${next} where note = ${expected}`;
      return result.count === 1;
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }
}

class PostgresCosignatures implements CosignatureStore {
  constructor(
    readonly sql: () => Sql,
    readonly schema: string,
    readonly location: string,
  ) {}

  async list(): Promise<string[]> {
    const sql = this.sql();
    try {
      const rows = await sql<{ note: string }[]>`select note from ${sql(this.schema)}.cosignatures order by key`;
      return rows.map((row) => row.note);
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  async put(key: string, note: string): Promise<void> {
    const sql = this.sql();
    try {
      await sql`insert into ${sql(this.schema)}.cosignatures (key, note) values (${key}, ${note})
        on conflict (key) do update set note = excluded.note`;
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
  }

  async get(key: string): Promise<string | null> {
    const sql = this.sql();
    try {
      const [row] = await sql<{ note: string }[]>`
        select note from ${sql(this.schema)}.cosignatures where key = ${key}`;
      return row?.note ?? null;
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }
}
