/**
 * One connection pool per database per process, shared by every store of
 * every log in it. The pool is made synchronously on first use (pg's Pool
 * connects lazily, on the first query), so concurrent first callers, a
 * background writer and the log's own callers can never make two: the race
 * of a lazily opened connection is closed by construction. A pool is ended
 * when the last store using it closes.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';
import { EvidentError, InvalidOptionError } from '../../errors.js';

export type Pool = pg.Pool;
export type Client = pg.PoolClient;

/** What a `postgres://` store URL names: the database to connect to and the schema holding the log. */
export interface PostgresTarget {
  /** The URL to connect with, without evident's own `schema` parameter. */
  url: string;
  schema: string;
  /** The URL as messages show it: no password. */
  location: string;
}

export const DEFAULT_SCHEMA = 'evident';

/**
 * The URL parameters node-postgres acts on in a `postgres://` URL (besides evident's `schema`). Left out:
 * `binary` and `replication` (evident reads rows as text, through ordinary sessions), and `db`, `encoding`
 * and `keepAliveInitialDelayMillis`, which it reads only from socket URLs or option objects: `?db=` would
 * open the log in the path's database, not the one named.
 */
const PARAMETERS = new Set([
  'host',
  'port',
  'user',
  'password',
  'client_encoding',
  'application_name',
  'fallback_application_name',
  'options',
  'ssl',
  'sslmode',
  'sslcert',
  'sslkey',
  'sslrootcert',
  'sslnegotiation',
  'uselibpqcompat',
  'statement_timeout',
  'lock_timeout',
  'query_timeout',
  'idle_in_transaction_session_timeout',
  'connectionTimeoutMillis',
]);

/** Parses `postgres://…[?schema=NAME]`; the schema must be a plain lower-case identifier. */
export function parsePostgresUrl(spec: string): PostgresTarget {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new InvalidOptionError(`${JSON.stringify(hidePassword(spec))} is not a PostgreSQL URL`);
  }
  const schemas = url.searchParams.getAll('schema');
  if (schemas.length > 1) throw new InvalidOptionError('a PostgreSQL store URL names one schema, not several');
  const schema = schemas[0] ?? DEFAULT_SCHEMA;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new InvalidOptionError(
      `schema ${JSON.stringify(schema)}: a log's schema is a lower-case identifier (letters, digits, _)`,
    );
  }
  url.searchParams.delete('schema');
  // A misspelt parameter (`?shema=audit`) would otherwise be dropped without a word, and the log opened be
  // another than the one meant.
  for (const name of new Set(url.searchParams.keys())) {
    if (!PARAMETERS.has(name)) {
      throw new InvalidOptionError(
        `${JSON.stringify(name)} is not a parameter of a PostgreSQL store URL (it takes schema, ${[...PARAMETERS].join(', ')})`,
      );
    }
  }
  // node-postgres would take a bad port as given and never connect, nor say why: refused here.
  for (const port of url.searchParams.getAll('port')) {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw new InvalidOptionError(`port ${JSON.stringify(port)}: a PostgreSQL port is a number from 1 to 65535`);
    }
  }
  for (const name of ['connectionTimeoutMillis', 'query_timeout', 'idle_in_transaction_session_timeout']) {
    for (const ms of url.searchParams.getAll(name)) {
      if (!/^[0-9]{1,9}$/.test(ms))
        throw new InvalidOptionError(`${name} ${JSON.stringify(ms)}: milliseconds, a whole number`);
    }
  }
  const location = new URL(url.href);
  if (location.password !== '') location.password = '***';
  // The password may come as a parameter too: no message shows it either way.
  for (const secret of ['password', 'sslpassword']) {
    if (location.searchParams.has(secret)) location.searchParams.set(secret, '***');
  }
  location.searchParams.set('schema', schema);
  return { url: url.href, schema, location: location.href };
}

function hidePassword(spec: string): string {
  return spec.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

const pools = new Map<string, { pool: Pool; users: number }>();

let loaded: typeof pg | undefined;

/**
 * node-postgres, loaded on first use (synchronously: it is CommonJS), so
 * that a directory log's process never pays for loading it.
 */
function pgModule(): typeof pg {
  loaded ??= createRequire(import.meta.url)('pg') as typeof pg;
  return loaded;
}

/** The process's pool for `url`, made now if there is none; each call must be matched by releasePool. */
export function acquirePool(url: string): Pool {
  const known = pools.get(url);
  if (known !== undefined) {
    known.users++;
    return known.pool;
  }
  // Pipelining: the queries of a commit that do not wait for each other share one round trip. The timeouts
  // make a writer cut off from the server fail closed instead of waiting for ever, and have the server end
  // a vanished writer's transaction, and so free the head row it locked; the URL's parameters override them.
  // The pool reads its connect timeout from its options only, not from the URL: passed on from there.
  const connectTimeout = new URL(url).searchParams.get('connectionTimeoutMillis');
  const pool = new (pgModule().Pool)({
    connectionString: url,
    max: 10,
    application_name: 'evident',
    pipeline: true,
    keepAlive: true,
    connectionTimeoutMillis: connectTimeout === null ? 10_000 : Number(connectTimeout),
    query_timeout: 30_000,
    idle_in_transaction_session_timeout: 10_000,
  });
  // An idle connection whose server went away: the pool drops it and the next query connects anew.
  pool.on('error', () => {});
  pools.set(url, { pool, users: 1 });
  return pool;
}

/** Gives back a pool from acquirePool; the last user ends it. */
export async function releasePool(url: string): Promise<void> {
  const known = pools.get(url);
  if (known === undefined) return;
  if (--known.users > 0) return;
  pools.delete(url);
  await known.pool.end();
}

/** How many pools this process holds: one per database in use. */
export function openPools(): number {
  return pools.size;
}

/** A database error as evident's: what failed, where, and PostgreSQL's own words and code. */
export function databaseError(error: unknown, side: 'read' | 'write', location: string): unknown {
  if (error instanceof EvidentError || !(error instanceof Error)) return error;
  const code = (error as { code?: string }).code;
  const failed = side === 'read' ? 'EVIDENT_READ_FAILED' : 'EVIDENT_WRITE_FAILED';
  const hint =
    code === 'ECONNREFUSED'
      ? ': is the PostgreSQL server running?'
      : code === '42501'
        ? ': the role lacks a privilege this needs'
        : '';
  const what = code === undefined ? error.message : `${error.message} (${code})`;
  return new EvidentError(failed, `${location}: ${what}${hint}`, { cause: error });
}

/**
 * Whether `error` says the connection itself was lost (the server ended the
 * session or went away: SQLSTATE class 08, 57P01–57P03, a reset socket),
 * rather than that a statement failed.
 */
export function connectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (code.startsWith('08') || /^57P0[123]$/.test(code))) return true;
  if (code === 'ECONNRESET' || code === 'EPIPE') return true;
  return error instanceof Error && /Connection terminated/.test(error.message);
}

/** The identifier `name`, quoted for SQL. */
export function quoted(name: string): string {
  return pgModule().escapeIdentifier(name);
}

/**
 * Runs `work` on one connection of `pool`, then gives it back; a connection
 * that broke meanwhile (its server went away) is destroyed, not given back.
 */
export async function withClient<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken ??= error;
  };
  client.on('error', onError); // else a connection killed while checked out would crash the process
  try {
    return await work(client);
  } catch (error) {
    // Whatever was begun is rolled back; if that fails, the connection goes (the server rolls back for it).
    await client.query('rollback').catch((rollback: Error) => {
      broken ??= rollback;
    });
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** Runs `work` in a transaction: BEGIN is sent with its first query, COMMIT once it is done. */
export function transaction<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    const begun = client.query('begin');
    begun.catch(() => {}); // awaited below, once work has settled: work's own queries fail the same way
    const result = await work(client);
    await begun;
    await client.query('commit');
    return result;
  });
}
