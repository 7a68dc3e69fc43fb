/** What every evident command shares: usage errors, flag parsing, output, and opening a log. */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { RemoteLog } from '../client/remote-log.js';
import { logTime } from '../encoding/time.js';
import { EvidentError, InvalidEntryError, InvalidOptionError } from '../errors.js';
import { type AuditLog, Log, type LogOptions } from '../log.js';

export type Command = (args: string[]) => Promise<number>;

/** A bad command line: exit status 2. */
export class UsageError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_USAGE', message);
  }
}

export const DIR_HELP = `  --dir D        the log's directory (default: $EVIDENT_STORE, $EVIDENT_DIR, else ./.evident)
  --store S      the log's store: a directory, file:DIR, or postgres://…[?schema=NAME] (instead of --dir)`;

export const write = (text: string) => process.stdout.write(text);

/** The flags that say where the log is. */
export const storeFlags = { dir: { type: 'string' }, store: { type: 'string' } } as const;

/** The store --dir or --store names (undefined: the default). */
export function storeOption(v: { dir?: string | undefined; store?: string | undefined }): string | undefined {
  if (v.dir !== undefined && v.store !== undefined) throw new UsageError('give --dir or --store, not both');
  const store = v.store ?? v.dir;
  if (store !== undefined && (store.trim() === '' || /^file:(\/\/)?$/.test(store.trim()))) {
    throw new UsageError(`${v.store === undefined ? '--dir' : '--store'} is empty; give a directory`);
  }
  return store;
}

/** Parses a command's flags strictly: unknown flags and positionals are usage errors. */
export function parse<const T extends ParseArgsConfig>(
  command: string,
  config: T,
): ReturnType<typeof parseArgs<T>>['values'] {
  return parseWithPositionals(command, config, false).values;
}

/** parse(), also returning the positional arguments. */
export function parseWithPositionals<const T extends ParseArgsConfig>(
  command: string,
  config: T,
  allowPositionals = true,
): { values: ReturnType<typeof parseArgs<T>>['values']; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ ...config, allowPositionals, tokens: true });
  } catch (error) {
    const message = (error as Error).message.split('\n')[0] as string;
    // `--limit -3`: parseArgs takes -3 for an option; say how to give a value that starts with a dash.
    const ambiguous = /^Option '(-\w|--[\w-]+)' argument is ambiguous/.exec(message);
    if (ambiguous !== null) {
      const flag = ambiguous[1] as string;
      const hint = flag.startsWith('--') ? ` (for a value that starts with -, write ${flag}=VALUE)` : '';
      throw new UsageError(`${command}: ${flag} is followed by an option, not a value${hint}`);
    }
    throw new UsageError(`${command}: ${message}`);
  }
  // parseArgs keeps the last of an option given twice; a command line that says two things is refused instead.
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || config.options?.[token.name]?.multiple === true) continue;
    if (seen.has(token.name))
      throw new UsageError(`${command}: ${token.name.length === 1 ? '-' : '--'}${token.name} is given more than once`);
    seen.add(token.name);
  }
  return { values: parsed.values as ReturnType<typeof parseArgs<T>>['values'], positionals: parsed.positionals };
}

/** Tells of a torn last line a writer moved aside, when it happens. */
function openLog(options: LogOptions): Log {
  const log = new Log(options);
  log.on('recovered', ({ offset, bytes, file, fromSeq }) => {
    process.stderr.write(
      fromSeq === undefined
        ? `evident: the log ended in an incomplete line (${bytes} bytes at byte ${offset}: a writer that died ` +
            `mid-write, or a cut); it was moved to ${file}, and appends go on after the last complete entry\n`
        : `evident: the log ended in a batch written in part (${bytes} bytes from entry ${fromSeq} at byte ` +
            `${offset}: a writer that died mid-commit, never acknowledged); it was moved to ${file}, and appends ` +
            'go on after the last whole commit\n',
    );
  });
  return log;
}

/** Closes a log after `error`: a second failure is told too, never in place of the first. */
async function closeAfter(log: AuditLog, error: unknown): Promise<never> {
  await log.close().catch((closing: unknown) => {
    process.stderr.write(`evident: closing the log failed too: ${(closing as Error).message ?? String(closing)}\n`);
  });
  throw error;
}

/** Runs `use` with a log and closes it afterwards, whatever happens. */
export function withLog<T>(options: LogOptions, use: (log: Log) => Promise<T>): Promise<T> {
  return using(openLog(options), use);
}

/** Runs `use` with `log` and closes it afterwards, whatever happens. */
export async function using<L extends AuditLog, T>(log: L, use: (log: L) => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await use(log);
  } catch (error) {
    return closeAfter(log, error);
  }
  await log.close();
  return result;
}

/** The flags that name a log behind `evident serve` instead. */
export const remoteFlags = { url: { type: 'string' }, token: { type: 'string' } } as const;

export const REMOTE_HELP = `  --url URL      the log served by \`evident serve\` at URL instead (with --token T, or $EVIDENT_TOKEN)`;

/**
 * The log the flags name: the service at --url (its token from --token or
 * $EVIDENT_TOKEN), else the store, opened with `signingKey` if given.
 */
export function logOf(
  v: { dir?: string | undefined; store?: string | undefined; url?: string | undefined; token?: string | undefined },
  readOnly: boolean,
  signingKey?: string,
): AuditLog {
  if (v.url === undefined) {
    if (v.token !== undefined) throw new UsageError('--token goes with --url');
    return openLog({ store: storeOption(v), readOnly, key: signingKey });
  }
  if (v.dir !== undefined || v.store !== undefined) throw new UsageError('give --url, or --dir or --store, not both');
  if (signingKey !== undefined) throw new UsageError('--key is for a log of your own: the service signs with its key');
  const token = v.token ?? (process.env.EVIDENT_TOKEN === '' ? undefined : process.env.EVIDENT_TOKEN);
  return new RemoteLog({ url: v.url, token });
}

/**
 * A step after an append failed (closing the log signs its checkpoint): the
 * entries are durable and were printed, so a retry would record them twice.
 * Exit status 3.
 */
export class AfterAppendError extends Error {
  readonly code: string;

  constructor(appended: string, failure: EvidentError) {
    super(`${appended} in the log, but then: ${failure.message} (do not append again)`, { cause: failure });
    this.code = failure.code;
  }
}

/**
 * Appends with `append`, prints what it returns with `print` before closing
 * the log, and reports a failure to close as an AfterAppendError naming what
 * is already in the log (`appended(result)`).
 */
export async function appendWith<T>(
  log: AuditLog,
  append: (log: AuditLog) => Promise<T>,
  print: (result: T) => void,
  appended: (result: T) => string | null,
): Promise<void> {
  let result: T;
  try {
    result = await append(log);
  } catch (error) {
    return closeAfter(log, error);
  }
  print(result);
  try {
    await log.close();
  } catch (error) {
    const what = appended(result);
    if (what === null || !(error instanceof EvidentError)) throw error;
    throw new AfterAppendError(what, error);
  }
}

/**
 * A command-line argument as given. Node decodes arguments as UTF-8 with
 * U+FFFD for bytes that are not; an argument holding U+FFFD is refused, since
 * it was most likely not UTF-8 (a literal U+FFFD can be written \ufffd in
 * JSON, or come through --batch, whose bytes are checked).
 */
export function argument(text: string, flag: string): string {
  const at = text.indexOf('\ufffd');
  if (at >= 0) {
    throw new InvalidEntryError(flag, `holds U+FFFD at character ${at}: the argument is not UTF-8`);
  }
  return text;
}

/** RFC 3339 (or a plain date) to the log's UTC millisecond form, so comparisons are exact. */
export function parseTime(text: string, flag: '--since' | '--until'): string {
  const time = logTime(text, flag === '--since' ? 'since' : 'until');
  if (time === null) {
    throw new UsageError(`${flag}: ${JSON.stringify(text)} is not an RFC 3339 time such as 2026-11-22T09:30:00Z`);
  }
  return time;
}

export function parseCount(text: string, flag: string, min = 0): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(
      `${flag}: expected a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

export async function readStdin(what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_INPUT_FILE)
      throw new UsageError(`the ${what} on stdin is larger than ${MAX_INPUT_FILE} bytes: it is not one`);
    chunks.push(chunk as Buffer);
  }
  return utf8(Buffer.concat(chunks), `the ${what} on stdin`);
}

/** Notes, receipts, proofs, keys and entries are small: a file far larger (or endless, like /dev/zero) is not one. */
export const MAX_INPUT_FILE = 1 << 20;

/** The text of a file the command line names; a usage error naming it if it cannot be read, is too large or is not UTF-8. */
export function readFileArg(path: string, what: string): string {
  const named = `${what} ${JSON.stringify(path)}`;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new UsageError(`${named} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
  try {
    const buffer = Buffer.allocUnsafe(MAX_INPUT_FILE + 1);
    let size = 0;
    while (size < buffer.length) {
      const n = readSync(fd, buffer, size, buffer.length - size, null);
      if (n === 0) break;
      size += n;
    }
    if (size > MAX_INPUT_FILE) throw new UsageError(`${named} is larger than ${MAX_INPUT_FILE} bytes: it is not one`);
    return utf8(buffer.subarray(0, size), named);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${named} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  } finally {
    closeSync(fd);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function utf8(bytes: Buffer, named: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new UsageError(`${named} is not UTF-8 text`);
  }
}

/** `--listen HOST:PORT` (an IPv6 host in brackets) as fastify's listen options. */
export function listenAddress(text: string | undefined): { host: string; port: number } {
  const listen = text ?? '127.0.0.1:8080';
  const match = /^(.*):([0-9]{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) throw new UsageError(`--listen: ${JSON.stringify(listen)} is not HOST:PORT`);
  const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  if (host === '')
    throw new UsageError('--listen: give the host too (127.0.0.1:PORT, or 0.0.0.0:PORT for every interface)');
  return { host, port };
}

/** `--log-level`: request logs as pino JSON lines on stdout, or none. */
export function loggerOption(text: string | undefined): false | { level: string } {
  const level = text ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'silent'].includes(level)) {
    throw new UsageError(`--log-level: ${JSON.stringify(level)}; one of fatal, error, warn, info, debug, silent`);
  }
  return level === 'silent' ? false : { level };
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilStopped(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** Starts `app` listening; an address in use or not this machine's is a clear error, not an errno. */
export async function listenOn(
  app: { listen(options: { host: string; port: number }): Promise<string> },
  where: { host: string; port: number },
): Promise<string> {
  try {
    return await app.listen(where);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'something else listens there'
        : code === 'EADDRNOTAVAIL'
          ? 'that address is not one of this machine'
          : code === 'EACCES'
            ? 'not allowed (a port below 1024 needs privileges)'
            : (error as Error).message;
    throw new InvalidOptionError(`--listen ${where.host}:${where.port}: ${why}`);
  }
}

/** Writes an output file the user named; a failure says which file and why. */
export function writeOutput(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    throw new EvidentError('EVIDENT_WRITE_FAILED', `cannot write ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
