/*
 * commitBatch: a whole commit of one batch, on a thread of libuv's pool —
 * take the append lock, read the log's head, seal the batch after it,
 * append, sync, release the lock — so that the lock's hold is the syscalls
 * and a microsecond of hashing per entry, never a wait for the event loop.
 *
 * Why: measured with 4 writer processes on 2 cores, a commit done from
 * JavaScript held the lock ~1.6 ms, of which the sync was ~0.6 ms: ~0.2 ms
 * went by between the lock being granted to a thread and the event loop
 * running the continuation (it was busy with the callers' next entries), and
 * ~0.6 ms was reading the head and sealing 64 entries in JavaScript, on a
 * machine whose cores every writer wants. Every writer waits out all of it.
 *
 * The JavaScript side does everything that does not depend on the head
 * before the call: each entry is validated, encoded and split around the
 * members the head decides (seq, prev, ts; src/entry.ts, entryTemplate).
 * The thread fills those in, in the same canonical order the JavaScript
 * sealer writes, and hashes each line (RFC 9162 leaf: SHA-256(0x00 || the
 * line without its "hash" member)).
 *
 * The thread declines — releases the lock and changes nothing, and the
 * caller commits the ordinary way, which judges and repairs — whenever the
 * log is not in the plain state: the lock or log file replaced at its path,
 * the log shorter than last seen, empty, ending in a torn line, a last line
 * too long for its read or not an entry of this log whose hash covers it.
 * A failed write or sync returns with the lock still held, so that the
 * caller can cut the batch off before anyone appends after it.
 *
 * It runs as a job (job.c): on a thread of its own, since it may wait for
 * the lock, and safe against a worker thread terminated mid-commit.
 * Everything the thread touches is the addon's own memory, never a JS
 * buffer, which such a teardown would free.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evident.h"

#define HASH_BYTES 32
#define HEX_DIGITS 64
#define TS_LENGTH 24
#define LOG_ID_LENGTH 32
/* The last line is looked for in this many bytes from the end first, then in up to MAX_LINE. */
#define FIRST_READ 4096
#define MAX_LINE (1 << 20)
#define MAX_SAFE_INTEGER 9007199254740991.0

enum { COMMITTED = 0, DECLINED = 1, FAILED = 2, LOCK_FAILED = 3, BUSY = 4 };

/* The pieces the log's own members are written with (entry.ts writes the same). */
static const char HASH_OPEN[] = "\"hash\":\"", HASH_CLOSE[] = "\",", SEQ_OPEN[] = "\",\"seq\":",
                  TS_OPEN[] = ",\"ts\":\"", LINE_CLOSE[] = "\",\"v\":1}\n";
#define LIT(s) (sizeof(s) - 1)
#define HASH_MEMBER_LENGTH (LIT(HASH_OPEN) + HEX_DIGITS + LIT(HASH_CLOSE))

typedef struct {
  double size;
  unsigned char hash[HASH_BYTES];
  char ts[TS_LENGTH];
} head_t;

typedef struct {
  /* In: what to append to, and the head as this process last left it (known_end < 0: not known). */
  int lock_fd, log_fd, sync;
  char *lock_path, *log_path;
  double known_end;
  head_t known;
  char log_id[LOG_ID_LENGTH];
  /* In: per entry three pieces, each a u32 length (little-endian) then bytes: `{<before>,`, then
   * `"id":…,"log":…<outcome>,"prev":"`, then `<targets>`. */
  unsigned char *parts;
  size_t parts_length, count;
  /* Out: the lines (out), the head's hash then each entry's (leaves, 32 · (count + 1) bytes). All of this
   * memory is the addon's own, never a JS buffer: a worker thread terminated mid-commit frees its buffers
   * while this thread is still writing. */
  unsigned char *out, *leaves;
  size_t out_capacity;

  /* Result. */
  int status, err;
  const char *syscall;
  const char *declined;
  double start, end, first_seq;
  char ts[TS_LENGTH];
} commit_t;

static const char HEX[] = "0123456789abcdef";

static void hex(const unsigned char *bytes, unsigned char *out) {
  for (int k = 0; k < HASH_BYTES; k++) {
    out[2 * k] = (unsigned char)HEX[bytes[k] >> 4];
    out[2 * k + 1] = (unsigned char)HEX[bytes[k] & 15];
  }
}

static uint32_t read_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* pread until `length` bytes or the end of the file; the count read, or -1 (errno set). */
static ssize_t read_fully(int fd, unsigned char *buffer, size_t length, off_t position) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, buffer + done, length - done, position + (off_t)done);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) return -1;
    if (n == 0) break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

/* Whether `fd` is the file now at `path`; its size in *size. */
static int still_at_path(int fd, const char *path, off_t *size) {
  struct stat open_file, at_path;
  if (fstat(fd, &open_file) != 0 || stat(path, &at_path) != 0) return 0;
  if (size != NULL) *size = open_file.st_size;
  return open_file.st_ino == at_path.st_ino && open_file.st_dev == at_path.st_dev;
}

/* The RFC 9162 leaf hash of a line (without its newline) whose "hash" member starts at `member`. */
static void leaf_hash(const unsigned char *line, size_t length, size_t member, unsigned char *digest) {
  static const unsigned char zero = 0;
  sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, &zero, 1);
  sha256_update(&c, line, member);
  sha256_update(&c, line + member + HASH_MEMBER_LENGTH, length - member - HASH_MEMBER_LENGTH);
  sha256_final(digest, &c);
}

/*
 * The head a line (without its newline) makes: its seq + 1, hash and ts; 0 if
 * it is not an entry of `log_id` whose hash covers it. The members are found
 * as scan.c finds them: each is the last of its name in the line, since
 * members are in sorted order and only "data", which sorts before all of
 * these, can hold objects.
 */
static int head_of_line(const unsigned char *line, size_t length, const char *log_id, head_t *head) {
  const unsigned char *end = line + length;
  const unsigned char *hash = evident_last_value(line, length, HASH_OPEN, LIT(HASH_OPEN));
  if (hash == NULL || !evident_unhex(hash, end, head->hash) || end - hash < HEX_DIGITS + 2 ||
      hash[HEX_DIGITS + 1] != ',')
    return 0;
  const unsigned char *log = evident_last_value(line, length, "\"log\":\"", 7);
  if (log == NULL || end - log < LOG_ID_LENGTH + 1 || memcmp(log, log_id, LOG_ID_LENGTH) != 0 ||
      log[LOG_ID_LENGTH] != '"')
    return 0;
  const unsigned char *seq = evident_last_value(line, length, "\"seq\":", 6);
  if (seq == NULL) return 0;
  double value = 0;
  size_t digits = 0;
  while (seq + digits < end && seq[digits] >= '0' && seq[digits] <= '9' && digits < 17) {
    value = value * 10 + (seq[digits] - '0');
    digits++;
  }
  if (digits == 0 || (digits > 1 && seq[0] == '0') || value >= MAX_SAFE_INTEGER) return 0;
  const unsigned char *ts = evident_last_value(line, length, "\"ts\":\"", 6);
  if (ts == NULL || end - ts < TS_LENGTH + 1 || ts[TS_LENGTH] != '"' || ts[10] != 'T' || ts[TS_LENGTH - 1] != 'Z')
    return 0;
  unsigned char digest[HASH_BYTES];
  leaf_hash(line, length, (size_t)(hash - LIT(HASH_OPEN) - line), digest);
  if (memcmp(digest, head->hash, HASH_BYTES) != 0) return 0;
  head->size = value + 1;
  memcpy(head->ts, ts, TS_LENGTH);
  return 1;
}

/* The head after the log's last line, read from its `size` bytes; NULL (done) or why it was not read. */
static const char *read_head(commit_t *c, off_t size, head_t *head) {
  unsigned char first[FIRST_READ];
  size_t window = size < FIRST_READ ? (size_t)size : FIRST_READ;
  unsigned char *bytes = first;
  for (;;) {
    ssize_t n = read_fully(c->log_fd, bytes, window, size - (off_t)window);
    if (n != (ssize_t)window) return "the log's tail could not be read";
    if (bytes[window - 1] != '\n') return "the log ends in a torn line";
    size_t start = window - 1;
    while (start > 0 && bytes[start - 1] != '\n') start--;
    if (start > 0 || window == (size_t)size) {
      int ok = head_of_line(bytes + start, window - 1 - start, c->log_id, head);
      if (bytes != first) free(bytes);
      return ok ? NULL : "the log's last line is not an entry of this log that its hash covers";
    }
    if (bytes != first || window == MAX_LINE) {
      if (bytes != first) free(bytes);
      return "the log's last line is longer than a commit reads";
    }
    window = size < MAX_LINE ? (size_t)size : MAX_LINE;
    bytes = malloc(window);
    if (bytes == NULL) return "out of memory";
  }
}

/* Now, as entry.ts's nextTimestamp writes it (RFC 3339 UTC, milliseconds); 0 past year 9999. */
static int now_ts(char *ts) {
  struct timespec now;
  struct tm t;
  char text[64];
  clock_gettime(CLOCK_REALTIME, &now);
  if (gmtime_r(&now.tv_sec, &t) == NULL || t.tm_year + 1900 > 9999) return 0;
  snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
           t.tm_hour, t.tm_min, t.tm_sec, (int)(now.tv_nsec / 1000000));
  memcpy(ts, text, TS_LENGTH);
  return 1;
}

/* Seals the batch after `head` into c->out (entry.ts's sealEntry, byte for byte); its length, or 0 if it does not fit. */
static size_t seal(commit_t *c, const head_t *head) {
  unsigned char prev_hex[HEX_DIGITS];
  hex(head->hash, prev_hex);
  memcpy(c->leaves, head->hash, HASH_BYTES);
  const unsigned char *part = c->parts;
  size_t at = 0;
  for (size_t i = 0; i < c->count; i++) {
    size_t lengths[3];
    const unsigned char *pieces[3];
    for (int k = 0; k < 3; k++) {
      lengths[k] = read_u32(part);
      pieces[k] = part + 4;
      part += 4 + lengths[k];
    }
    char seq[24];
    int seq_length = snprintf(seq, sizeof seq, "%.0f", head->size + (double)i);
    size_t length = lengths[0] + HASH_MEMBER_LENGTH + lengths[1] + HEX_DIGITS + LIT(SEQ_OPEN) + (size_t)seq_length +
                    lengths[2] + LIT(TS_OPEN) + TS_LENGTH + LIT(LINE_CLOSE);
    if (length > c->out_capacity - at) return 0;
    unsigned char *line = c->out + at, *w = line;
#define PUT(bytes, n)         \
  do {                        \
    memcpy(w, (bytes), (n));  \
    w += (n);                 \
  } while (0)
    PUT(pieces[0], lengths[0]);
    PUT(HASH_OPEN, LIT(HASH_OPEN));
    unsigned char *hash_hex = w;
    w += HEX_DIGITS;
    PUT(HASH_CLOSE, LIT(HASH_CLOSE));
    PUT(pieces[1], lengths[1]);
    PUT(prev_hex, HEX_DIGITS);
    PUT(SEQ_OPEN, LIT(SEQ_OPEN));
    PUT(seq, (size_t)seq_length);
    PUT(pieces[2], lengths[2]);
    PUT(TS_OPEN, LIT(TS_OPEN));
    PUT(c->ts, TS_LENGTH);
    PUT(LINE_CLOSE, LIT(LINE_CLOSE));
#undef PUT
    unsigned char *digest = c->leaves + HASH_BYTES * (i + 1);
    leaf_hash(line, length - 1, lengths[0], digest);
    hex(digest, hash_hex);
    memcpy(prev_hex, hash_hex, HEX_DIGITS);
    at += length;
  }
  return at;
}

/* Under the lock: the commit, or why it declined (status DECLINED), or the failed call (status FAILED). */
static void commit_locked(commit_t *c) {
  off_t size = 0;
  if (!still_at_path(c->lock_fd, c->lock_path, NULL)) {
    c->declined = "the lock file was replaced";
    return;
  }
  if (!still_at_path(c->log_fd, c->log_path, &size)) {
    c->declined = "the log file was replaced";
    return;
  }
  head_t head;
  if (c->known_end >= 0 && (double)size == c->known_end) {
    head = c->known;
  } else if (size == 0 || (c->known_end >= 0 && (double)size < c->known_end)) {
    c->declined = size == 0 ? "the log is empty" : "the log is shorter than it was";
    return;
  } else {
    c->declined = read_head(c, size, &head);
    if (c->declined != NULL) return;
    if (c->known_end >= 0 && head.size <= c->known.size) {
      c->declined = "the log's last entry is not after the one last seen";
      return;
    }
  }
  if (!now_ts(c->ts)) {
    c->declined = "the clock is past year 9999";
    return;
  }
  if (memcmp(c->ts, head.ts, TS_LENGTH) < 0) memcpy(c->ts, head.ts, TS_LENGTH); /* never before the previous */
  size_t length = seal(c, &head);
  if (length == 0) {
    c->declined = "the sealed batch is larger than its buffer";
    return;
  }
  c->declined = NULL;
  c->start = (double)size;
  c->first_seq = head.size;
  c->status = FAILED; /* until the bytes are written and synced: the lock stays held */
  for (size_t done = 0; done < length;) {
    ssize_t n = write(c->log_fd, c->out + done, length - done);
    if (n == -1 && errno == EINTR) continue;
    if (n <= 0) {
      c->err = n == 0 ? EIO : errno; /* a regular file never takes 0 bytes of a write; say so rather than spin */
      c->syscall = "write";
      return;
    }
    done += (size_t)n;
  }
  if (c->sync) {
    int rc;
    do rc = fdatasync(c->log_fd);
    while (rc == -1 && errno == EINTR);
    if (rc == -1) {
      c->err = errno;
      c->syscall = "fdatasync";
      return;
    }
  }
  c->end = (double)size + (double)length;
  c->status = COMMITTED;
}

/* The commit, on the job's thread. */
static void commit_run(void *data) {
  commit_t *c = data;
  int rc;
  do rc = flock(c->lock_fd, LOCK_EX);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    c->status = LOCK_FAILED;
    c->err = errno;
    c->syscall = "flock";
  } else {
    c->status = DECLINED;
    commit_locked(c);
    if (c->status != FAILED) {
      do rc = flock(c->lock_fd, LOCK_UN);
      while (rc == -1 && errno == EINTR);
      if (rc == -1 && c->status == DECLINED) {
        c->status = LOCK_FAILED;
        c->err = errno;
        c->syscall = "flock";
      }
    }
  }
}

static void commit_free(void *data) {
  commit_t *c = data;
  free(c->lock_path);
  free(c->log_path);
  free(c->parts);
  free(c->out);
  free(c->leaves);
  free(c);
}

static void set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  napi_create_double(env, value, &number);
  napi_set_named_property(env, object, name, number);
}

/* On the JS thread: the result object { status, ... } (see src/native.ts, RawCommitResult). */
static napi_value commit_result(napi_env env, commit_t *c) {
  napi_value result, text;
  napi_create_object(env, &result);
  set_number(env, result, "status", c->status);
  if (c->status == DECLINED) {
    napi_create_string_utf8(env, c->declined, NAPI_AUTO_LENGTH, &text);
    napi_set_named_property(env, result, "declined", text);
  } else if (c->status != BUSY) {
    set_number(env, result, "start", c->start);
    if (c->status == FAILED) {
      napi_set_named_property(env, result, "error", evident_errno_error(env, c->err, c->syscall));
    } else {
      set_number(env, result, "end", c->end);
      set_number(env, result, "firstSeq", c->first_seq);
      napi_value leaves;
      napi_create_buffer_copy(env, (size_t)HASH_BYTES * (c->count + 1), c->leaves, NULL, &leaves);
      napi_set_named_property(env, result, "leaves", leaves);
      napi_create_string_latin1(env, c->ts, TS_LENGTH, &text);
      napi_set_named_property(env, result, "ts", text);
    }
  }
  return result;
}

/* On the JS thread: settles the job's promise. */
static void commit_settle(napi_env env, napi_deferred deferred, void *data) {
  commit_t *c = data;
  if (c->status == LOCK_FAILED) napi_reject_deferred(env, deferred, evident_errno_error(env, c->err, c->syscall));
  else napi_resolve_deferred(env, deferred, commit_result(env, c));
}

/* A worker thread went away mid-commit: nobody is left to cut a failed batch off (the next writer's open
 * quarantines it), so release the lock now. */
static void commit_abandon(void *data) {
  commit_t *c = data;
  if (c->status == FAILED) flock(c->lock_fd, LOCK_UN);
}

static int get_string(napi_env env, napi_value value, char **out) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return 0;
  *out = malloc(length + 1);
  return *out != NULL && napi_get_value_string_utf8(env, value, *out, length + 1, &length) == napi_ok;
}

static int get_buffer(napi_env env, napi_value value, unsigned char **data, size_t *length) {
  bool is_buffer = false;
  return napi_is_buffer(env, value, &is_buffer) == napi_ok && is_buffer &&
         napi_get_buffer_info(env, value, (void **)data, length) == napi_ok;
}

static void *fail(napi_env env, commit_t *c, const char *message) {
  if (c != NULL) commit_free(c);
  napi_throw_type_error(env, "EVIDENT_NATIVE", message);
  return NULL;
}

/*
 * commitBatch(lockFd, lockPath, logFd, logPath, sync, known, logId, parts, count, maxBytes):
 * `known` is null or [end, size, hash (32-byte Buffer), ts]; `parts` is
 * copied; `maxBytes` bounds the sealed lines. Resolves { status, ... } with
 * the leaves (the head's hash, then each entry's) on success.
 */
static commit_t *parse_commit(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 10)
    return fail(env, NULL, "commitBatch takes 10 arguments");
  commit_t *c = calloc(1, sizeof *c);
  if (c == NULL) return fail(env, NULL, "out of memory");
  bool sync = false;
  int64_t count = 0;
  size_t length = 0;
  unsigned char *bytes = NULL;
  if (napi_get_value_int32(env, argv[0], &c->lock_fd) != napi_ok || !get_string(env, argv[1], &c->lock_path) ||
      napi_get_value_int32(env, argv[2], &c->log_fd) != napi_ok || !get_string(env, argv[3], &c->log_path) ||
      napi_get_value_bool(env, argv[4], &sync) != napi_ok)
    return fail(env, c, "commitBatch: bad descriptors, paths or sync flag");
  c->sync = sync;
  c->known_end = -1;
  napi_valuetype type;
  napi_typeof(env, argv[5], &type);
  if (type != napi_null) {
    napi_value end, size, hash, ts;
    size_t ts_length = 0;
    if (napi_get_element(env, argv[5], 0, &end) != napi_ok || napi_get_element(env, argv[5], 1, &size) != napi_ok ||
        napi_get_element(env, argv[5], 2, &hash) != napi_ok || napi_get_element(env, argv[5], 3, &ts) != napi_ok ||
        napi_get_value_double(env, end, &c->known_end) != napi_ok ||
        napi_get_value_double(env, size, &c->known.size) != napi_ok || !get_buffer(env, hash, &bytes, &length) ||
        length != HASH_BYTES)
      return fail(env, c, "commitBatch: known must be [end, size, 32-byte hash, ts]");
    memcpy(c->known.hash, bytes, HASH_BYTES);
    char text[TS_LENGTH + 1];
    if (napi_get_value_string_latin1(env, ts, text, sizeof text, &ts_length) != napi_ok || ts_length != TS_LENGTH)
      return fail(env, c, "commitBatch: known ts must be 24 characters");
    memcpy(c->known.ts, text, TS_LENGTH);
  }
  char log_id[LOG_ID_LENGTH + 1];
  if (napi_get_value_string_latin1(env, argv[6], log_id, sizeof log_id, &length) != napi_ok ||
      length != LOG_ID_LENGTH)
    return fail(env, c, "commitBatch: logId must be 32 characters");
  memcpy(c->log_id, log_id, LOG_ID_LENGTH);
  unsigned char *parts;
  size_t parts_length;
  int64_t max_bytes = 0;
  if (!get_buffer(env, argv[7], &parts, &parts_length) || napi_get_value_int64(env, argv[8], &count) != napi_ok ||
      count < 1 || napi_get_value_int64(env, argv[9], &max_bytes) != napi_ok || max_bytes < 1)
    return fail(env, c, "commitBatch: parts, count or maxBytes are wrong");
  /* The pieces are checked here, on the JS thread, so that the commit thread can trust them. */
  size_t at = 0;
  for (int64_t i = 0; i < count * 3; i++) {
    if (parts_length - at < 4 || parts_length - at - 4 < read_u32(parts + at))
      return fail(env, c, "commitBatch: parts are not count entries of three pieces");
    at += 4 + read_u32(parts + at);
  }
  if (at != parts_length) return fail(env, c, "commitBatch: parts are not count entries of three pieces");
  c->parts_length = parts_length;
  c->count = (size_t)count;
  c->out_capacity = (size_t)max_bytes;
  c->parts = malloc(parts_length);
  c->out = malloc(c->out_capacity);
  c->leaves = malloc((size_t)HASH_BYTES * (c->count + 1));
  if (c->parts == NULL || c->out == NULL || c->leaves == NULL) return fail(env, c, "out of memory");
  memcpy(c->parts, parts, parts_length);
  return c;
}

/* commitBatch(...): the commit as a job (job.c), waiting for the lock on its thread; a promise of its result. */
static napi_value commit_batch(napi_env env, napi_callback_info info) {
  commit_t *c = parse_commit(env, info);
  if (c == NULL) return NULL;
  evident_job_fns fns = {commit_run, commit_settle, commit_abandon, commit_free};
  return evident_job_start(env, "evident.commit", fns, c);
}

/*
 * commitBatchNow(...): the commit here and now, if the lock is free (else
 * { status: BUSY }), up to the write: no thread hop at all. It never syncs,
 * and a committed result leaves the lock held, for the caller to sync and
 * release (sync.c's syncUnlock) — so that the sync still runs off the event
 * loop. Declined releases the lock; failed leaves it held, as commitBatch.
 */
static napi_value commit_batch_now(napi_env env, napi_callback_info info) {
  commit_t *c = parse_commit(env, info);
  if (c == NULL) return NULL;
  c->sync = 0;
  int rc;
  do rc = flock(c->lock_fd, LOCK_EX | LOCK_NB);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    int err = errno;
    if (err != EWOULDBLOCK) {
      commit_free(c);
      napi_throw(env, evident_errno_error(env, err, "flock"));
      return NULL;
    }
    c->status = BUSY;
  } else {
    c->status = DECLINED;
    commit_locked(c);
    if (c->status == DECLINED) flock(c->lock_fd, LOCK_UN);
  }
  napi_value result = commit_result(env, c);
  commit_free(c);
  return result;
}

/* Adds commitBatch to `exports` when the process has SHA-256 functions to call (see addon.c). */
napi_value evident_commit_init(napi_env env, napi_value exports) {
  if (sha256_init == NULL) return exports;
  napi_property_descriptor props[] = {
      {"commitBatch", NULL, commit_batch, NULL, NULL, NULL, napi_default, NULL},
      {"commitBatchNow", NULL, commit_batch_now, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) return NULL;
  return exports;
}
