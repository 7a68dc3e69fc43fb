/** The transparency commands: keys, signed notes, checkpoints, proofs and receipts. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseIJson } from '../encoding/ijson.js';
import { EvidentError, KeyError, NoteError, OutOfRangeError, TrustError } from '../errors.js';
import { loadSignerKey } from '../lifecycle/signing.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import {
  ALG_COSIGNATURE_V1,
  ALG_ED25519,
  generateNoteKey,
  type PublicNoteKey,
  parseVerifierKey,
} from '../note/keys.js';
import { openNote } from '../note/note.js';
import { parsePolicy } from '../note/policy.js';
import { type TrustedCheckpoint, type TrustPolicy, trustCheckpoint } from '../note/trust.js';
import { parseReceipt, verifyReceipt } from '../receipt.js';
import { Witness } from '../witness.js';
import {
  type Command,
  DIR_HELP,
  listenAddress,
  listenOn,
  loggerOption,
  logOf,
  parse,
  parseCount,
  parseWithPositionals,
  REMOTE_HELP,
  readFileArg,
  readStdin,
  remoteFlags,
  storeFlags,
  storeOption,
  UsageError,
  untilStopped,
  using,
  withLog,
  write,
  writeOutput,
} from './common.js';

export const TRUST_HELP = `  --key VKEY     the log's verifier key (name+hash+key), or a file holding it (required)
  --witness VKEY a witness's cosignature verifier key, or a file holding it (repeatable)
  --quorum K     how many of the witnesses must have cosigned (default 0)`;

export const TLOG_HELP: Record<string, string> = {
  witness: `Usage: evident witness cosign --state DIR --key WKEY --log-key VKEY --log LOGDIR
       evident witness cosign --state DIR --key WKEY --log-key VKEY --checkpoint FILE [--proof FILE]
       evident witness serve --state DIR --key WKEY --logs POLICY [--listen HOST:PORT] [--log-level L]

Acts as a witness: checks a log's checkpoint against the last one this witness cosigned for that origin (kept in
DIR), refusing rollbacks and forks, and prints the checkpoint with the witness's cosignature (C2SP
cosignature/v1) added. With --log it reads the latest checkpoint and the consistency proof from the log
directory, and stores the cosigned checkpoint there so receipts carry it.
  --state DIR    the witness's state directory
  --key WKEY     the witness's signer key file (evident keygen --witness)
  --log-key VKEY the log's verifier key, or a file holding it
  --proof FILE   the consistency proof from the last cosigned size: evident proof consistency output (text or JSON)

witness serve answers C2SP tlog-witness requests (POST /add-checkpoint) over HTTP until SIGINT or SIGTERM, for
the logs whose verifier keys POLICY lists (a C2SP tlog-policy file: log <vkey> lines). Logs that run
evident serve --policy send it their checkpoints.
  --logs POLICY  the logs it witnesses
  --listen HOST:PORT  where to listen (default 127.0.0.1:8080)
  --log-level L  request logs as JSON lines on stdout: info (default), warn, error, debug, silent`,
  keygen: `Usage: evident keygen --name NAME --out FILE [--witness]

Writes a new Ed25519 signer key to FILE (mode 0600; an existing file is never overwritten) in Go's sumdb/note
format, and prints its verifier key (NAME+hash+key) on stdout. NAME becomes the origin of the logs it signs.
  --witness      a witness key, for cosignature/v1 cosignatures (algorithm 0x04) instead of log checkpoints`,
  note: `Usage: evident note verify --key VKEY [--key VKEY]... [FILE]

Verifies a C2SP signed note (an evident checkpoint, or any other log's, such as the Go checksum database's) from
FILE or stdin, and prints its text. Signatures by keys not given are ignored; exit 1 when no given key verifies
the note or a given key's signature is bad.`,
  checkpoint: `Usage: evident checkpoint [--json] [--dir D]
       evident checkpoint --url URL --key VKEY [--witness VKEY]... [--quorum K] [--json]

Prints the log's latest signed checkpoint (a C2SP signed note), verified with the key the log declares. With
--json: {"origin","size","root","note"}, and for a log that does not sign, its current tree head with origin and
note null. With --url, the service's checkpoint is printed only if the given key signed it (and the quorum
cosigned it); exit 1 if not.
${DIR_HELP}
${REMOTE_HELP}
${TRUST_HELP}`,
  proof: `Usage: evident proof inclusion --seq N [--size S] [--json] [--dir D]
       evident proof consistency --from M [--to N] [--json] [--dir D]

Prints an RFC 9162 proof: the tree size, its root and the proof hashes, one base64 hash per line (or JSON).
--size and --to default to the whole log.
${DIR_HELP}`,
  receipt: `Usage: evident receipt --seq N [--out FILE] [--wait SECONDS] [--dir D | --url URL]

Writes a receipt for entry N: a C2SP tlog-proof (c2sp.org/tlog-proof@v1) holding the entry's index, its inclusion
proof, and the newest signed checkpoint covering it, with any cosignatures. It can be checked offline with
verify-receipt. When no checkpoint covers the entry yet, exit 1 (EVIDENT_NOT_YET) — or, with --wait, wait up to
that many seconds for the log's writers to sign one (at most 60 with --url).
${DIR_HELP}
${REMOTE_HELP}`,
  'verify-receipt': `Usage: evident verify-receipt FILE --entry ENTRY.json --key VKEY [--witness VKEY]... [--quorum K]

Checks a receipt offline, with no access to the log: the entry is intact and is the receipt's index, the
checkpoint is signed by the log's key (and cosigned by the quorum), and the proof leads from the entry to its root.
Exit 0 when it holds, 1 when it does not.
${TRUST_HELP}`,
};

/** A verifier key given inline, or the first line of a file holding one. */
export function verifierKeyArg(text: string, flag: string): PublicNoteKey {
  const inline = text.includes('+') ? text : readKeyFile(text, flag);
  try {
    return parseVerifierKey(inline);
  } catch (error) {
    throw new KeyError(`${flag}: ${(error as Error).message}`);
  }
}

function readKeyFile(path: string, flag: string): string {
  return readFileArg(path, `${flag}: not a verifier key, and the file`).trim().split('\n')[0] as string;
}

/** The trust policy from --key, --witness and --quorum. */
export function trustArgs(v: {
  key?: string | undefined;
  witness?: string[] | undefined;
  quorum?: string | undefined;
}): TrustPolicy {
  if (v.key === undefined) throw new UsageError('--key (the log verifier key) is required');
  return {
    log: verifierKeyArg(v.key, '--key'),
    witnesses: (v.witness ?? []).map((w) => verifierKeyArg(w, '--witness')),
    quorum: v.quorum === undefined ? 0 : parseCount(v.quorum, '--quorum'),
  };
}

/** `note` trusted under `policy`; else, after saying why (`FAILED: <what> is not trusted: …`), exit status 1. */
export function trustedOrFailed(note: string, policy: TrustPolicy, what: string): TrustedCheckpoint | 1 {
  try {
    return trustCheckpoint(note, policy);
  } catch (error) {
    if (!(error instanceof NoteError || error instanceof TrustError)) throw error;
    write(`FAILED: ${what} is not trusted: ${error.message}\n`);
    return 1;
  }
}

export const trustFlags = {
  key: { type: 'string' },
  witness: { type: 'string', multiple: true },
  quorum: { type: 'string' },
} as const;

export const TLOG_COMMANDS: Record<string, Command> = {
  async witness(args) {
    const [sub, ...rest] = args;
    if (sub === 'serve') return witnessServe(rest);
    if (sub !== 'cosign') throw new UsageError('witness: the subcommand is cosign or serve');
    const v = parse('witness cosign', {
      args: rest,
      strict: true,
      options: {
        state: { type: 'string' },
        key: { type: 'string' },
        'log-key': { type: 'string' },
        log: { type: 'string' },
        checkpoint: { type: 'string' },
        proof: { type: 'string' },
      },
    });
    if (v.state === undefined || v.key === undefined || v['log-key'] === undefined) {
      throw new UsageError('witness cosign: --state, --key and --log-key are required');
    }
    if ((v.log === undefined) === (v.checkpoint === undefined)) {
      throw new UsageError('witness cosign: give either --log or --checkpoint');
    }
    const logKey = verifierKeyArg(v['log-key'], '--log-key');
    const witness = new Witness({ key: loadSignerKey(v.key), dir: v.state });
    let cosigned: string;
    if (v.log !== undefined) {
      cosigned = await withLog({ store: v.log, readOnly: true }, async (log) => {
        for (let attempt = 1; ; attempt++) {
          const note = await log.checkpoint();
          if (note === null)
            throw new EvidentError('EVIDENT_NO_KEY', `the log in ${log.location} does not sign checkpoints`);
          const size = checkpointOfNote(note).size;
          const last = witness.lastSeen(logKey.name)?.size ?? 0;
          const proof = last > 0 && last < size ? await log.consistencyProof(last, size) : [];
          try {
            const result = await witness.cosign(note, logKey, proof);
            await log.addCosignatures(result, [witness.verifierKey]);
            return result;
          } catch (error) {
            const code = (error as EvidentError).code;
            if (code !== 'EVIDENT_BAD_PROOF' && code !== 'EVIDENT_WITNESS_ROLLBACK') throw error;
            // Another cosigner of this state moved it meanwhile, or the log signed a newer checkpoint than the one
            // read: again, with the log's checkpoint and the witness's size as they are now.
            const moved = (witness.lastSeen(logKey.name)?.size ?? 0) !== last || (await log.checkpoint()) !== note;
            if (moved && attempt < 10) continue;
            if (code === 'EVIDENT_WITNESS_ROLLBACK') throw error;
            // The log's own proof between exactly these sizes failed: its tree is not the one cosigned.
            throw new EvidentError(
              'EVIDENT_WITNESS_FORK',
              `${logKey.name} at ${size} does not extend what this witness cosigned at ${last}: the log forked`,
            );
          }
        }
      });
    } else {
      const proof = v.proof === undefined ? [] : parseProofFile(readFileArg(v.proof, 'proof'));
      cosigned = await witness.cosign(readFileArg(v.checkpoint as string, 'checkpoint'), logKey, proof);
    }
    write(cosigned);
    return 0;
  },

  async keygen(args) {
    const v = parse('keygen', {
      args,
      strict: true,
      options: { name: { type: 'string' }, out: { type: 'string' }, witness: { type: 'boolean' } },
    });
    if (v.name === undefined) throw new UsageError('keygen: --name is required');
    if (v.out === undefined) throw new UsageError('keygen: --out is required');
    const { signer, verifier } = generateNoteKey(v.name, v.witness ? ALG_COSIGNATURE_V1 : ALG_ED25519);
    try {
      mkdirSync(dirname(resolve(v.out)), { recursive: true, mode: 0o700 }); // a new directory only its owner reads
      writeFileSync(v.out, `${signer}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(
        `keygen: cannot create ${v.out} (${code === 'EEXIST' ? 'it exists; keys are never overwritten' : code})`,
      );
    }
    write(`${verifier}\n`);
    return 0;
  },

  async note(args) {
    const [sub, ...rest] = args;
    if (sub !== 'verify')
      throw new UsageError('note: the subcommand is verify (evident note verify --key VKEY [FILE])');
    const { values: v, positionals } = parseWithPositionals('note verify', {
      args: rest,
      strict: true,
      options: { key: { type: 'string', multiple: true } },
    });
    const keys = (v.key ?? []).map((k) => verifierKeyArg(k, '--key'));
    if (keys.length === 0) throw new UsageError('note verify: at least one --key is required');
    const [file, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError('note verify: one FILE at most');
    const text = file === undefined ? await readStdin('note') : readFileArg(file, 'note');
    write(openNote(text, keys).text);
    return 0;
  },

  async checkpoint(args) {
    const v = parse('checkpoint', {
      args,
      strict: true,
      options: { ...storeFlags, ...remoteFlags, json: { type: 'boolean' }, ...trustFlags },
    });
    if (v.url !== undefined) return remoteCheckpoint(v);
    if (v.key !== undefined || v.witness !== undefined || v.quorum !== undefined) {
      throw new UsageError('checkpoint: --key, --witness and --quorum go with --url (a local log knows its key)');
    }
    return withLog({ store: storeOption(v), readOnly: true }, async (log) => {
      const note = await log.checkpoint();
      if (v.json) {
        if (note === null) {
          const head = await log.treeHead();
          write(
            `${JSON.stringify({ origin: null, size: head.size, root: head.root.toString('base64'), note: null })}\n`,
          );
        } else {
          const c = checkpointOfNote(note);
          write(`${JSON.stringify({ origin: c.origin, size: c.size, root: c.root.toString('base64'), note })}\n`);
        }
        return 0;
      }
      if (note === null)
        throw new EvidentError(
          'EVIDENT_NO_KEY',
          'this log does not sign checkpoints (create it with evident init --key)',
        );
      write(note);
      return 0;
    });
  },

  async proof(args) {
    const [kind, ...rest] = args;
    if (kind !== 'inclusion' && kind !== 'consistency') {
      throw new UsageError('proof: the subcommand is inclusion or consistency');
    }
    const v = parse(`proof ${kind}`, {
      args: rest,
      strict: true,
      options: {
        ...storeFlags,
        json: { type: 'boolean' },
        seq: { type: 'string' },
        size: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
      },
    });
    return withLog({ store: storeOption(v), readOnly: true }, async (log) => {
      const head = await log.treeHead();
      if (kind === 'inclusion') {
        if (v.seq === undefined) throw new UsageError('proof inclusion: --seq is required');
        const seq = parseCount(v.seq, '--seq');
        const size = v.size === undefined ? head.size : parseCount(v.size, '--size');
        if (size > head.size)
          throw new OutOfRangeError(`proof inclusion: --size ${size} is beyond the log's ${head.size} entries`);
        if (seq >= size) throw new OutOfRangeError(`proof inclusion: --seq ${seq} is not in a tree of ${size}`);
        const proof = await log.inclusionProof(seq, size);
        printProof({ kind, seq, size, root: await log.rootAt(size), proof }, v.json === true);
      } else {
        if (v.from === undefined) throw new UsageError('proof consistency: --from is required');
        const from = parseCount(v.from, '--from', 1);
        const to = v.to === undefined ? head.size : parseCount(v.to, '--to');
        if (to > head.size || from > to)
          throw new OutOfRangeError(`proof consistency: need 1 <= --from <= --to <= ${head.size}`);
        const proof = await log.consistencyProof(from, to);
        const fromRoot = await log.rootAt(from);
        printProof({ kind, from, to, fromRoot, root: await log.rootAt(to), proof }, v.json === true);
      }
      return 0;
    });
  },

  async receipt(args) {
    const v = parse('receipt', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        ...remoteFlags,
        seq: { type: 'string' },
        out: { type: 'string' },
        wait: { type: 'string' },
      },
    });
    if (v.seq === undefined) throw new UsageError('receipt: --seq is required');
    const seq = parseCount(v.seq, '--seq');
    const waitMs = v.wait === undefined ? 0 : parseCount(v.wait, '--wait') * 1000;
    const text = await using(logOf(v, true), (log) => log.receipt(seq, { waitMs }));
    if (v.out === undefined) write(text);
    else writeOutput(v.out, text);
    return 0;
  },

  async 'verify-receipt'(args) {
    const { values: v, positionals } = parseWithPositionals('verify-receipt', {
      args,
      strict: true,
      options: { entry: { type: 'string' }, ...trustFlags },
    });
    const [file, ...extra] = positionals;
    if (file === undefined || extra.length > 0) throw new UsageError('verify-receipt: give exactly one receipt FILE');
    if (v.entry === undefined) throw new UsageError('verify-receipt: --entry is required');
    const policy = trustArgs(v);
    const receipt = parseReceipt(readFileArg(file, 'receipt'));
    // I-JSON, as every input: a duplicated member would show one entry here and hash as another.
    const entry = parseIJson(readFileArg(v.entry, 'entry'), '--entry');
    const checkpoint = verifyReceipt(receipt, entry, policy);
    const cosigned = checkpoint.cosigners.map((c) => c.name).join(', ');
    write(
      `ok: entry ${receipt.index} is in ${checkpoint.origin} at tree size ${checkpoint.size}${cosigned ? `, cosigned by ${cosigned}` : ''}\n`,
    );
    return 0;
  },
};

/** A SHA-256 hash in standard base64, as proofs carry them. */
const BASE64_HASH = /^[A-Za-z0-9+/]{43}=$/;

/** Proof hashes from `evident proof` output: JSON (its "proof" array) or text (the lines that are only a hash). */
function parseProofFile(text: string): Buffer[] {
  if (text.trimStart().startsWith('{')) {
    let proof: unknown;
    try {
      proof = (JSON.parse(text) as { proof?: unknown }).proof;
    } catch (error) {
      throw new UsageError(`--proof: not JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(proof)) throw new UsageError('--proof: the JSON has no "proof" array');
    return proof.map((h) => {
      if (typeof h !== 'string' || !BASE64_HASH.test(h)) {
        throw new UsageError(`--proof: ${JSON.stringify(h)} is not a base64 SHA-256 hash`);
      }
      return Buffer.from(h, 'base64');
    });
  }
  return text
    .split('\n')
    .filter((line) => BASE64_HASH.test(line))
    .map((line) => Buffer.from(line, 'base64'));
}

function printProof(p: { kind: string; proof: Buffer[]; root: Buffer } & Record<string, unknown>, json: boolean): void {
  const b64 = (b: Buffer) => b.toString('base64');
  const fields = Object.entries(p).filter(([k]) => k !== 'proof' && k !== 'kind');
  if (json) {
    const out: Record<string, unknown> = {};
    for (const [k, value] of fields) out[k] = Buffer.isBuffer(value) ? b64(value) : value;
    out.proof = p.proof.map(b64);
    write(`${JSON.stringify(out)}\n`);
    return;
  }
  for (const [k, value] of fields) write(`${k} ${Buffer.isBuffer(value) ? b64(value) : String(value)}\n`);
  for (const h of p.proof) write(`${b64(h)}\n`);
}

/**
 * `checkpoint --url`: the service's latest checkpoint, trusted under --key
 * (and the witnesses' quorum) before it is printed. Exit 1 if it is not.
 */
async function remoteCheckpoint(v: {
  url?: string | undefined;
  token?: string | undefined;
  dir?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
  key?: string | undefined;
  witness?: string[] | undefined;
  quorum?: string | undefined;
}): Promise<number> {
  const policy = trustArgs(v);
  const note = await using(logOf(v, true), (log) => log.checkpoint());
  if (note === null) throw new EvidentError('EVIDENT_NO_KEY', `${v.url} serves no checkpoint: the log does not sign`);
  const checkpoint = trustedOrFailed(note, policy, "the log's checkpoint");
  if (typeof checkpoint === 'number') return checkpoint;
  const { origin, size, root } = checkpoint;
  write(v.json ? `${JSON.stringify({ origin, size, root: root.toString('base64'), note })}\n` : note);
  return 0;
}

/** `witness serve`: the C2SP tlog-witness add-checkpoint endpoint, for the logs a policy file lists. */
async function witnessServe(args: string[]): Promise<number> {
  const v = parse('witness serve', {
    args,
    strict: true,
    options: {
      state: { type: 'string' },
      key: { type: 'string' },
      logs: { type: 'string' },
      listen: { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  if (v.state === undefined || v.key === undefined || v.logs === undefined) {
    throw new UsageError('witness serve: --state, --key and --logs are required');
  }
  const logs = parsePolicy(readFileArg(v.logs, 'policy'), { quorumOptional: true }).logs.map((log) => log.key);
  if (logs.length === 0) throw new UsageError(`witness serve: ${v.logs} lists no log (log <vkey> lines)`);
  const witness = new Witness({ key: loadSignerKey(v.key), dir: v.state });
  witness.checkState(); // a state that cannot be written is refused now, not at the first submission
  const { host, port } = listenAddress(v.listen);
  const { buildWitnessServer } = await import('../server/witness-server.js'); // fastify: only when serving
  const app = buildWitnessServer({ witness, logs, logger: loggerOption(v['log-level']) });
  const address = await listenOn(app, { host, port });
  process.stderr.write(`evident: witnessing ${logs.map((key) => key.name).join(', ')} on ${address}\n`);
  await untilStopped();
  await app.close();
  return 0;
}
