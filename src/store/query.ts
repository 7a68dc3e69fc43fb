/**
 * A read query as a caller gives it, checked and put in the form every
 * store compares with: times as the log writes them, so that comparing them
 * with entries' `ts` as text is exact. Pure code.
 */
import { logTime } from '../encoding/time.js';
import type { Entry } from '../entry.js';
import { InvalidOptionError } from '../errors.js';
import type { ReadQuery } from './store.js';

/** `query` checked; a bad value throws InvalidOptionError naming it, rather than matching nothing. */
export function checkedQuery(query: ReadQuery): ReadQuery {
  if (typeof query !== 'object' || query === null) throw new InvalidOptionError('read(): the query is an object');
  const checked: ReadQuery = { ...query };
  for (const name of ['fromSeq', 'toSeq', 'limit'] as const) {
    const value = query[name];
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new InvalidOptionError(`read(): ${name} is a whole number ≥ 0, not ${String(value)}`);
    }
  }
  for (const name of ['actor', 'action', 'target'] as const) {
    const value = query[name];
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      throw new InvalidOptionError(`read(): ${name} is a non-empty string, not ${JSON.stringify(value)}`);
    }
  }
  for (const name of ['since', 'until'] as const) {
    const value = query[name];
    if (value === undefined) continue;
    const time = typeof value === 'string' ? logTime(value, name) : null;
    if (time === null) {
      throw new InvalidOptionError(
        `read(): ${name} is an RFC 3339 time such as 2026-11-22T09:30:00Z, not ${JSON.stringify(value)}`,
      );
    }
    checked[name] = time;
  }
  return checked;
}

/** `pattern` matches an action exactly, or as a prefix when it ends in `.*` (`proposal.*`). */
export function matchesAction(action: string, pattern: string): boolean {
  if (pattern.endsWith('.*')) return action.startsWith(pattern.slice(0, -1)) || action === pattern.slice(0, -2);
  return action === pattern;
}

/** Whether `entry` is one `query` asks for (its seq range, times, actor, action and target). */
export function matchesQuery(entry: Entry, query: ReadQuery): boolean {
  return (
    (query.fromSeq === undefined || entry.seq >= query.fromSeq) &&
    (query.toSeq === undefined || entry.seq <= query.toSeq) &&
    (query.since === undefined || entry.ts >= query.since) &&
    (query.until === undefined || entry.ts <= query.until) &&
    (query.actor === undefined || entry.actor === query.actor) &&
    (query.action === undefined || matchesAction(entry.action, query.action)) &&
    (query.target === undefined || entry.targets?.includes(query.target) === true)
  );
}
