/*
 * leafHashes for the integrator: the chain fields of a run of complete log
 * lines, as bytes, in one call. For `count` lines (each ending in '\n') it
 * returns a Buffer of 32·(count + 1) bytes: the first line's `prev`, then
 * every line's `hash` — the leaf hashes the Merkle tree takes in. It returns
 * null (and the caller reads the lines the ordinary way, which judges them)
 * if a line lacks either member, a value is not 64 lowercase hex digits, a
 * line's `prev` is not the `hash` before it, or there are not `count` lines.
 *
 * Where the members are: a canonical entry's members are in sorted order, so
 * the top-level "hash" and "prev" come after "data", the only member that
 * can hold objects: the last `"prev":"` in a line is the top-level one, and
 * the top-level `"hash":"` is the last before it. (Inside a string a quote is escaped, so the pattern cannot
 * come from a string value.) The same reasoning the JavaScript reader used;
 * here it costs no string or buffer per line.
 */
#include <string.h>

#include "evident.h"

#define HASH_BYTES 32
#define HEX_DIGITS (2 * HASH_BYTES)

static const char HASH_MEMBER[] = "\"hash\":\"";
static const char PREV_MEMBER[] = "\"prev\":\"";
#define MEMBER_LENGTH (sizeof HASH_MEMBER - 1)

/* Hex digit values by byte, -1 for a byte that is not a lowercase hex digit: no branch per digit to mispredict. */
static signed char nibbles[256];

static void init_nibbles(void) {
  memset(nibbles, -1, sizeof nibbles);
  for (int c = '0'; c <= '9'; c++) nibbles[c] = (signed char)(c - '0');
  for (int c = 'a'; c <= 'f'; c++) nibbles[c] = (signed char)(c - 'a' + 10);
}

/* See evident.h. */
int evident_unhex(const unsigned char *hex, const unsigned char *end, unsigned char *out) {
  if (end - hex < HEX_DIGITS + 1 || hex[HEX_DIGITS] != '"') return 0;
  int bad = 0;
  for (int k = 0; k < HASH_BYTES; k++) {
    int high = nibbles[hex[2 * k]], low = nibbles[hex[2 * k + 1]];
    bad |= high | low; /* negative if either is -1 */
    out[k] = (unsigned char)(high << 4 | low);
  }
  return bad >= 0;
}

/* See evident.h. */
const unsigned char *evident_last_value(const unsigned char *line, size_t length, const char *member, size_t member_length) {
  for (size_t k = length; k >= member_length; k--) {
    const unsigned char *at = line + k - member_length;
    if (*at == '"' && memcmp(at, member, member_length) == 0) return at + member_length;
  }
  return NULL;
}

static const unsigned char *last_value(const unsigned char *line, size_t length, const char *member) {
  return evident_last_value(line, length, member, MEMBER_LENGTH);
}

/* Fills out (32·(count + 1) bytes) from `count` lines in [bytes, bytes + length); 0 if they are not such lines. */
static int scan(const unsigned char *bytes, size_t length, size_t count, unsigned char *out) {
  const unsigned char *at = bytes, *end = bytes + length;
  unsigned char prev[HASH_BYTES];
  for (size_t n = 0; n < count; n++) {
    const unsigned char *newline = memchr(at, '\n', (size_t)(end - at));
    if (newline == NULL) return 0;
    const unsigned char *prev_hex = last_value(at, (size_t)(newline - at), PREV_MEMBER);
    if (prev_hex == NULL) return 0;
    /* "hash" sorts before "prev": the top-level one is the last before it. */
    const unsigned char *hash = last_value(at, (size_t)(prev_hex - MEMBER_LENGTH - at), HASH_MEMBER);
    if (hash == NULL) return 0;
    if (!evident_unhex(prev_hex, newline, prev)) return 0;
    if (n == 0) memcpy(out, prev, HASH_BYTES);
    else if (memcmp(prev, out + HASH_BYTES * n, HASH_BYTES) != 0) return 0; /* not chained as found */
    if (!evident_unhex(hash, newline, out + HASH_BYTES * (n + 1))) return 0;
    at = newline + 1;
  }
  return at == end;
}

static napi_value leaf_hashes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  unsigned char *bytes, *out;
  size_t length;
  int64_t count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_buffer_info(env, argv[0], (void **)&bytes, &length) != napi_ok ||
      napi_get_value_int64(env, argv[1], &count) != napi_ok || count < 1 || (uint64_t)count > length) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "leafHashes(lines, count) takes a Buffer and a count of lines ≥ 1");
    return NULL;
  }
  if (napi_create_buffer(env, HASH_BYTES * ((size_t)count + 1), (void **)&out, &result) != napi_ok) return NULL;
  if (scan(bytes, length, (size_t)count, out)) return result;
  napi_get_null(env, &result);
  return result;
}

/* Adds leafHashes to `exports` (see addon.c). */
napi_value evident_scan_init(napi_env env, napi_value exports) {
  init_nibbles();
  napi_property_descriptor props[] = {
      {"leafHashes", NULL, leaf_hashes, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
