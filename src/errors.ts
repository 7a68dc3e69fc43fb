/**
 * Every error evident raises is an EvidentError whose `code` is one of
 * ERROR_CODES. Scripts and callers branch on the code; messages may be
 * reworded, codes never. docs/api.md lists the same table.
 */

/** Each code, what it means, and the CLI's exit status for it (1: something failed to verify or write; 2: fix the call). */
export const ERROR_CODES = {
  EVIDENT_INVALID_ENTRY: { exit: 2, means: 'the entry cannot be stored as given' },
  EVIDENT_INVALID_OPTION: { exit: 2, means: 'an option or argument has a bad value' },
  EVIDENT_USAGE: { exit: 2, means: 'a bad command line (CLI only)' },
  EVIDENT_NO_LOG: { exit: 2, means: 'there is no log where one was expected' },
  EVIDENT_READ_ONLY: { exit: 2, means: 'a write to a log opened read-only' },
  EVIDENT_CLOSED: { exit: 2, means: 'the log was closed' },
  EVIDENT_QUEUE_FULL: { exit: 2, means: 'record() was called with a full background queue' },
  EVIDENT_OUT_OF_RANGE: { exit: 2, means: 'a position or tree size the log does not have' },
  EVIDENT_NO_KEY: { exit: 2, means: 'a signing log without its key, or a signature asked of a log that does not sign' },
  EVIDENT_BAD_KEY: { exit: 2, means: 'a malformed key, one whose hash does not match, or one of the wrong kind' },
  EVIDENT_BAD_CONFIG: { exit: 2, means: "the store's configuration file cannot be used" },
  EVIDENT_NOT_YET: { exit: 1, means: 'no signed checkpoint covers the entry yet' },
  EVIDENT_LOG_CORRUPT: {
    exit: 1,
    means: 'the stored log is not what evident wrote (a malformed line, a file cut short)',
  },
  EVIDENT_HISTORY_MISMATCH: {
    exit: 1,
    means: "a signing log's entries do not extend its signed checkpoint, or the checkpoint is gone",
  },
  EVIDENT_WRITE_FAILED: { exit: 1, means: 'writing or syncing failed; the batch was rolled back' },
  EVIDENT_READ_FAILED: { exit: 1, means: 'reading the store failed (permissions, an I/O error)' },
  EVIDENT_RECORD_FAILED: { exit: 1, means: 'background record() events could not be written' },
  EVIDENT_NATIVE: { exit: 1, means: "the file store's lock addon is missing or failed" },
  EVIDENT_BAD_PROOF: { exit: 1, means: 'an inclusion or consistency proof does not verify' },
  EVIDENT_NOTE_MALFORMED: { exit: 1, means: 'a signed note or checkpoint is malformed' },
  EVIDENT_NOTE_BAD_SIGNATURE: { exit: 1, means: "a given key's signature on a note does not verify" },
  EVIDENT_NOTE_UNVERIFIED: { exit: 1, means: 'no given key signed the note' },
  EVIDENT_UNTRUSTED: {
    exit: 1,
    means: "a checkpoint not signed by the log's key, for another origin, or short of the quorum",
  },
  EVIDENT_BAD_RECEIPT: { exit: 1, means: 'a receipt that is malformed or does not hold for the entry' },
  EVIDENT_WITNESS_ROLLBACK: { exit: 1, means: 'a witness refuses a checkpoint smaller than one it cosigned' },
  EVIDENT_WITNESS_FORK: { exit: 1, means: 'a witness refuses a checkpoint that does not extend what it cosigned' },
  EVIDENT_WITNESS_STATE: { exit: 1, means: "a witness's state directory cannot be read or written" },
  EVIDENT_WITNESS_CONFLICT: {
    exit: 1,
    means: 'a witness has cosigned another size for the log than the one a request starts from: retry from it',
  },
  EVIDENT_BAD_REQUEST: { exit: 2, means: 'an HTTP request the service cannot take (a bad parameter or body)' },
  EVIDENT_UNAUTHORIZED: { exit: 2, means: 'an HTTP request without a token, or with one the service does not know' },
  EVIDENT_FORBIDDEN: { exit: 2, means: "the token's scopes or actors do not allow the request" },
  EVIDENT_NOT_FOUND: { exit: 2, means: 'no such entry, tile or resource' },
  EVIDENT_TOO_LARGE: { exit: 2, means: 'an HTTP request body over the limit' },
  EVIDENT_UNAVAILABLE: { exit: 1, means: 'the evident service did not answer, or not with an answer of its own' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is one of the table's own codes (not a name every object inherits, such as `toString`). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

export interface EvidentErrorOptions extends ErrorOptions {
  /** For an error about one entry of a batch: its position in the batch, from 0. */
  index?: number | undefined;
}

export class EvidentError extends Error {
  readonly code: ErrorCode;
  /** For an error about one entry of a batch: its position in the batch, from 0. */
  readonly index: number | undefined;

  constructor(code: ErrorCode, message: string, options?: EvidentErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.index = options?.index;
  }
}

/** The caller's entry cannot be stored as given. `field` is a JSON path such as `$.data.items[2]`. */
export class InvalidEntryError extends EvidentError {
  readonly field: string;
  readonly problem: string;

  /** `index`: the entry's position in a batch, when it was one of several. */
  constructor(field: string, problem: string, index?: number) {
    super('EVIDENT_INVALID_ENTRY', `${index === undefined ? '' : `entry ${index}: `}${field}: ${problem}`, { index });
    this.field = field;
    this.problem = problem;
  }
}

/** An option or argument is not valid (bad directory name, unknown durability mode, ...). */
export class InvalidOptionError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_INVALID_OPTION', message);
  }
}

/** No log exists where one was expected. */
export class LogNotFoundError extends EvidentError {
  constructor(location: string) {
    super('EVIDENT_NO_LOG', `no evident log in ${location} (create one with \`evident init\`)`);
  }
}

/**
 * The stored log is not what evident wrote (a complete line that does not
 * parse, a head that does not follow, a file that shrank). Appends refuse to
 * build on it; `verify` names the first bad entry.
 */
export class LogCorruptError extends EvidentError {
  constructor(message: string, options?: ErrorOptions) {
    super('EVIDENT_LOG_CORRUPT', message, options);
  }
}

/**
 * A signing log whose entries no longer extend the checkpoint it signed (cut
 * short, rewritten), or whose checkpoint is gone. It neither appends nor signs
 * until an operator re-anchors it (`evident reanchor`), which is recorded as
 * an entry.
 */
export class HistoryMismatchError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_HISTORY_MISMATCH', message);
  }
}

/**
 * Writing or syncing failed (disk full, EIO, permissions). The batch was not
 * acknowledged and was rolled back; the log stays valid. `cause` is the
 * operating system's error.
 */
export class LogWriteError extends EvidentError {
  constructor(message: string, options?: ErrorOptions) {
    super('EVIDENT_WRITE_FAILED', message, options);
  }
}

/** The log was closed; nothing more can be appended. */
export class LogClosedError extends EvidentError {
  constructor() {
    super('EVIDENT_CLOSED', 'the log is closed');
  }
}

/** `record()` was called while the background queue held `limit` events. Nothing was queued. */
export class QueueFullError extends EvidentError {
  readonly limit: number;

  constructor(limit: number) {
    super('EVIDENT_QUEUE_FULL', `background queue is full (${limit} events); await flush() or raise maxQueue`);
    this.limit = limit;
  }
}

/**
 * Background `record()` calls whose batch could not be committed. `inputs`
 * holds what the caller recorded, so it can be retried or reported.
 */
export class RecordFailedError extends EvidentError {
  readonly inputs: readonly unknown[];

  constructor(inputs: readonly unknown[], cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('EVIDENT_RECORD_FAILED', `${inputs.length} recorded event(s) were not written: ${reason}`, { cause });
    this.inputs = inputs;
  }
}

/** A position or size the log (or a tree) does not have: a leaf past its end, a proof between impossible sizes. */
export class OutOfRangeError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_OUT_OF_RANGE', message);
  }
}

/** A signed note or checkpoint that is malformed, or whose signatures do not verify with the keys given. */
export class NoteError extends EvidentError {
  constructor(
    code: 'EVIDENT_NOTE_MALFORMED' | 'EVIDENT_NOTE_BAD_SIGNATURE' | 'EVIDENT_NOTE_UNVERIFIED',
    message: string,
  ) {
    super(code, message);
  }
}

/** A malformed key, one whose hash does not match it, or a key of the wrong kind for its use. */
export class KeyError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_BAD_KEY', message);
  }
}

/** An RFC 9162 proof that does not verify. */
export class ProofError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_BAD_PROOF', message);
  }
}

/** A checkpoint that is not trusted: not signed by the log's key, for another origin, or short of the witness quorum. */
export class TrustError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_UNTRUSTED', message);
  }
}

/** A receipt that is malformed or does not hold for the entry. */
export class ReceiptError extends EvidentError {
  constructor(message: string) {
    super('EVIDENT_BAD_RECEIPT', message);
  }
}

/** A witness will not cosign: the checkpoint goes back in time, or does not extend what it cosigned before. */
export class WitnessError extends EvidentError {
  /** The size the witness last cosigned for the log (what a tlog-witness 409 answers with), when it has one. */
  readonly size: number | undefined;

  constructor(
    code: 'EVIDENT_WITNESS_ROLLBACK' | 'EVIDENT_WITNESS_FORK' | 'EVIDENT_WITNESS_CONFLICT',
    message: string,
    size?: number,
  ) {
    super(code, message);
    this.size = size;
  }
}
