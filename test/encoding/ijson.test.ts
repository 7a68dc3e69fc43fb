/**
 * I-JSON (RFC 7493) input: what JSON.parse would quietly change is refused,
 * naming the JSON path — repeated member names, integers a double does not
 * hold exactly, numbers that overflow or underflow to zero, nesting deeper
 * than the limit — and everything else parses as JSON.parse parses it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { MAX_DEPTH, parseIJson } from '../../src/encoding/ijson.js';
import { InvalidEntryError } from '../../src/errors.js';

const refused = (text: string, field: RegExp, problem: RegExp) =>
  assert.throws(
    () => parseIJson(text, 'input'),
    (error: unknown) =>
      error instanceof InvalidEntryError &&
      error.code === 'EVIDENT_INVALID_ENTRY' &&
      field.test(error.field) &&
      problem.test(error.problem),
    text.slice(0, 60),
  );

describe('I-JSON input', () => {
  it('parses what JSON.parse parses, to the same value', () => {
    for (const text of [
      '{}',
      '[]',
      '{"a":1,"b":[true,false,null],"c":{"d":"e\\u0041\\"\\\\"},"f":-0.5e-3}',
      ' { "k" : [ 1 , 2 ] } ',
      '{"max":9007199254740991,"min":-9007199254740991,"big":1e300,"tiny":5e-324,"zero":0.0,"z":0e10}',
      '{"\\u0061":1,"b":1}',
      `{"s":"${'\u{1F600}'}\\ud83d\\ude00"}`,
    ]) {
      assert.deepEqual(parseIJson(text, 'input'), JSON.parse(text), text);
    }
  });

  it('refuses a member name given twice in one object, naming it', () => {
    refused('{"k":1,"k":2}', /input: \$\.k/, /appears twice/);
    refused('{"a":{"k":1,"k":1}}', /\$\.a\.k/, /appears twice/);
    refused('{"k":1,"\\u006b":2}', /\$\.k/, /appears twice/); // the same name, spelled another way
    assert.deepEqual(parseIJson('[{"k":1},{"k":2}]', 'input'), [{ k: 1 }, { k: 2 }], 'not across objects');
  });

  it('refuses a number a double does not hold exactly, and numbers that overflow or vanish', () => {
    refused('{"n":18446744073709551616}', /\$\.n/, /beyond ±\(2\^53−1\)/);
    refused('{"n":9007199254740993}', /\$\.n/, /beyond/);
    refused('{"n":[1,-9007199254740992]}', /\$\.n\[1\]/, /beyond/);
    refused('{"n":1e400}', /\$\.n/, /too large/);
    refused('{"n":-1.5E+309}', /\$\.n/, /too large/);
    refused('{"n":1e-400}', /\$\.n/, /too small.*recorded as 0/);
    refused('{"n":0.000001e-400}', /\$\.n/, /too small/);
    // Written another way, the value still has to survive: the record is the double's shortest form.
    refused('{"n":9007199254740993.0}', /\$\.n/, /more precision.*recorded as 9007199254740992/);
    refused('{"n":0.10000000000000000001}', /\$\.n/, /more precision.*recorded as 0\.1/);
    refused('{"n":9007199254740994.0}', /\$\.n/, /beyond ±\(2\^53−1\)/); // exact, but would read back as a bare integer
    refused('{"n":1.2e19}', /\$\.n/, /beyond/);
    for (const kept of ['0.1', '1.50', '-2.5e-7', '1e21', '12345.678e3', '-0.0', '5e-324']) {
      assert.deepEqual(parseIJson(`{"n":${kept}}`, 'input'), { n: Number(kept) }, kept);
    }
  });

  it(`refuses data nesting deeper than ${MAX_DEPTH} levels within an entry, however deep, with its own message`, () => {
    const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    assert.deepEqual(parseIJson(`{"d":${nested(MAX_DEPTH)}}`, 'input') !== null, true);
    refused(`{"d":${nested(MAX_DEPTH + 1)}}`, /\$\.d(\[0\]){64}$/, /nests deeper than 64 levels/);
    refused(nested(10_000), /\$/, /nests deeper than 64 levels|not valid JSON/);
    refused(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`, /\$/, /nests deeper|not valid JSON/);
  });

  it('reads a string of a million escapes in one pass, not one pass per escape', async () => {
    // Looking for the closing quote again after every escape took 150 s for these (12 MB, under the HTTP
    // limit): a thread of its own, given far more than the linear pass needs, must come back with the value.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(new URL('../../src/encoding/ijson.js', import.meta.url).href)}).then(({ parseIJson }) => {
        const lengths = [];
        for (const escape of ['\\\\n', '\\\\ud83d\\\\ude00', '\\\\"']) {
          lengths.push(parseIJson('{"s":"' + escape.repeat(1000000) + '"}', 'body').s.length);
        }
        parentPort.postMessage(lengths);
      });`,
      { eval: true },
    );
    let timer: NodeJS.Timeout | undefined;
    const lengths = await Promise.race([
      once(worker, 'message').then(([message]) => message as number[]),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in 30 s')), 30_000);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      return worker.terminate();
    });
    assert.deepEqual(lengths, [1_000_000, 2_000_000, 1_000_000]);
  });

  it('says what is wrong with text that is not JSON', () => {
    refused('{"a":1,}', /^input$/, /not valid JSON/);
    refused('', /^input$/, /not valid JSON/);
  });
});
