/**
 * The PostgreSQL backend: a log in one schema of a database (schema.ts), for
 * writers on many hosts. Entries are rows (entries.ts); the seams that are
 * not the record are small enough to live here:
 *
 *   tiles        rows of the tiles table; the tree row's size is written in
 *                the same transaction, after them
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
import type { CheckpointStore, CosignatureStore, KeptNote, Lease, OpenOptions, Store, TileStore } from '../store.js';
import {
  acquirePool,
  type Client,
  connectionLost,
  databaseError,
  type Pool,
  type PostgresTarget,
  quoted,
  releasePool,
  transaction,
} from './connection.js';
import { PostgresEntries } from './entries.js';
import { LEASE_NAMESPACE, migrate, requireLog } from './schema.js';

/** A query of one of the store's seams: `side` says which error a failure becomes. */
type Run = <T>(side: 'read' | 'write', work: (pool: Pool, s: string) => Promise<T>) => Promise<T>;

export class PostgresStore implements Store {
  readonly location: string;
  readonly entries: PostgresEntries;
  readonly tiles: TileStore;
  readonly checkpoints: CheckpointStore;
  readonly lease: Lease;
  readonly cosignatures: CosignatureStore;
  readonly #target: PostgresTarget;
  #pool: Pool | null = null;
  /** The connection holding the lease's advisory lock, while this store holds it. */
  #leaseClient: HeldLease | null = null;

  constructor(target: PostgresTarget) {
    this.#target = target;
    this.location = target.location;
    this.entries = new PostgresEntries(() => this.#open(), target.schema, target.location);
    const run: Run = async (side, work) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await work(this.#open(), quoted(target.schema));
        } catch (error) {
          // A read on a pooled connection the server ended while idle is asked again, once, on a fresh one.
          if (side === 'read' && attempt === 0 && connectionLost(error)) continue;
          throw databaseError(error, side, this.location);
        }
      }
    };
    this.tiles = new PostgresTiles(run);
    this.checkpoints = new PostgresCheckpoints(run);
    this.cosignatures = new PostgresCosignatures(run);
    this.lease = {
      tryAcquire: () => this.#tryLease(),
      release: () => this.#releaseLease(),
    };
  }

  #open(): Pool {
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

  /** Takes the advisory lock on a connection of its own; a holder whose session ended holds nothing. */
  async #tryLease(): Promise<boolean> {
    const held = this.#leaseClient;
    if (held !== null) {
      if (held.lost === null) {
        try {
          await held.client.query('select 1'); // the lock lives as long as this session
          return true;
        } catch {}
      }
      await this.#releaseLease(); // the session is gone, and the lock with it: take it anew if it is free
    }
    const pool = this.#open();
    let client: Client;
    try {
      client = await pool.connect();
    } catch (error) {
      throw databaseError(error, 'write', this.location);
    }
    const lease: HeldLease = {
      client,
      lost: null,
      onError: (error) => {
        lease.lost ??= error;
      },
    };
    client.on('error', lease.onError);
    try {
      const { rows } = await client.query<{ taken: boolean }>(
        'select pg_try_advisory_lock($1, hashtext($2)) as taken',
        [LEASE_NAMESPACE, this.#target.schema],
      );
      if (rows[0]?.taken === true) {
        this.#leaseClient = lease;
        return true;
      }
      giveBack(lease);
      return false;
    } catch (error) {
      giveBack(lease, error as Error);
      throw databaseError(error, 'write', this.location);
    }
  }

  async #releaseLease(): Promise<void> {
    const held = this.#leaseClient;
    if (held === null) return;
    this.#leaseClient = null;
    if (held.lost !== null) return giveBack(held, held.lost);
    try {
      await held.client.query('select pg_advisory_unlock($1, hashtext($2))', [LEASE_NAMESPACE, this.#target.schema]);
      giveBack(held);
    } catch (error) {
      giveBack(held, error as Error); // a session that is gone holds no lock: the lease ended with it
    }
  }

  async keyFile(): Promise<string | null> {
    try {
      const { rows } = await this.#open().query<{ value: string }>(
        `select value from ${quoted(this.#target.schema)}.meta where key = 'key_file'`,
      );
      return rows[0]?.value ?? null;
    } catch (error) {
      throw databaseError(error, 'read', this.location);
    }
  }

  /** Records the key file's absolute path: the database is shared by hosts, so each writer's path is its own. */
  async setKeyFile(path: string): Promise<void> {
    try {
      await this.#open().query(
        `insert into ${quoted(this.#target.schema)}.meta (key, value) values ('key_file', $1)
        on conflict (key) do update set value = excluded.value`,
        [resolve(path)],
      );
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
  readonly #run: Run;

  constructor(run: Run) {
    this.#run = run;
  }

  read(level: number, index: number, width: number): Promise<Buffer | null> {
    return this.#run('read', async (pool, s) => {
      const { rows } = await pool.query<{ hashes: Buffer }>(
        `select hashes from ${s}.tiles where level = $1 and index = $2`,
        [level, index],
      );
      const hashes = rows[0]?.hashes;
      return hashes === undefined || hashes.length < width * HASH_SIZE ? null : hashes.subarray(0, width * HASH_SIZE);
    });
  }

  write(tiles: readonly TileWrite[], size: number): Promise<void> {
    return this.#run('write', (pool, s) =>
      transaction(pool, async (client) => {
        if (tiles.length > 0) {
          await client.query(
            `insert into ${s}.tiles (level, index, hashes)
            select level, index, decode(hashes, 'hex')
            from unnest($1::integer[], $2::bigint[], $3::text[]) as r(level, index, hashes)
            on conflict (level, index) do update set hashes = excluded.hashes`,
            [tiles.map((t) => t.level), tiles.map((t) => t.index), tiles.map((t) => t.hashes.toString('hex'))],
          );
        }
        await client.query(
          `insert into ${s}.tree (size) values ($1) on conflict (only_row) do update set size = excluded.size`,
          [size],
        );
      }),
    );
  }

  size(): Promise<number> {
    return this.#run('read', async (pool, s) => {
      const { rows } = await pool.query<{ size: string }>(`select size from ${s}.tree`);
      return Number(rows[0]?.size ?? 0);
    });
  }

  clear(): Promise<void> {
    return this.#run('write', (pool, s) =>
      transaction(pool, async (client) => {
        await client.query(`delete from ${s}.tree`);
        await client.query(`delete from ${s}.tiles`);
      }),
    );
  }
}

class PostgresCheckpoints implements CheckpointStore {
  readonly #run: Run;

  constructor(run: Run) {
    this.#run = run;
  }

  read(): Promise<string | null> {
    return this.#run(
      'read',
      async (pool, s) => (await pool.query<{ note: string }>(`select note from ${s}.checkpoint`)).rows[0]?.note ?? null,
    );
  }

  replace(expected: string | null, next: string): Promise<boolean> {
    return this.#run('write', async (pool, s) => {
      const result =
        expected === null
          ? await pool.query(`insert into ${s}.checkpoint (note) values ($1) on conflict do nothing`, [next])
          : await pool.query(`update ${s}.checkpoint set note = $1 where note = $2`, [next, expected]);
      return result.rowCount === 1;
    });
  }
}

class PostgresCosignatures implements CosignatureStore {
  readonly #run: Run;

  constructor(run: Run) {
    this.#run = run;
  }

  list(): Promise<KeptNote[]> {
    return this.#run(
      'read',
      async (pool, s) => (await pool.query<KeptNote>(`select key, note from ${s}.cosignatures order by key`)).rows,
    );
  }

  remove(key: string): Promise<void> {
    return this.#run('write', async (pool, s) => {
      await pool.query(`delete from ${s}.cosignatures where key = $1`, [key]);
    });
  }

  put(key: string, note: string): Promise<void> {
    return this.#run('write', async (pool, s) => {
      await pool.query(
        `insert into ${s}.cosignatures (key, note) values ($1, $2) on conflict (key) do update set note = excluded.note`,
        [key, note],
      );
    });
  }

  get(key: string): Promise<string | null> {
    return this.#run(
      'read',
      async (pool, s) =>
        (await pool.query<{ note: string }>(`select note from ${s}.cosignatures where key = $1`, [key])).rows[0]
          ?.note ?? null,
    );
  }
}

/** The connection a lease's session lock lives on, and whether it was lost. */
interface HeldLease {
  client: Client;
  lost: Error | null;
  onError: (error: Error) => void;
}

/** Returns a lease's connection to the pool (destroyed if `broken`), without the listener the lease added. */
function giveBack(lease: HeldLease, broken?: Error): void {
  lease.client.off('error', lease.onError);
  lease.client.release(broken);
}
