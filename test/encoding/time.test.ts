/**
 * Time bounds as callers give them, in the form entries store: RFC 3339 to
 * UTC milliseconds, days the calendar has only, and digits past the
 * millisecond rounded so that a bound keeps or leaves out what it says.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logTime } from '../../src/encoding/time.js';

describe('time bounds', () => {
  it('are RFC 3339 times in UTC with milliseconds, or plain dates at midnight UTC', () => {
    assert.equal(logTime('2026-11-22T09:30:00Z'), '2026-11-22T09:30:00.000Z');
    assert.equal(logTime('2026-11-22 10:30:00+01:00'), '2026-11-22T09:30:00.000Z');
    assert.equal(logTime('2026-11-22'), '2026-11-22T00:00:00.000Z');
    assert.equal(logTime('2024-02-29'), '2024-02-29T00:00:00.000Z', 'a leap day');
  });

  it('refuse a day the month does not have, rather than take the next month', () => {
    for (const text of ['2024-02-30T00:00:00Z', '2023-02-29', '2026-04-31T12:00:00Z', '2026-13-01', 'yesterday']) {
      assert.equal(logTime(text), null, text);
    }
  });

  it('round digits past the millisecond up for since and down for until', () => {
    assert.equal(logTime('2026-11-22T09:30:00.1239Z', 'since'), '2026-11-22T09:30:00.124Z');
    assert.equal(logTime('2026-11-22T09:30:00.1239Z', 'until'), '2026-11-22T09:30:00.123Z');
    assert.equal(logTime('2026-11-22T09:30:00.1230000Z', 'since'), '2026-11-22T09:30:00.123Z', 'zeros change nothing');
    assert.equal(logTime('2026-11-22T09:30:00.9999Z', 'since'), '2026-11-22T09:30:01.000Z');
  });
});
