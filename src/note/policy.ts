/**
 * C2SP tlog-policy files: which logs and witnesses one trusts, and the
 * quorum of cosignatures a checkpoint needs. Pure code.
 *
 *   log <vkey> [<url>]
 *   witness <name> <vkey> [<url>]
 *   group <name> all|any|<k> <name>...
 *   quorum <name>|none
 *
 * Lines are separated by newlines, items by spaces and tabs; blank lines and
 * lines starting with `#` are ignored. A group or the quorum names only
 * witnesses and groups defined on lines before it, each member at most once.
 */
import { InvalidOptionError } from '../errors.js';
import { ALG_COSIGNATURE_V1, ALG_ED25519, type PublicNoteKey, parseVerifierKey } from './keys.js';

export interface PolicyLog {
  key: PublicNoteKey;
  url: string | undefined;
}

export interface PolicyWitness {
  name: string;
  key: PublicNoteKey;
  url: string | undefined;
}

/** A group: at least `threshold` of its members (witness or group names) must have witnessed. */
export interface PolicyGroup {
  threshold: number;
  members: string[];
}

export interface Policy {
  logs: PolicyLog[];
  witnesses: PolicyWitness[];
  groups: Map<string, PolicyGroup>;
  /** A witness or group name, or null for `quorum none`. */
  quorum: string | null;
}

/**
 * Parses a policy file's text; throws InvalidOptionError naming the line.
 * The quorum line is required unless `quorumOptional` (a witness, which
 * reads only the log lines).
 */
export function parsePolicy(text: string, { quorumOptional = false } = {}): Policy {
  const policy: Policy = { logs: [], witnesses: [], groups: new Map(), quorum: null };
  const names = new Set<string>();
  const keys = new Set<string>();
  let quorumSeen = false;
  for (const [i, raw] of text.split('\n').entries()) {
    const fail = (problem: string): never => {
      throw new InvalidOptionError(`policy line ${i + 1}: ${problem}`);
    };
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the spec allows no other control characters
    if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(raw)) fail('holds a control character');
    const items = raw.split(/[ \t]+/).filter((item) => item !== '');
    if (items.length === 0 || items[0]?.startsWith('#')) continue;
    const [keyword, ...args] = items as [string, ...string[]];
    const key = (text: string, alg: number, what: string): PublicNoteKey => {
      let parsed: PublicNoteKey;
      try {
        parsed = parseVerifierKey(text);
      } catch (error) {
        return fail(`${what} key: ${(error as Error).message}`);
      }
      if (parsed.alg !== alg) fail(`${what} key ${parsed.name} is not a ${what} key`);
      const id = parsed.publicKey.toString('base64');
      if (keys.has(id)) fail(`the key of ${parsed.name} is listed twice`);
      keys.add(id);
      return parsed;
    };
    const defined = (name: string) => {
      if (!names.has(name)) fail(`${name} is not a witness or group defined above`);
    };
    switch (keyword) {
      case 'log':
        if (args.length < 1 || args.length > 2) fail('expected: log <vkey> [<url>]');
        policy.logs.push({ key: key(args[0] as string, ALG_ED25519, 'log'), url: args[1] });
        break;
      case 'witness': {
        if (args.length < 2 || args.length > 3) fail('expected: witness <name> <vkey> [<url>]');
        const name = args[0] as string;
        if (names.has(name) || name === 'none') fail(`the name ${name} is taken`);
        names.add(name);
        policy.witnesses.push({ name, key: key(args[1] as string, ALG_COSIGNATURE_V1, 'witness'), url: args[2] });
        break;
      }
      case 'group': {
        if (args.length < 3) fail('expected: group <name> all|any|<k> <name>...');
        const [name, rule, ...members] = args as [string, string, ...string[]];
        if (names.has(name) || name === 'none') fail(`the name ${name} is taken`);
        for (const member of members) defined(member);
        if (new Set(members).size !== members.length) fail(`group ${name} lists a member twice`);
        let threshold: number;
        if (rule === 'all') threshold = members.length;
        else if (rule === 'any') threshold = 1;
        else if (/^[1-9][0-9]*$/.test(rule) && Number(rule) <= members.length) threshold = Number(rule);
        else return fail(`group ${name}: the threshold is all, any or 1 to ${members.length}, not ${rule}`);
        names.add(name);
        policy.groups.set(name, { threshold, members });
        break;
      }
      case 'quorum':
        if (quorumSeen) fail('a policy has one quorum line');
        if (args.length !== 1) fail('expected: quorum <name> or quorum none');
        if (args[0] !== 'none') defined(args[0] as string);
        policy.quorum = args[0] === 'none' ? null : (args[0] as string);
        quorumSeen = true;
        break;
      default:
        fail(`unknown keyword ${JSON.stringify(keyword)}`);
    }
  }
  if (!quorumSeen && !quorumOptional)
    throw new InvalidOptionError('the policy has no quorum line (quorum none, if no witness is needed)');
  return policy;
}

/** Whether the witnesses named in `cosigned` (names from the policy) satisfy its quorum. */
export function quorumMet(policy: Policy, cosigned: Iterable<string>): boolean {
  const names = new Set(cosigned);
  const witnessed = (name: string): boolean => {
    const group = policy.groups.get(name);
    if (group === undefined) return names.has(name);
    return group.members.filter(witnessed).length >= group.threshold;
  };
  return policy.quorum === null || witnessed(policy.quorum);
}
