/*
 * writeCheckpoint(fd, known, head, signatureLine, keyHash, key, size, root):
 * a signing log's checkpoint, read, made and written in one call. If the
 * checkpoint file `fd` holds exactly the note `known`, the note of the tree
 * of `size` leaves with root `root`, signed with `key` (sign.c), is written
 * over it from offset 0 (the file cut to its length if it was longer), and
 * returned; if the file holds anything else, nothing is written and it
 * returns null, for the caller to read and judge the file itself.
 *
 * The note is the C2SP signed note of a tlog-checkpoint without extension
 * lines, byte for byte what checkpointNoteMaker (note/checkpoint.ts) makes:
 *
 *   <head = origin "\n"><size>\n<base64 root>\n<signatureLine = "\n— " name " "><base64(keyHash || signature)>\n
 *
 * Why: the publish step's checkpoint read, the note's text and its write
 * cost ~60 µs of the event loop in JavaScript (reads and writes through the
 * promise-wrapped file layer, the strings, their Buffers), after every
 * commit of a signing log; here they are three system calls and some bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evident.h"

/* A checkpoint note is a few hundred bytes (checkpointer.ts allows 16 KiB). */
#define MAX_NOTE 16384

static const char BASE64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 §4 base64 of `length` bytes into `out` (4·⌈length/3⌉ characters); returns the characters written. */
static size_t base64(const unsigned char *in, size_t length, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < length; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < length) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < length) v |= in[i + 2];
    out[o++] = BASE64[v >> 18 & 63];
    out[o++] = BASE64[v >> 12 & 63];
    out[o++] = i + 1 < length ? BASE64[v >> 6 & 63] : '=';
    out[o++] = i + 2 < length ? BASE64[v & 63] : '=';
  }
  return o;
}

/* Reads up to `length` bytes of `fd` from offset 0 into `buffer`; the count, or -1 with errno set. */
static ssize_t read_from_start(int fd, unsigned char *buffer, size_t length) {
  size_t got = 0;
  while (got < length) {
    ssize_t n = pread(fd, buffer + got, length - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

/* Writes all `length` bytes at `bytes` to `fd` from offset 0; 0, or -1 with errno set. */
static int write_from_start(int fd, const char *bytes, size_t length) {
  size_t put = 0;
  while (put < length) {
    ssize_t n = pwrite(fd, bytes + put, length - put, (off_t)put);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    put += (size_t)n;
  }
  return 0;
}

static int buffer_arg(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_buffer = false;
  return napi_is_buffer(env, value, &is_buffer) == napi_ok && is_buffer &&
         napi_get_buffer_info(env, value, data, length) == napi_ok;
}

static napi_value write_checkpoint(napi_env env, napi_callback_info info) {
  size_t argc = 8, known_length, head_length, line_length, root_length;
  napi_value argv[8], result;
  int32_t fd;
  uint32_t key_hash;
  double size;
  void *known, *head, *line, *key = NULL, *root;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 8 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || !buffer_arg(env, argv[1], &known, &known_length) ||
      !buffer_arg(env, argv[2], &head, &head_length) || !buffer_arg(env, argv[3], &line, &line_length) ||
      napi_get_value_uint32(env, argv[4], &key_hash) != napi_ok || (key = evident_signing_key(env, argv[5])) == NULL ||
      napi_get_value_double(env, argv[6], &size) != napi_ok || !buffer_arg(env, argv[7], &root, &root_length) ||
      root_length != 32 || !(size >= 0 && size <= 9007199254740991.0 && size == (double)(uint64_t)size) ||
      head_length + line_length > MAX_NOTE) {
    napi_throw_type_error(env, "EVIDENT_NATIVE",
                          "writeCheckpoint takes a descriptor, the known note, the head and signature line "
                          "(Buffers), a key hash, a key from ed25519Key, a tree size and a 32-byte root");
    return NULL;
  }
  unsigned char *file = malloc(MAX_NOTE + 1);
  /* head, size (≤ 16 digits), "\n", 44 base64, "\n", the signature line, 92 base64, "\n" */
  char *note = malloc(head_length + 16 + 1 + 44 + 1 + line_length + 92 + 1);
  if (file == NULL || note == NULL) {
    free(file);
    free(note);
    napi_throw_error(env, "EVIDENT_NATIVE", "out of memory");
    return NULL;
  }
  ssize_t held = read_from_start(fd, file, MAX_NOTE + 1);
  if (held < 0) {
    napi_throw(env, evident_errno_error(env, errno, "pread"));
    free(file);
    free(note);
    return NULL;
  }
  int unchanged = (size_t)held == known_length && memcmp(file, known, known_length) == 0;
  free(file);
  if (!unchanged) {
    free(note);
    napi_get_null(env, &result);
    return result;
  }
  size_t at = 0;
  memcpy(note, head, head_length);
  at += head_length;
  at += (size_t)snprintf(note + at, 18, "%llu\n", (unsigned long long)size);
  at += base64(root, 32, note + at);
  note[at++] = '\n';
  size_t text_length = at;
  unsigned char signed_by[4 + 64] = {(unsigned char)(key_hash >> 24), (unsigned char)(key_hash >> 16),
                                     (unsigned char)(key_hash >> 8), (unsigned char)key_hash};
  if (!evident_ed25519_sign(key, (const unsigned char *)note, text_length, signed_by + 4)) {
    free(note);
    napi_throw_error(env, "EVIDENT_NATIVE", "OpenSSL could not sign");
    return NULL;
  }
  memcpy(note + at, line, line_length);
  at += line_length;
  at += base64(signed_by, sizeof signed_by, note + at);
  note[at++] = '\n';
  if (write_from_start(fd, note, at) != 0) {
    napi_throw(env, evident_errno_error(env, errno, "pwrite"));
    free(note);
    return NULL;
  }
  if ((size_t)held > at) {
    int rc;
    do rc = ftruncate(fd, (off_t)at);
    while (rc == -1 && errno == EINTR);
    if (rc == -1) {
      napi_throw(env, evident_errno_error(env, errno, "ftruncate"));
      free(note);
      return NULL;
    }
  }
  napi_status status = napi_create_buffer_copy(env, at, note, NULL, &result);
  free(note);
  return status == napi_ok ? result : NULL;
}

/* Adds writeCheckpoint to `exports` when sign.c can sign (see addon.c). */
napi_value evident_checkpoint_init(napi_env env, napi_value exports) {
  if (!evident_can_sign()) return exports;
  napi_property_descriptor props[] = {
      {"writeCheckpoint", NULL, write_checkpoint, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
