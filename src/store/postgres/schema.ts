/**
 * A PostgreSQL log's tables, one log per schema, made by versioned
 * migrations. Creating is safe to run twice and from many processes at once
 * (a transaction-scoped advisory lock serialises it), and refused in a
 * schema that holds anything but an evident log.
 *
 *   meta          kind, schema version, key file (written by init: the owner's)
 *   head          one row: the last entry (log id, size, hash, time); its row
 *                 lock is the right to append
 *   entries       one row per entry: its canonical line (the record), and
 *                 columns copied from it for indexes (hash, prev, ts, actor,
 *                 action, targets); UPDATE, DELETE and TRUNCATE are refused
 *   tiles         the Merkle tree's tiles, one row per tile (a partial tile
 *                 grows into its full one: it is a prefix of it)
 *   tree          one row: how many leaves the stored tiles hold
 *   checkpoint    one row: the latest signed checkpoint
 *   cosignatures  checkpoints as witnesses cosigned them
 */

import { GENESIS_PREV } from '../../entry.js';
import { InvalidOptionError, LogNotFoundError } from '../../errors.js';
import { type Client, type Pool, quoted, transaction } from './connection.js';

export const KIND = 'evident log';

/** The migrations in order: migration N brings the schema from version N to N + 1. */
const MIGRATIONS: ((s: string) => string[])[] = [
  (s) => [
    `create table ${s}.meta (key text primary key, value text not null)`,
    `insert into ${s}.meta (key, value) values ('kind', '${KIND}'), ('version', '0')`,
    `create table ${s}.head (
      only_row boolean primary key default true check (only_row),
      log text, size bigint not null, hash text not null, ts text)`,
    `insert into ${s}.head (log, size, hash, ts) values (null, 0, '${GENESIS_PREV}', null)`,
    `create table ${s}.entries (
      seq bigint primary key, line text not null, hash bytea not null, prev bytea not null,
      ts text not null, actor text not null, action text not null, targets text[])`,
    `create index entries_actor on ${s}.entries (actor, seq)`,
    `create index entries_action on ${s}.entries (action text_pattern_ops)`,
    `create index entries_ts on ${s}.entries (ts)`,
    `create index entries_targets on ${s}.entries using gin (targets)`,
    `create table ${s}.tiles (level integer not null, index bigint not null, hashes bytea not null,
      primary key (level, index))`,
    `create table ${s}.tree (only_row boolean primary key default true check (only_row), size bigint not null)`,
    `create table ${s}.checkpoint (only_row boolean primary key default true check (only_row), note text not null)`,
    `create table ${s}.cosignatures (key text primary key, note text not null)`,
    // Append-only for every role, the owner too; an owner can disable triggers, and verify catches what follows.
    `create function ${s}.refuse_change() returns trigger language plpgsql as $$
      begin
        raise exception 'evident: % on %.% is refused: the log is append-only', tg_op, tg_table_schema, tg_table_name
          using errcode = 'insufficient_privilege';
      end $$`,
    `create trigger entries_append_only before update or delete on ${s}.entries
      for each row execute function ${s}.refuse_change()`,
    `create trigger entries_no_truncate before truncate on ${s}.entries
      for each statement execute function ${s}.refuse_change()`,
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Key of the advisory locks evident takes: (namespace, hash of the schema name). */
export const LOCK_NAMESPACE = 0x65766964; // 'evid'
/** The integrator lease's advisory lock: (this, hash of the schema name). */
export const LEASE_NAMESPACE = LOCK_NAMESPACE + 1;

/** Creates the log's schema and tables, or brings them to the current version; refuses a foreign schema. */
export async function migrate(pool: Pool, schema: string, location: string): Promise<void> {
  await transaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, schema]);
    let version = await versionOf(client, schema, location);
    if (version === null) {
      // A schema an administrator made for the log is used as it is: creating one needs CREATE on the database.
      const made = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
      if (made.rowCount === 0) await client.query(`create schema ${quoted(schema)}`);
      version = 0;
    }
    if (version > SCHEMA_VERSION) {
      throw new InvalidOptionError(
        `${location} holds a log of schema version ${version}; this evident knows up to ${SCHEMA_VERSION}: upgrade evident`,
      );
    }
    for (; version < SCHEMA_VERSION; version++) {
      for (const statement of (MIGRATIONS[version] as (typeof MIGRATIONS)[number])(quoted(schema))) {
        await client.query(statement);
      }
      await client.query(`update ${quoted(schema)}.meta set value = $1 where key = 'version'`, [String(version + 1)]);
    }
  });
}

/**
 * The version of the log in `schema`: null if the schema is missing or
 * empty; refused if it holds objects that are not an evident log's.
 */
export async function versionOf(db: Pool | Client, schema: string, location: string): Promise<number | null> {
  // Every object in the schema, not only its tables: a function, sequence or type of another's is in the way too.
  // (A log's own objects include its meta table; the row types of tables are not counted.)
  const objects = (
    await db.query<{ name: string }>(
      `select relname::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      union all select proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = $1
      union all select typname::text from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = $1 and (t.typtype in ('d', 'e', 'r', 'm') or (t.typtype = 'c'
          and not exists (select 1 from pg_class c where c.oid = t.typrelid and c.relkind <> 'c')))
      order by 1`,
      [schema],
    )
  ).rows;
  if (objects.length === 0) return null;
  const foreign = () =>
    new InvalidOptionError(
      `schema ${schema} of ${location} holds something other than an evident log (${objects
        .map((t) => t.name)
        .slice(0, 5)
        .join(', ')}): give another schema with ?schema=NAME`,
    );
  if (!objects.some((t) => t.name === 'meta')) throw foreign();
  const rows = (
    await db.query<{ key: string; value: string }>(
      `select key, value from ${quoted(schema)}.meta where key in ('kind', 'version')`,
    )
  ).rows;
  const meta = new Map(rows.map((row) => [row.key, row.value]));
  if (meta.get('kind') !== KIND || !/^[0-9]+$/.test(meta.get('version') ?? '')) throw foreign();
  return Number(meta.get('version'));
}

/** Throws LogNotFoundError unless `schema` holds an evident log of the current version. */
export async function requireLog(pool: Pool, schema: string, location: string): Promise<void> {
  const version = await versionOf(pool, schema, location);
  if (version === null) throw new LogNotFoundError(location);
  if (version !== SCHEMA_VERSION) {
    throw new InvalidOptionError(
      `${location} holds a log of schema version ${version}, this evident uses ${SCHEMA_VERSION}: ` +
        (version < SCHEMA_VERSION ? 'run `evident init` on it to migrate it' : 'upgrade evident'),
    );
  }
}
