/*
 * hashPairs for the Merkle tree (RFC 9162 §2.1.1 interior nodes), as an N-API
 * function: for each 64-byte pair (left || right) of the input, write
 * SHA-256(0x01 || left || right) to the output, 32 bytes each.
 *
 * Why: a tile that fills needs 255 node hashes, and through Node's crypto
 * each is a call of about a microsecond, nearly all of it call overhead. One
 * call for a whole row runs the same SHA-256 — OpenSSL's, the one inside the
 * running Node — at its own speed.
 *
 * The SHA-256 functions are looked up in the running process (Node exports
 * its OpenSSL's symbols to addons) rather than linked, so a Node without
 * them loads this addon all the same: hashPairs is then absent and the
 * JavaScript version is used (src/native.ts says which one runs).
 *
 * Why SHA256_Init/Update/Final and not the one-shot SHA256(): in OpenSSL 3
 * the one-shot fetches the algorithm by name on every call, which measured
 * ~760 ns a pair here against ~140 ns (SHA-NI) for the low-level calls.
 * Those are deprecated in OpenSSL 3 but exported by Node 20 and 24 alike.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <string.h>

#include "evident.h"

sha256_init_fn sha256_init;
sha256_update_fn sha256_update;
sha256_final_fn sha256_final;

static napi_value hash_pairs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  unsigned char *in, *out;
  size_t in_length, out_length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_buffer_info(env, argv[0], (void **)&in, &in_length) != napi_ok ||
      napi_get_buffer_info(env, argv[1], (void **)&out, &out_length) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "hashPairs(pairs, out) takes two Buffers");
    return NULL;
  }
  if (in_length % 64 != 0 || out_length * 2 != in_length) {
    napi_throw_range_error(env, "EVIDENT_NATIVE", "hashPairs: pairs must be 64-byte pairs and out half as long");
    return NULL;
  }
  unsigned char node[65];
  node[0] = 1;
  for (size_t k = 0; k < in_length / 64; k++) {
    sha256_ctx c;
    memcpy(node + 1, in + 64 * k, 64); /* one update of 65 bytes: faster than two */
    sha256_init(&c);
    sha256_update(&c, node, sizeof node);
    sha256_final(out + 32 * k, &c);
  }
  return NULL;
}

/* Adds hashPairs to `exports` when the process has SHA-256 functions to call (see addon.c). */
napi_value evident_hash_init(napi_env env, napi_value exports) {
  sha256_init = (sha256_init_fn)dlsym(RTLD_DEFAULT, "SHA256_Init");
  sha256_update = (sha256_update_fn)dlsym(RTLD_DEFAULT, "SHA256_Update");
  sha256_final = (sha256_final_fn)dlsym(RTLD_DEFAULT, "SHA256_Final");
  if (sha256_init == NULL || sha256_update == NULL || sha256_final == NULL) return exports;
  napi_property_descriptor props[] = {
      {"hashPairs", NULL, hash_pairs, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
