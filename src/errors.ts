/**
 * Every error evident raises is an EvidentError with a stable `code`.
 * Scripts and callers branch on `code`; messages may be reworded, codes never.
 */
export class EvidentError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The caller's entry cannot be stored as given. `field` is a JSON path such as `$.data.items[2]`. */
export class InvalidEntryError extends EvidentError {
  readonly field: string;
  readonly problem: string;
  /** Position in a batch, when the entry was one of several. */
  readonly index: number | undefined;

  constructor(field: string, problem: string, index?: number) {
    super('EVIDENT_INVALID_ENTRY', `${index === undefined ? '' : `entry ${index}: `}${field}: ${problem}`);
    this.field = field;
    this.problem = problem;
    this.index = index;
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
  constructor(dir: string) {
    super('EVIDENT_NO_LOG', `no evident log in ${dir} (create one with \`evident init\`)`);
  }
}

/**
 * The log on disk is not what evident wrote (a complete line that does not
 * parse, a head that does not follow, a file that shrank). Appends refuse to
 * build on it; `verify` names the first bad entry.
 */
export class LogCorruptError extends EvidentError {
  constructor(message: string, options?: ErrorOptions) {
    super('EVIDENT_LOG_CORRUPT', message, options);
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
