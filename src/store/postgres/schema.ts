/**
 * A PostgreSQL log's tables, one log per schema, made by versioned
 * migrations. Creating is safe to run twice and from many processes at once
 * (a transaction-scoped advisory lock serialises it), and refused in a
 * schema that holds anything but an evident log.
 *
 *   meta          kind, schema version, tree size of the stored tiles, key file
 *   head          one row: the last entry (log id, size, hash, time); its row
 *                 lock is the right to append
 *   entries       one row per entry: its canonical line (the record), and
 *                 columns copied from it for indexes (hash, prev, ts, actor,
 *                 action, targets); UPDATE, DELETE and TRUNCATE are refused
 *   tiles         the Merkle tree's tiles, one row per tile (a partial tile
 *                 grows into its full one: it is a prefix of it)
 *   checkpoint    one row: the latest signed checkpoint
 *   cosignatures  checkpoints as witnesses cosigned them
 */
import { InvalidOptionError, LogNotFoundError } from '../../errors.js';
import type { Sql } from './connection.js';

export const KIND = 'evident log';

/** The migrations in order: migration N brings the schema from version N to N + 1. */
const MIGRATIONS: ((sql: Sql, schema: string) => Promise<unknown>)[] = [
  async (sql, schema) => {
    const s = sql(schema);
    await sql`create table ${s}.meta (key text primary key, value text not null)`;
    await sql`insert into ${s}.meta (key, value) values ('kind', ${KIND}), ('version', '0')`;
    await sql`create table ${s}.head (
      only_row boolean primary key default true check (only_row),
      log text, size bigint not null, hash text not null, ts text)`;
    await sql`insert into ${s}.head (log, size, hash, ts) values (null, 0, ${'0'.repeat(64)}, null)`;
    await sql`create table ${s}.entries (
      seq bigint primary key, line text not null, hash bytea not null, prev bytea not null,
      ts text not null, actor text not null, action text not null, targets text[])`;
    await sql`create index entries_actor on ${s}.entries (actor, seq)`;
    await sql`create index entries_action on ${s}.entries (action text_pattern_ops)`;
    await sql`create index entries_ts on ${s}.entries (ts)`;
    await sql`create index entries_targets on ${s}.entries using gin (targets)`;
    await sql`create table ${s}.tiles (level integer not null, index bigint not null, hashes bytea not null,
      primary key (level, index))`;
    await sql`create table ${s}.checkpoint (
      only_row boolean primary key default true check (only_row), note text not null)`;
    await sql`create table ${s}.cosignatures (key text primary key, note text not null)`;
    // Append-only, for every role that does not own the table (an owner can disable triggers: verify catches that).
    await sql`create function ${s}.refuse_change() returns trigger language plpgsql as $$
      begin
        raise exception 'evident: % on %.% is refused: the log is append-only', tg_op, tg_table_schema, tg_table_name
          using errcode = 'insufficient_privilege';
      end $$`;
    await sql`create trigger entries_append_only before update or delete on ${s}.entries
      for each row execute function ${s}.refuse_change()`;
    await sql`create trigger entries_no_truncate before truncate on ${s}.entries
      for each statement execute function ${s}.refuse_change()`;
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Key of the advisory locks evident takes: (namespace, hash of the schema name). */
export const LOCK_NAMESPACE = 0x65766964; // 'evid'

/** Creates the log's schema and tables, or brings them to the current version; refuses a foreign schema. */
export async function migrate(sql: Sql, schema: string, location: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_NAMESPACE}, hashtext(${schema}))`;
    let version = await versionOf(tx as unknown as Sql, schema, location);
    if (version === null) {
      await tx`create schema if not exists ${tx(schema)}`;
      version = 0;
    }
    if (version > SCHEMA_VERSION) {
      throw new InvalidOptionError(
        `${location} holds a log of schema version ${version}; this evident knows up to ${SCHEMA_VERSION}: upgrade evident`,
      );
    }
    for (; version < SCHEMA_VERSION; version++) {
      await (MIGRATIONS[version] as (typeof MIGRATIONS)[number])(tx as unknown as Sql, schema);
      await tx`update ${tx(schema)}.meta set value = ${String(version + 1)} where key = 'version'`;
    }
  });
}

/**
 * The version of the log in `schema`: null if the schema is missing or
 * empty; refused if it holds tables that are not an evident log's.
 */
export async function versionOf(sql: Sql, schema: string, location: string): Promise<number | null> {
  const tables = await sql<{ name: string }[]>`
    select table_name as name from information_schema.tables where table_schema = ${schema}`;
  if (tables.length === 0) return null;
  const foreign = () =>
    new InvalidOptionError(
      `schema ${schema} of ${location} holds something other than an evident log (${tables
        .map((t) => t.name)
        .slice(0, 5)
        .join(', ')}): give another schema with ?schema=NAME`,
    );
  if (!tables.some((t) => t.name === 'meta')) throw foreign();
  const rows = await sql<{ key: string; value: string }[]>`
    select key, value from ${sql(schema)}.meta where key in ('kind', 'version')`;
  const meta = new Map(rows.map((row) => [row.key, row.value]));
  if (meta.get('kind') !== KIND || !/^[0-9]+$/.test(meta.get('version') ?? '')) throw foreign();
  return Number(meta.get('version'));
}

/** Throws LogNotFoundError unless `schema` holds an evident log of the current version. */
export async function requireLog(sql: Sql, schema: string, location: string): Promise<void> {
  const version = await versionOf(sql, schema, location);
  if (version === null) throw new LogNotFoundError(location);
  if (version !== SCHEMA_VERSION) {
    throw new InvalidOptionError(
      `${location} holds a log of schema version ${version}, this evident uses ${SCHEMA_VERSION}: ` +
        (version < SCHEMA_VERSION ? 'run `evident init` on it to migrate it' : 'upgrade evident'),
    );
  }
}
