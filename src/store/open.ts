/**
 * From what a user names to a store: a directory path (or `file:PATH`) is a
 * directory log; `postgres://…` or `postgresql://…` (`?schema=NAME`, default
 * evident) a PostgreSQL log; a Store object is used as it is. The lifecycle never names
 * a backend; this is the one place that does.
 */
import { fileURLToPath } from 'node:url';
import { InvalidOptionError } from '../errors.js';
import type { Durability } from './file/entries.js';
import { FileStore } from './file/store.js';
import { parsePostgresUrl } from './postgres/connection.js';
import { PostgresStore } from './postgres/store.js';
import type { Store } from './store.js';

export interface StoreOptions {
  durability?: Durability | undefined;
}

/** The store named by `spec`, else by $EVIDENT_STORE, else $EVIDENT_DIR, else ./.evident. */
export function storeOf(spec: string | Store | undefined, options: StoreOptions = {}): Store {
  if (spec !== undefined && typeof spec !== 'string') {
    const store = spec as Partial<Store> | null;
    // A Store object has its seams; anything else given as one is a mistake, named now rather than at first use.
    if (
      typeof store !== 'object' ||
      store === null ||
      typeof store.open !== 'function' ||
      store.entries === undefined
    ) {
      throw new InvalidOptionError(`store: a directory, a store URL or a Store object, not ${String(spec)}`);
    }
    return spec;
  }
  const name = spec ?? process.env.EVIDENT_STORE ?? process.env.EVIDENT_DIR ?? '.evident';
  if (name.trim() === '') {
    throw new InvalidOptionError('the store is an empty name; give a directory (or leave it unset for ./.evident)');
  }
  if (/^postgres(ql)?:\/\//i.test(name)) return new PostgresStore(parsePostgresUrl(name));
  if (name.startsWith('file:')) {
    const path = name.startsWith('file://') ? fileURLToPath(name) : name.slice(5);
    if (path.trim() === '') throw new InvalidOptionError(`the store ${JSON.stringify(name)} names no directory`);
    return new FileStore(path, options);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(name)) {
    throw new InvalidOptionError(`${JSON.stringify(name)} is not a store evident knows: give a directory or file:PATH`);
  }
  return new FileStore(name, options);
}
