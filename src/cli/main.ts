#!/usr/bin/env node
/**
 * The `evident` command: a thin layer over the library. Its output and exit
 * codes are a contract scripts rely on:
 *   0  success
 *   1  the log failed verification, or is corrupt or unwritable
 *   2  usage error, invalid input, or no readable log
 *   3  entries were appended (and printed), but a step after failed: do not append them again
 * Errors are one line on stderr: `evident: <message> [<CODE>]`.
 */
import { ERROR_CODES, isErrorCode } from '../errors.js';
import { AfterAppendError, type Command, UsageError, write } from './common.js';
import { LOG_COMMANDS, LOG_HELP } from './log-commands.js';
import { SERVE_COMMANDS, SERVE_HELP } from './serve-commands.js';
import { TLOG_COMMANDS, TLOG_HELP } from './tlog-commands.js';

const HELP: Record<string, string> = {
  evident: `evident: a tamper-evident audit log

Usage: evident <command> [options]

Commands:
  init       create a log
  append     append an entry (or a batch from stdin)
  verify     check the whole log; exit 1 names the first bad entry
  log        list entries, filtered
  tail       show the last entries, or follow new ones
  copy       copy a log into another store (a directory, PostgreSQL), entry for entry
  reanchor   accept the history a signing log now holds, when it no longer matches its checkpoint

Proofs and checkpoints:
  keygen          make a signing key (for a log or a witness)
  checkpoint      print the log's latest signed checkpoint
  proof           print an inclusion or consistency proof
  receipt         write an offline-verifiable receipt for an entry (C2SP tlog-proof)
  verify-receipt  check a receipt without the log
  note            verify any C2SP signed note
  witness         cosign a log's checkpoints as a witness, refusing rollbacks and forks

Over HTTP:
  serve           serve the log: appends with tokens, reads, receipts, the C2SP tlog-tiles API
  token           add, list or revoke the service's tokens

Run \`evident <command> --help\` for a command's options.
Exit codes: 0 ok, 1 verification failed or the log is corrupt or unwritable, 2 usage error or no readable log,
3 appended, but a step after failed (the entries are in the log: do not append them again).`,
  ...LOG_HELP,
  ...TLOG_HELP,
  ...SERVE_HELP,
};

const COMMANDS: Record<string, Command> = { ...LOG_COMMANDS, ...TLOG_COMMANDS, ...SERVE_COMMANDS };

// The library's warnings (a key file others can read, a checkpoint that failed) go to stderr once each, as
// the command's own lines, not as Node's "(node:PID) Warning" with a hint about --trace-warnings.
const warned = new Set<string>();
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  const message = warning.message.replace(/^evident: /, '');
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`evident: warning: ${message}\n`);
});

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' && rest[0] !== undefined && Object.hasOwn(HELP, rest[0]) ? rest[0] : 'evident';
    write(`${HELP[topic]}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)} (see evident --help)`);
  if (rest.includes('--help') || rest.includes('-h')) {
    write(`${HELP[command]}\n`);
    return 0;
  }
  return run(rest);
}

/** Exit status for an error: the code's, from the one table (1 when something failed to verify or write, 2 to fix the call). */
function exitCodeFor(error: unknown): number {
  if (error instanceof AfterAppendError) return 3;
  const code = (error as { code?: unknown }).code;
  return isErrorCode(code) ? ERROR_CODES[code].exit : 2;
}

// A reader that closed the pipe (`evident log | head -1`) ends the command quietly; any other
// failure to write the output (a full disk) is an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    if (stream === process.stdout) {
      process.stderr.write(`evident: cannot write the output: ${error.message} [EVIDENT_WRITE_FAILED]\n`);
    }
    process.exit(1);
  });
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`evident: ${message}${typeof code === 'string' ? ` [${code}]` : ''}\n`);
    process.exitCode = exitCodeFor(error);
  },
);
