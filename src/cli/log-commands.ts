/** The log's own commands: init, append, verify, log, tail, copy. */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RemoteLog } from '../client/remote-log.js';
import type { TilesVerifyResult } from '../client/verify-tiles.js';
import { copyLog } from '../copy.js';
import { canonicalize } from '../encoding/canonical.js';
import { parseIJson } from '../encoding/ijson.js';
import { type Entry, type EntryInput, entryIndexOf } from '../entry.js';
import { EvidentError, InvalidEntryError, LogCorruptError, NoteError, TrustError } from '../errors.js';
import type { Appended } from '../lifecycle/sequencer.js';
import { type AuditLog, Log } from '../log.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import type { TrustedCheckpoint } from '../note/trust.js';
import { nodeFiles } from '../store/file/files.js';
import type { ReadQuery, VerifyResult } from '../store/store.js';
import {
  appendWith,
  argument,
  type Command,
  DIR_HELP,
  logOf,
  parse,
  parseCount,
  parseTime,
  REMOTE_HELP,
  readFileArg,
  remoteFlags,
  storeFlags,
  storeOption,
  UsageError,
  using,
  withLog,
  write,
} from './common.js';
import { events } from './ndjson.js';
import { ProgressBar, TABLE_HEADER, tableRow, thousands } from './output.js';
import { TRUST_HELP, trustArgs, trustedOrFailed, trustFlags } from './tlog-commands.js';

/** Lines of stdin committed in batches of this many: all or nothing up to it. */
export const BATCH_LINES = 4096;
const BATCH = thousands(BATCH_LINES);

export const LOG_HELP: Record<string, string> = {
  init: `Usage: evident init [--dir D] [--key FILE]

Creates an empty log (the directory and its log.jsonl). Succeeds if the log exists already.
  --key FILE     make it a signing log: it signs C2SP checkpoints with this key (from evident keygen), and its
                 origin is the key's name, which its first entry declares. Default: $EVIDENT_KEY, if set.
                 Writers find the key through config.json (or --key / $EVIDENT_KEY). A log signs from its first
                 entry: an existing log that does not sign is refused.
${DIR_HELP}`,
  reanchor: `Usage: evident reanchor --actor A --reason TEXT [--key FILE] [--dir D]

For a signing log that refuses appends because its entries no longer match its signed checkpoint (cut short,
rewritten) or its checkpoint is gone: accepts the history the log now holds, records who did it and why in a new
entry (evident.log.reanchor, with the old checkpoint), and signs a checkpoint of the whole log. Witnesses that
cosigned the old checkpoint refuse the new one if it does not extend it. Stop the log's other writers first.
  --actor A      who re-anchors (required)
  --reason TEXT  why (required)
  --key FILE     the log's signing key (default: $EVIDENT_KEY, then config.json)
${DIR_HELP}`,
  append: `Usage: evident append --actor A --action V [--target T]... [--outcome O] [--data JSON] [--key KEY]
                      [--dir D | --url URL]
       evident append --batch [--skip N] [--key KEY] [--dir D | --url URL] < events.ndjson

Appends one entry and prints it, as stored, as one JSON line. The command returns once the entry is durable.
  --actor A      who acted (required)
  --action V     what was done, a dotted verb such as proposal.approve (required)
  --target T     what it was done to (repeatable)
  --outcome O    how it ended, e.g. success, denied
  --data JSON    a JSON object with further detail (I-JSON: no repeated names, integers within ±(2^53-1))
  --batch        read events (JSON objects with actor, action, targets, outcome, data) from stdin, one per line,
                 and append them; prints {"appended":N,"first":SEQ,"last":SEQ}. Up to ${BATCH} lines are one
                 atomic commit: a bad line rejects them all, naming the line, and nothing is written. A longer
                 input is committed ${BATCH} lines at a time, in order: a bad line stops it, the batches before
                 its own are in the log, and the error says how many lines to --skip on a rerun.
  --skip N       with --batch: pass over the first N lines of stdin (those a failed run committed)
  --key KEY      a signing log's key, text or file (default: $EVIDENT_KEY, then the file the log records)
${DIR_HELP}
${REMOTE_HELP}`,
  verify: `Usage: evident verify [--dir D] [--json] [--threads N]
       evident verify --checkpoint FILE --key VKEY [--witness VKEY]... [--quorum K] [--since-checkpoint]
       evident verify --url URL --key VKEY [--witness VKEY]... [--quorum K] [--checkpoint FILE | --remember FILE]
                      [--since-checkpoint]

Checks every entry: canonical encoding, hash, log identity, sequence, chain link, time order, complete last line.
With a checkpoint you trust (signed by the log's key, cosigned by the quorum), it also recomputes the Merkle tree
from the entries: fewer entries than the checkpoint covers is \`truncated\`, entries that do not hash to its root
is \`rewritten\`. Exit 0 when intact; exit 1 when tampered or corrupt, naming the first bad entry's seq, line and
reason, when the checkpoint is not signed by the key, or when the log cannot be read (EVIDENT_READ_FAILED, say a
database that is down: a monitor tells these apart by the code); exit 2 when there is no log. Never writes to it.
  --json         print the result as one JSON object
  --threads N    verify ranges of the file on N worker threads, at most one per core (default: 1 below 16 MiB,
                 else one per core up to 4)
  --checkpoint FILE  a checkpoint verified before (a signed note)
  --since-checkpoint only check the entries after the checkpoint, trusting the log's tree up to it once it is
                 shown to hash to the checkpoint's root (cheap nightly checks of large logs); with --url, only the
                 tiles and entry bundles from the one holding the checkpoint's last entry are read
  --url URL      verify the log \`evident serve\` serves at URL through its C2SP tlog-tiles API, trusting nothing
                 but --key: its checkpoint must be signed by the key, every entry is rebuilt from the entry
                 bundles and checked, the tree recomputed must have the checkpoint's root, and the tiles served
                 must be that tree's. A checkpoint of that log verified before (--checkpoint) must be a prefix of
                 the new one, else \`split-view\` (the key signed two histories) or \`truncated\`
  --remember FILE with --url: check against the checkpoint in FILE, if there is one, and keep the newly verified
                 checkpoint there (a monitor run again and again)
${TRUST_HELP}
${DIR_HELP}`,
  log: `Usage: evident log [--actor A] [--action V] [--target T] [--since ISO] [--until ISO] [--limit N] [--json]
                   [--dir D | --url URL]

Lists entries in order, as a table (or NDJSON with --json).
  --actor A      only entries by this actor
  --action V     only this action; \`proposal.*\` matches proposal and every proposal.<verb>
  --target T     only entries with this target
  --since ISO    only entries at or after this time (RFC 3339, or a date such as 2026-11-22)
  --until ISO    only entries at or before this time
  --limit N      at most N entries
  --json         one JSON entry per line
${DIR_HELP}
${REMOTE_HELP}`,
  copy: `Usage: evident copy --from STORE --to STORE [--json]

Copies a log entry for entry into a store that holds no entries yet: the same lines (hashes, ids and timestamps
kept: it is the same log), its signed checkpoint and cosignatures, and where its key file is. Every entry is
verified on the way, and the copy is verified when done. A directory log moves into PostgreSQL this way, and a
PostgreSQL log comes out to a directory that \`evident verify --checkpoint\` checks offline. Entries appended to
the source meanwhile are not copied. Exit 1 if the source or the copy fails verification.
  --from STORE   the log to copy: a directory, file:DIR, or postgres://…[?schema=NAME]
  --to STORE     where to (created if missing)
  --json         print {"entries","head","checkpoint","cosignatures","verified"} as one JSON object`,
  tail: `Usage: evident tail [-n N] [-f] [--json] [--dir D | --url URL]

Shows the last N entries (default 10); with -f, keeps printing new entries as they are appended (Ctrl-C stops).
  -n N           how many entries
  -f, --follow   follow the log
  --json         one JSON entry per line
${DIR_HELP}
${REMOTE_HELP}`,
};

export const LOG_COMMANDS: Record<string, Command> = {
  async init(args) {
    const v = parse('init', {
      args,
      strict: true,
      options: { ...storeFlags, key: { type: 'string' } },
    });
    const signingKey = v.key ?? process.env.EVIDENT_KEY;
    const store = storeOption(v);
    await Log.init({ store, signingKey });
    const log = new Log({ store, readOnly: true });
    const note = await log.checkpoint().finally(() => log.close());
    const origin = note === null ? '' : ` signing checkpoints as ${checkpointOfNote(note).origin}`;
    write(`initialised ${log.location}${origin}\n`);
    return 0;
  },

  async reanchor(args) {
    const v = parse('reanchor', {
      args,
      strict: true,
      options: { ...storeFlags, key: { type: 'string' }, actor: { type: 'string' }, reason: { type: 'string' } },
    });
    if (v.actor === undefined) throw new UsageError('reanchor: --actor (who re-anchors) is required');
    if (v.reason === undefined) throw new UsageError('reanchor: --reason is required');
    const note = await Log.reanchor({ store: storeOption(v), key: v.key, actor: v.actor, reason: v.reason });
    write(note);
    return 0;
  },

  async append(args) {
    const v = parse('append', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        ...remoteFlags,
        actor: { type: 'string' },
        action: { type: 'string' },
        target: { type: 'string', multiple: true },
        outcome: { type: 'string' },
        data: { type: 'string' },
        batch: { type: 'boolean' },
        skip: { type: 'string' },
        key: { type: 'string' },
      },
    });
    if (v.batch) {
      for (const name of ['actor', 'action', 'target', 'outcome', 'data'] as const) {
        if (v[name] !== undefined) throw new UsageError(`append: --${name} cannot be combined with --batch`);
      }
      const skip = v.skip === undefined ? 0 : parseCount(v.skip, '--skip');
      await appendWith(
        logOf(v, false, v.key),
        (log) => appendStream(log, process.stdin, skip),
        (report) => write(`${JSON.stringify(report)}\n`),
        ({ appended, first, last }) =>
          appended === 0 ? null : `the ${appended} entries (seq ${first} to ${last}) are`,
      );
      return 0;
    }
    if (v.skip !== undefined) throw new UsageError('append: --skip goes with --batch');
    if (v.actor === undefined) throw new UsageError('append: --actor is required');
    if (v.action === undefined) throw new UsageError('append: --action is required');
    const input: EntryInput = { actor: argument(v.actor, '--actor'), action: argument(v.action, '--action') };
    if (v.target !== undefined) input.targets = v.target.map((target) => argument(target, '--target'));
    if (v.outcome !== undefined) input.outcome = argument(v.outcome, '--outcome');
    if (v.data !== undefined) input.data = parseIJson(argument(v.data, '--data'), '--data') as Record<string, unknown>;
    await appendWith(
      logOf(v, false, v.key),
      (log) => log.append(input),
      (entry) => write(`${canonicalize(entry)}\n`),
      (entry) => `the entry (seq ${entry.seq}) is`,
    );
    return 0;
  },

  async verify(args) {
    const v = parse('verify', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        ...remoteFlags,
        json: { type: 'boolean' },
        threads: { type: 'string' },
        checkpoint: { type: 'string' },
        remember: { type: 'string' },
        'since-checkpoint': { type: 'boolean' },
        ...trustFlags,
      },
    });
    if (v.url !== undefined) return verifyRemote(v);
    if (v.remember !== undefined) throw new UsageError('verify: --remember goes with --url');
    let checkpoint: TrustedCheckpoint | undefined;
    if (v.checkpoint !== undefined) {
      const trusted = trustedFile(v.checkpoint, v);
      if (typeof trusted === 'number') return trusted;
      checkpoint = trusted;
    } else if (v.key !== undefined || v.witness !== undefined || v.quorum !== undefined || v['since-checkpoint']) {
      throw new UsageError('verify: --key, --witness, --quorum and --since-checkpoint go with --checkpoint');
    }
    const bar = !v.json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
    const started = performance.now();
    let location = '';
    const result = await withLog({ store: storeOption(v), readOnly: true }, (log) => {
      location = log.location;
      return log.verify({
        threads: v.threads === undefined ? undefined : parseCount(v.threads, '--threads', 1),
        onProgress: bar ? (p) => bar.update(p) : undefined,
        checkpoint,
        sinceCheckpoint: v['since-checkpoint'],
      });
    }).finally(() => bar?.done());
    if (v.json) {
      write(`${JSON.stringify(result)}\n`);
    } else if (result.ok) {
      // Since a checkpoint, the entries before it were not read: the line says which were.
      writeVerified(result, started, v['since-checkpoint'] === true ? (checkpoint?.size ?? 0) : 0);
      if (checkpoint !== undefined) {
        write(`consistent with the checkpoint at size ${checkpoint.size}; tree root now ${result.root}\n`);
      } else if (result.root !== undefined) {
        write(`consistent with its own signed checkpoint; tree root now ${result.root}\n`);
      }
    } else {
      writeFailure(result);
    }
    if (!v.json && result.recovered !== undefined) {
      write(
        `note: ${result.recovered} incomplete last line(s) or batch(es) were moved aside since the log began ` +
          `(a writer died mid-write, or the log was cut): see ${location}/quarantine\n`,
      );
    }
    return result.ok ? 0 : 1;
  },

  async log(args) {
    const v = parse('log', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        ...remoteFlags,
        actor: { type: 'string' },
        action: { type: 'string' },
        target: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
    const query: ReadQuery = {
      actor: v.actor,
      action: v.action,
      target: v.target,
      since: v.since === undefined ? undefined : parseTime(v.since, '--since'),
      until: v.until === undefined ? undefined : parseTime(v.until, '--until'),
      limit: v.limit === undefined ? undefined : parseCount(v.limit, '--limit'),
    };
    await using(logOf(v, true), async (log) => {
      const printer = new EntryPrinter(v.json === true);
      for await (const entry of log.read(query)) printer.print(entry);
      printer.end();
    });
    return 0;
  },

  async copy(args) {
    const v = parse('copy', {
      args,
      strict: true,
      options: { from: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' } },
    });
    const { from, to } = v;
    if (from === undefined || to === undefined) throw new UsageError('copy: --from and --to are required');
    if (from.trim() === '' || to.trim() === '') throw new UsageError('copy: --from and --to name stores; one is empty');
    const copied = await copyLog({ from, to });
    const verified = await withLog({ store: to, readOnly: true }, (log) => log.verify());
    if (v.json) {
      write(`${JSON.stringify({ ...copied, verified: verified.ok })}\n`);
    } else {
      const signed = copied.checkpoint ? `, its signed checkpoint and ${copied.cosignatures} cosigned one(s)` : '';
      write(`copied ${copied.entries} entries${signed}, head ${copied.head.hash}\n`);
      if (verified.ok)
        write(
          `the copy verifies: ${verified.size} entries${verified.root === undefined ? '' : `, tree root ${verified.root}`}\n`,
        );
      else write(`FAILED: the copy does not verify: ${verified.failure?.reason}: ${verified.failure?.message}\n`);
    }
    return verified.ok ? 0 : 1;
  },

  async tail(args) {
    const v = parse('tail', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        ...remoteFlags,
        n: { type: 'string', short: 'n' },
        follow: { type: 'boolean', short: 'f' },
        json: { type: 'boolean' },
      },
    });
    const count = v.n === undefined ? 10 : parseCount(v.n, '-n');
    const json = v.json === true;
    await using(logOf(v, true), async (log) => {
      const printer = new EntryPrinter(json);
      const printed = { next: Math.max(0, (await log.head()).size - count), hash: null as string | null };
      await printFrom(log, printed, printer);
      if (v.follow) printer.end(); // following an empty log: the header now, the rows as they come
      while (v.follow) {
        await sleep(200);
        await printFrom(log, printed, printer);
      }
      printer.end();
    });
    return 0;
  },
};

/** A checkpoint file, trusted under the flags' policy; exit status 1 (after saying why) when it is not. */
function trustedFile(
  path: string,
  v: { key?: string | undefined; witness?: string[] | undefined; quorum?: string | undefined },
): TrustedCheckpoint | number {
  return trustedOrFailed(readFileArg(path, 'checkpoint'), trustArgs(v), `the checkpoint in ${path}`);
}

/** The verdict line of an intact log; `from`: the first entry read, when those before it were verified before. */
function writeVerified(result: VerifyResult, started: number, from = 0): void {
  const seconds = (performance.now() - started) / 1000;
  const rate = thousands(Math.round((result.size - from) / Math.max(seconds, 1e-3)));
  const read = from === 0 ? '' : ` (the ${result.size - from} from seq ${from} read)`;
  write(
    `ok: ${result.size} ${result.size === 1 ? 'entry' : 'entries'} verified${read} in ${seconds.toFixed(2)}s (${rate} entries/s), head ${result.head}\n`,
  );
}

function writeFailure(result: VerifyResult): void {
  const f = result.failure;
  if (f === undefined) return;
  const where = f.offset < 0 ? `line ${f.line}` : `line ${f.line}, byte ${f.offset}`;
  write(`FAILED: ${f.reason} at seq ${f.seq} (${where}): ${f.message}\n`);
  write(
    `${result.size} ${result.size === 1 ? 'entry' : 'entries'} before it ${result.size === 1 ? 'is' : 'are'} intact.\n`,
  );
}

/**
 * `verify --url`: the log behind `evident serve`, through its tlog-tiles API,
 * trusting only the key; with --remember, against the checkpoint verified last
 * time, which it then replaces.
 */
async function verifyRemote(v: {
  url?: string | undefined;
  token?: string | undefined;
  dir?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
  threads?: string | undefined;
  checkpoint?: string | undefined;
  remember?: string | undefined;
  'since-checkpoint'?: boolean | undefined;
  key?: string | undefined;
  witness?: string[] | undefined;
  quorum?: string | undefined;
}): Promise<number> {
  if (v.threads !== undefined) throw new UsageError('verify: --threads is for a local log, not --url');
  if (v['since-checkpoint'] && v.checkpoint === undefined && v.remember === undefined) {
    throw new UsageError('verify: --since-checkpoint needs --checkpoint or --remember');
  }
  if (v.checkpoint !== undefined && v.remember !== undefined) {
    throw new UsageError('verify: give --checkpoint or --remember, not both');
  }
  const policy = trustArgs(v);
  if (v.remember !== undefined && !existsSync(dirname(resolve(v.remember)))) {
    throw new UsageError(`--remember: there is no directory ${dirname(resolve(v.remember))} to keep the checkpoint in`);
  }
  const known = v.checkpoint ?? (v.remember !== undefined && existsSync(v.remember) ? v.remember : undefined);
  let previous: TrustedCheckpoint | undefined;
  if (known !== undefined) {
    const trusted = trustedFile(known, v);
    if (typeof trusted === 'number') return trusted;
    previous = trusted;
  }
  const log = logOf(v, true) as RemoteLog;
  const bar = !v.json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  const started = performance.now();
  let result: TilesVerifyResult;
  try {
    result = await log.verify({
      policy,
      checkpoint: previous,
      sinceCheckpoint: v['since-checkpoint'],
      onProgress: bar ? (p) => bar.update(p) : undefined,
    });
  } catch (error) {
    if (!(error instanceof NoteError || error instanceof TrustError)) throw error;
    write(`FAILED: the log's checkpoint is not trusted: ${error.message}\n`);
    return 1;
  } finally {
    bar?.done();
  }
  if (result.ok && v.remember !== undefined) {
    await nodeFiles.replaceFile(v.remember, Buffer.from(result.note), true).catch((error: Error) => {
      throw new EvidentError('EVIDENT_WRITE_FAILED', `cannot keep the checkpoint in ${v.remember}: ${error.message}`, {
        cause: error,
      });
    });
  }
  const { checkpoint, note: _note, ...plain } = result;
  if (v.json) {
    write(`${JSON.stringify({ ...plain, checkpointSize: checkpoint.size })}\n`);
  } else if (result.ok) {
    writeVerified(result, started, result.from);
    const since = previous === undefined ? '' : `, consistent with the checkpoint at size ${previous.size}`;
    write(`the entries hash to the log's signed checkpoint at size ${checkpoint.size}${since}\n`);
  } else {
    writeFailure(result);
  }
  return result.ok ? 0 : 1;
}

/**
 * Prints the entries from `printed.next` on, and moves it past them. Each must
 * follow the last one printed (its prev is that one's hash): a log replaced or
 * rewritten under `tail -f` stops it, rather than print another history on.
 */
async function printFrom(
  log: AuditLog,
  printed: { next: number; hash: string | null },
  printer: EntryPrinter,
): Promise<void> {
  for await (const entry of log.read({ fromSeq: printed.next })) {
    if (printed.hash !== null && entry.prev !== printed.hash) {
      throw new LogCorruptError(
        `entry ${entry.seq} does not follow entry ${entry.seq - 1} as it was printed: the log was rewritten or replaced`,
      );
    }
    printer.print(entry);
    printed.next = entry.seq + 1;
    printed.hash = entry.hash;
  }
}

/** Entries as NDJSON, or as a table whose header is printed with the first row: never before a failure. */
class EntryPrinter {
  readonly #json: boolean;
  #headed: boolean;

  constructor(json: boolean) {
    this.#json = json;
    this.#headed = json;
  }

  print(entry: Entry): void {
    this.end();
    write(this.#json ? `${canonicalize(entry)}\n` : `${tableRow(entry)}\n`);
  }

  /** The header, if no row has printed it: an empty table still has one. */
  end(): void {
    if (this.#headed) return;
    this.#headed = true;
    write(`${TABLE_HEADER}\n`);
  }
}

/**
 * Appends the NDJSON events of `input`, BATCH_LINES to a commit, validating
 * the next batch while the last one commits. A bad line or a failed commit
 * stops it: the batches before are committed, nothing from that batch on is,
 * and the error says how many lines to --skip to go on after them.
 */
async function appendStream(log: AuditLog, input: AsyncIterable<Buffer | string>, skip: number): Promise<Appended> {
  let first: number | null = null;
  let last: number | null = null;
  let appended = 0;
  let committed = skip; // lines of the input that are in the log
  let inFlight: Promise<void> | null = null;
  let failed = false;
  let batch: EntryInput[] = [];
  let lines: number[] = [];
  const commit = (inputs: EntryInput[], numbers: number[]) => {
    const done = log.appendBulk(inputs).then(
      (bulk) => {
        first ??= bulk.first;
        last = bulk.last ?? last;
        appended += bulk.appended;
        committed = numbers.at(-1) ?? committed;
      },
      (error: unknown) => {
        failed = true;
        if (!(error instanceof EvidentError)) throw error;
        // An error about one entry is named by its line of the input.
        const at = entryIndexOf(error, numbers.length);
        if (at === undefined) throw error;
        if (error instanceof InvalidEntryError) {
          throw new InvalidEntryError(`stdin line ${numbers[at]}: ${error.field}`, error.problem);
        }
        throw new EvidentError(error.code, `stdin line ${numbers[at]}: ${error.message}`);
      },
    );
    done.catch(() => undefined); // awaited before the next commit or at the end, not an unhandled rejection meanwhile
    return done;
  };
  try {
    for await (const { line, value } of events(input, skip)) {
      if (failed) break; // the commit in flight failed: read no further
      batch.push(value as unknown as EntryInput);
      lines.push(line);
      if (batch.length < BATCH_LINES) continue;
      await inFlight;
      inFlight = commit(batch, lines);
      batch = [];
      lines = [];
    }
    await inFlight;
    if (batch.length > 0) await commit(batch, lines);
  } catch (thrown) {
    // The batch in flight holds earlier lines than any that failed since: its refusal is the one to report.
    let error = thrown;
    await inFlight?.catch((earlier: unknown) => {
      error = earlier;
    });
    if (committed > skip) {
      process.stderr.write(
        `evident: lines 1 to ${committed} of the input are in the log (seq ${first} to ${last}); ` +
          `nothing after them was written. Fix the line named below, then rerun with --skip ${committed}.\n`,
      );
    }
    throw error;
  }
  return { appended, first, last };
}
