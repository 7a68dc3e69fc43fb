/**
 * C2SP tlog-policy files: the spec's two-organisation example parses and its
 * quorum holds exactly when both groups' thresholds do; every malformed
 * policy is refused naming its line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALG_COSIGNATURE_V1, generateNoteKey } from '../../src/note/keys.js';
import { parsePolicy, quorumMet } from '../../src/note/policy.js';

const logKey = generateNoteKey('log.example/log').verifier;
const witness = (name: string) => generateNoteKey(name, ALG_COSIGNATURE_V1).verifier;
const [x1, x2, x3, y1, y2, y3] = ['x1', 'x2', 'x3', 'y1', 'y2', 'y3'].map((n) => witness(`${n}.example/w`));

const example = `# the spec's example, with real keys
log ${logKey} https://log.example/

witness X1 ${x1}
witness X2 ${x2} https://x2.example/
witness X3 ${x3}
group X-witnesses 2 X1 X2 X3

\twitness Y1 ${y1}
witness Y2 ${y2}
witness Y3 ${y3}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`;

describe('tlog-policy', () => {
  it("parses the spec's example: logs, witnesses with and without URLs, nested groups", () => {
    const policy = parsePolicy(example);
    assert.equal(policy.logs.length, 1);
    assert.equal(policy.logs[0]?.key.name, 'log.example/log');
    assert.equal(policy.logs[0]?.url, 'https://log.example/');
    assert.deepEqual(
      policy.witnesses.map((w) => [w.name, w.key.name, w.url]),
      [
        ['X1', 'x1.example/w', undefined],
        ['X2', 'x2.example/w', 'https://x2.example/'],
        ['X3', 'x3.example/w', undefined],
        ['Y1', 'y1.example/w', undefined],
        ['Y2', 'y2.example/w', undefined],
        ['Y3', 'y3.example/w', undefined],
      ],
    );
    assert.deepEqual(policy.groups.get('X-witnesses'), { threshold: 2, members: ['X1', 'X2', 'X3'] });
    assert.deepEqual(policy.groups.get('Y-witnesses'), { threshold: 1, members: ['Y1', 'Y2', 'Y3'] });
    assert.deepEqual(policy.groups.get('X-and-Y'), { threshold: 2, members: ['X-witnesses', 'Y-witnesses'] });
    assert.equal(policy.quorum, 'X-and-Y');
  });

  it('holds the quorum when two X and one Y witness cosigned, and not with less', () => {
    const policy = parsePolicy(example);
    const met = (...names: string[]) => quorumMet(policy, new Set(names));
    assert.equal(met('X1', 'X3', 'Y2'), true);
    assert.equal(met('X1', 'X2', 'X3', 'Y1', 'Y2', 'Y3'), true);
    assert.equal(met('X1', 'Y1', 'Y2', 'Y3'), false, 'one X is not two');
    assert.equal(met('X1', 'X2'), false, 'no Y');
    assert.equal(met(), false);
    assert.equal(quorumMet(policy, ['X1', 'X3', 'Y2']), true, 'any iterable of names will do');
    assert.equal(quorumMet(parsePolicy(`log ${logKey}\nquorum none\n`), new Set()), true);
    assert.equal(quorumMet(parsePolicy(`witness A ${x1}\nquorum A\n`), new Set(['A'])), true);
  });

  it('refuses a malformed policy, naming the line', () => {
    const cases: [string, RegExp][] = [
      [`log ${logKey}\n`, /no quorum line/],
      [`quorum none\nquorum none\n`, /line 2: a policy has one quorum line/],
      [`quorum W\n`, /line 1: W is not a witness or group defined above/],
      [`group G any W\nwitness W ${x1}\nquorum G\n`, /line 1: W is not a witness or group/],
      [`witness W ${x1}\nwitness W ${x2}\nquorum W\n`, /line 2: the name W is taken/],
      [`witness A ${x1}\nwitness B ${x1}\nquorum A\n`, /line 2: the key of x1\.example\/w is listed twice/],
      [`witness A ${logKey}\nquorum A\n`, /line 1: witness key log\.example\/log is not a witness key/],
      [`log ${x1}\nquorum none\n`, /line 1: log key x1\.example\/w is not a log key/],
      [`witness A ${x1}\ngroup G 2 A\nquorum G\n`, /line 2: group G: the threshold is all, any or 1 to 1, not 2/],
      [`witness A ${x1}\ngroup G all A A\nquorum G\n`, /line 2: group G lists a member twice/],
      [`witness none ${x1}\nquorum none\n`, /line 1: the name none is taken/],
      [`frobnicate\nquorum none\n`, /line 1: unknown keyword "frobnicate"/],
      [`log not-a-key\nquorum none\n`, /line 1: log key: /],
      [`quorum none\u0001\n`, /line 1: holds a control character/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parsePolicy(text), { code: 'EVIDENT_INVALID_OPTION', message }, JSON.stringify(text));
    }
  });
});
