/** Times as entries store them: RFC 3339 in UTC with milliseconds. */

const RFC3339 = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/;

/**
 * An RFC 3339 time (§5.6; a space for the T, as §5.6 allows, or a plain
 * date, taken as midnight UTC) in the log's own form, so that comparing it
 * with entries' `ts` as text is exact; null if it is not one (a day the month
 * does not have too: Date.parse would take 2024-02-30 for March 1st). Digits
 * past the millisecond move a `since` bound up and an `until` bound down to
 * the millisecond, so that the bound keeps or leaves out the same entries.
 */
export function logTime(text: string, bound: 'since' | 'until' = 'until'): string | null {
  const match = RFC3339.exec(text);
  let ms = Date.parse(text);
  if (match === null || Number.isNaN(ms)) return null;
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  const beyond = match[3]?.slice(4) ?? ''; // the fraction's digits after the third
  if (bound === 'since' && /[1-9]/.test(beyond)) ms += 1;
  return new Date(ms).toISOString();
}
