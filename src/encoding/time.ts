/** Times as entries store them: RFC 3339 in UTC with milliseconds. */

const RFC3339 = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/;

/**
 * An RFC 3339 time (§5.6; a space for the T, as §5.6 allows, or a plain
 * date, taken as midnight UTC) in the log's own form, so that comparing it
 * with entries' `ts` as text is exact; null if it is not one.
 */
export function logTime(text: string): string | null {
  const ms = Date.parse(text);
  if (!RFC3339.test(text) || Number.isNaN(ms)) return null;
  return new Date(ms).toISOString();
}
