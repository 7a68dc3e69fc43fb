/*
 * Ed25519 signatures (RFC 8032) for a signing log's checkpoints, on the
 * calling thread: ed25519Key(seed) makes a key once; ed25519Sign(key,
 * message) returns the 64-byte signature.
 *
 * Why not node:crypto's sign(): each call sets a signing context up from
 * the key (EVP_DigestSignInit: the algorithm fetched from OpenSSL's
 * provider, the key matched to it), which is a third of the cost of a
 * signature. Here the context is set up once per key and copied for each
 * signature (EVP_MD_CTX_copy_ex): ~55 µs a signature instead of ~62 in a
 * loop, and 69 instead of 102 µs in a signing log's step (CPU profile, 16
 * callers, 2026-12-01), where the lookup's memory is no longer in the cache.
 * The signature is the same (Ed25519 is deterministic; a test checks it
 * against node:crypto's on every supported Node).
 *
 * Why on the calling thread and not libuv's pool: handed to the pool, a
 * signature cost ~100 µs of CPU with the two thread hops, and on a 2-vCPU
 * VM it ran on the core the commit's fdatasync needed (README: *Why the
 * addon signs on the event loop*).
 *
 * OpenSSL's EVP functions are looked up in the running Node, like hash.c's
 * SHA-256; without them the addon has no ed25519Key and node:crypto signs.
 * If copying a context fails, the key's signatures set one up each time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stdlib.h>

#include "evident.h"

#define EVP_PKEY_ED25519 1087 /* NID_ED25519 */

typedef void EVP_PKEY;
typedef void EVP_MD_CTX;
static EVP_PKEY *(*new_raw_private_key)(int type, void *engine, const unsigned char *key, size_t length);
static void (*pkey_free)(EVP_PKEY *key);
static EVP_MD_CTX *(*md_ctx_new)(void);
static void (*md_ctx_free)(EVP_MD_CTX *ctx);
static int (*md_ctx_copy)(EVP_MD_CTX *out, const EVP_MD_CTX *in);
static int (*digest_sign_init)(EVP_MD_CTX *ctx, void **pctx, const void *md, void *engine, EVP_PKEY *key);
static int (*digest_sign)(EVP_MD_CTX *ctx, unsigned char *sig, size_t *sig_length, const unsigned char *data,
                          size_t length);

/* Whether evident_sign_init found every EVP function above. */
static int available;

typedef struct {
  EVP_PKEY *key;
  EVP_MD_CTX *ready; /* set up for signing with key, never signed with: each signature signs with a copy; or NULL */
} signing_key;

/* Marks the externals ed25519Key makes, so that nothing else passes for a key. */
static const napi_type_tag KEY_TAG = {0x8f1c2a7e5b3d4c61ULL, 0x9e0a6b2f7d4c3e15ULL};

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  signing_key *k = data;
  if (k->ready != NULL) md_ctx_free(k->ready);
  pkey_free(k->key);
  free(k);
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
  signing_key *k = calloc(1, sizeof *k);
  if (k == NULL || (k->key = new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32)) == NULL) {
    free(k);
    napi_throw_error(env, "EVIDENT_NATIVE", "OpenSSL could not make an Ed25519 key");
    return NULL;
  }
  k->ready = md_ctx_new();
  if (k->ready != NULL && digest_sign_init(k->ready, NULL, NULL, NULL, k->key) != 1) {
    md_ctx_free(k->ready);
    k->ready = NULL;
  }
  if (napi_create_external(env, k, key_finalize, NULL, &result) != napi_ok) {
    key_finalize(env, k, NULL);
    return NULL;
  }
  if (napi_type_tag_object(env, result, &KEY_TAG) != napi_ok) return NULL;
  return result;
}

/* See evident.h. */
void *evident_signing_key(napi_env env, napi_value value) {
  napi_valuetype type;
  bool tagged = false;
  void *key = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, value, &KEY_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &key) != napi_ok)
    return NULL;
  return key;
}

/* Signs `length` bytes at `message` into `signature` (64 bytes): a copy of the key's ready context, else a new one. */
static int sign_with(signing_key *k, const unsigned char *message, size_t length, unsigned char *signature) {
  EVP_MD_CTX *ctx = md_ctx_new();
  if (ctx == NULL) return 0;
  size_t signature_length = 64;
  int ready = k->ready != NULL && md_ctx_copy(ctx, k->ready) == 1;
  int ok = (ready || digest_sign_init(ctx, NULL, NULL, NULL, k->key) == 1) &&
           digest_sign(ctx, signature, &signature_length, message, length) == 1 && signature_length == 64;
  md_ctx_free(ctx);
  return ok;
}

/* See evident.h. */
int evident_ed25519_sign(void *key, const unsigned char *message, size_t length, unsigned char *signature) {
  return sign_with(key, message, length, signature);
}

/* See evident.h. */
int evident_can_sign(void) {
  return available;
}

/* ed25519Sign(key, message): the Ed25519 signature of the Buffer `message`, 64 bytes. */
static napi_value ed25519_sign(napi_env env, napi_callback_info info) {
  size_t argc = 2, length = 0;
  napi_value argv[2], result;
  void *key = NULL, *message, *out;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      (key = evident_signing_key(env, argv[0])) == NULL ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &message, &length) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "ed25519Sign takes a key from ed25519Key and a Buffer");
    return NULL;
  }
  if (napi_create_buffer(env, 64, &out, &result) != napi_ok) return NULL;
  if (!sign_with(key, message, length, out)) {
    napi_throw_error(env, "EVIDENT_NATIVE", "OpenSSL could not sign");
    return NULL;
  }
  return result;
}

/* Adds ed25519Key and ed25519Sign to `exports` if the process exports OpenSSL's EVP functions (see addon.c). */
napi_value evident_sign_init(napi_env env, napi_value exports) {
  new_raw_private_key = (EVP_PKEY * (*)(int, void *, const unsigned char *, size_t))
      dlsym(RTLD_DEFAULT, "EVP_PKEY_new_raw_private_key");
  pkey_free = (void (*)(EVP_PKEY *))dlsym(RTLD_DEFAULT, "EVP_PKEY_free");
  md_ctx_new = (EVP_MD_CTX * (*)(void)) dlsym(RTLD_DEFAULT, "EVP_MD_CTX_new");
  md_ctx_free = (void (*)(EVP_MD_CTX *))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_free");
  md_ctx_copy = (int (*)(EVP_MD_CTX *, const EVP_MD_CTX *))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_copy_ex");
  digest_sign_init = (int (*)(EVP_MD_CTX *, void **, const void *, void *, EVP_PKEY *))dlsym(RTLD_DEFAULT,
                                                                                           "EVP_DigestSignInit");
  digest_sign = (int (*)(EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t))dlsym(
      RTLD_DEFAULT, "EVP_DigestSign");
  if (new_raw_private_key == NULL || pkey_free == NULL || md_ctx_new == NULL || md_ctx_free == NULL ||
      md_ctx_copy == NULL || digest_sign_init == NULL || digest_sign == NULL)
    return exports;
  available = 1;
  napi_property_descriptor props[] = {
      {"ed25519Key", NULL, ed25519_key, NULL, NULL, NULL, napi_default, NULL},
      {"ed25519Sign", NULL, ed25519_sign, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) return NULL;
  return exports;
}
