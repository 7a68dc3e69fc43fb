/*
 * Ed25519 signatures (RFC 8032) off the event loop, for a signing log's
 * checkpoints: ed25519Key(seed) makes a key once; ed25519Sign(key, message)
 * signs on a thread of libuv's pool and resolves with the 64-byte
 * signature.
 *
 * Why: a signing log signs after every commit, and one signature is ~45 µs
 * of OpenSSL here — in one process with 16 callers ~10% of the event loop's
 * time (a CPU profile), time its callers' next entries wait for while the
 * machine's other core has room. The signature is the same either way
 * (Ed25519 is deterministic; a test checks it against node:crypto's).
 *
 * OpenSSL's EVP functions are looked up in the running Node, like hash.c's
 * SHA-256; without them the addon has no ed25519Key and node:crypto signs.
 * A key is an EVP_PKEY made once (making one derives the public key, a
 * scalar multiplication); signing with it from several threads at once is
 * safe in OpenSSL 3.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "evident.h"

#define EVP_PKEY_ED25519 1087 /* NID_ED25519 */

typedef void EVP_PKEY;
typedef void EVP_MD_CTX;
static EVP_PKEY *(*new_raw_private_key)(int type, void *engine, const unsigned char *key, size_t length);
static void (*pkey_free)(EVP_PKEY *key);
static EVP_MD_CTX *(*md_ctx_new)(void);
static void (*md_ctx_free)(EVP_MD_CTX *ctx);
static int (*digest_sign_init)(EVP_MD_CTX *ctx, void **pctx, const void *md, void *engine, EVP_PKEY *key);
static int (*digest_sign)(EVP_MD_CTX *ctx, unsigned char *sig, size_t *sig_length, const unsigned char *data,
                          size_t length);

typedef struct {
  EVP_PKEY *key;
  napi_ref key_ref; /* keeps the key's JS object, and so the key, alive while signing */
  unsigned char *message;
  size_t length;
  unsigned char signature[64];
  int ok;
  napi_deferred deferred;
  napi_async_work work;
} sign_t;

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pkey_free(data);
}

/* ed25519Key(seed): an opaque key for ed25519Sign, from a 32-byte RFC 8032 private key. */
static napi_value ed25519_key(napi_env env, napi_callback_info info) {
  size_t argc = 1, length = 0;
  napi_value argv[1], result;
  void *seed;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[0], &seed, &length) != napi_ok || length != 32) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "ed25519Key takes a 32-byte seed");
    return NULL;
  }
  EVP_PKEY *key = new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  if (key == NULL) {
    napi_throw_error(env, "EVIDENT_NATIVE", "OpenSSL could not make an Ed25519 key");
    return NULL;
  }
  if (napi_create_external(env, key, key_finalize, NULL, &result) != napi_ok) {
    pkey_free(key);
    return NULL;
  }
  return result;
}

static void sign_execute(napi_env env, void *data) {
  (void)env;
  sign_t *s = data;
  EVP_MD_CTX *ctx = md_ctx_new();
  size_t length = sizeof s->signature;
  s->ok = ctx != NULL && digest_sign_init(ctx, NULL, NULL, NULL, s->key) == 1 &&
          digest_sign(ctx, s->signature, &length, s->message, s->length) == 1 && length == 64;
  if (ctx != NULL) md_ctx_free(ctx);
}

static void sign_complete(napi_env env, napi_status status, void *data) {
  sign_t *s = data;
  napi_value result, message;
  if (status == napi_ok && s->ok) {
    napi_create_buffer_copy(env, 64, s->signature, NULL, &result);
    napi_resolve_deferred(env, s->deferred, result);
  } else {
    napi_create_string_utf8(env, "OpenSSL could not sign", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &result);
    napi_reject_deferred(env, s->deferred, result);
  }
  napi_delete_reference(env, s->key_ref);
  napi_delete_async_work(env, s->work);
  free(s->message);
  free(s);
}

/* ed25519Sign(key, message): a promise of the 64-byte signature. */
static napi_value ed25519_sign(napi_env env, napi_callback_info info) {
  size_t argc = 2, length = 0;
  napi_value argv[2];
  napi_valuetype type;
  void *key, *message;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, argv[0], &key) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &message, &length) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "ed25519Sign takes a key from ed25519Key and a Buffer");
    return NULL;
  }
  sign_t *s = calloc(1, sizeof *s);
  if (s == NULL || (s->message = malloc(length > 0 ? length : 1)) == NULL) {
    free(s);
    napi_throw_error(env, "EVIDENT_NATIVE", "out of memory");
    return NULL;
  }
  memcpy(s->message, message, length);
  s->length = length;
  s->key = key;
  if (napi_create_reference(env, argv[0], 1, &s->key_ref) != napi_ok) {
    free(s->message);
    free(s);
    napi_throw_error(env, "EVIDENT_NATIVE", "ed25519Sign could not hold its key");
    return NULL;
  }
  napi_value promise = evident_queue_work(env, "evident.sign", sign_execute, sign_complete, s, &s->deferred, &s->work);
  if (promise == NULL) {
    napi_delete_reference(env, s->key_ref);
    free(s->message);
    free(s);
  }
  return promise;
}

/* Adds ed25519Key and ed25519Sign to `exports` when the process has OpenSSL's EVP functions (see addon.c). */
napi_value evident_sign_init(napi_env env, napi_value exports) {
  new_raw_private_key = (EVP_PKEY * (*)(int, void *, const unsigned char *, size_t))
      dlsym(RTLD_DEFAULT, "EVP_PKEY_new_raw_private_key");
  pkey_free = (void (*)(EVP_PKEY *))dlsym(RTLD_DEFAULT, "EVP_PKEY_free");
  md_ctx_new = (EVP_MD_CTX * (*)(void)) dlsym(RTLD_DEFAULT, "EVP_MD_CTX_new");
  md_ctx_free = (void (*)(EVP_MD_CTX *))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_free");
  digest_sign_init = (int (*)(EVP_MD_CTX *, void **, const void *, void *, EVP_PKEY *))dlsym(RTLD_DEFAULT,
                                                                                           "EVP_DigestSignInit");
  digest_sign = (int (*)(EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t))dlsym(
      RTLD_DEFAULT, "EVP_DigestSign");
  if (new_raw_private_key == NULL || pkey_free == NULL || md_ctx_new == NULL || md_ctx_free == NULL ||
      digest_sign_init == NULL || digest_sign == NULL)
    return exports;
  napi_property_descriptor props[] = {
      {"ed25519Key", NULL, ed25519_key, NULL, NULL, NULL, napi_default, NULL},
      {"ed25519Sign", NULL, ed25519_sign, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) return NULL;
  return exports;
}
