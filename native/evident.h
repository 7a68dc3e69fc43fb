/* What the addon's C files share; addon.c puts their exports together. */
#ifndef EVIDENT_H
#define EVIDENT_H
#include <node_api.h>

napi_value evident_flock_init(napi_env env, napi_value exports);
napi_value evident_hash_init(napi_env env, napi_value exports);
napi_value evident_scan_init(napi_env env, napi_value exports);
napi_value evident_sync_init(napi_env env, napi_value exports);
napi_value evident_commit_init(napi_env env, napi_value exports);
napi_value evident_tiles_init(napi_env env, napi_value exports);
napi_value evident_sign_init(napi_env env, napi_value exports);
napi_value evident_checkpoint_init(napi_env env, napi_value exports);

/* Room for OpenSSL's SHA256_CTX (112 bytes), whose layout is opaque here. */
typedef struct {
  _Alignas(16) unsigned char opaque[256];
} sha256_ctx;
typedef int (*sha256_init_fn)(sha256_ctx *c);
typedef int (*sha256_update_fn)(sha256_ctx *c, const void *data, size_t length);
typedef int (*sha256_final_fn)(unsigned char *digest, sha256_ctx *c);
/* The running Node's OpenSSL SHA-256 (hash.c looks them up); NULL when the process exports none. */
extern sha256_init_fn sha256_init;
extern sha256_update_fn sha256_update;
extern sha256_final_fn sha256_final;

/*
 * Where the value of the last `member` ("name": with its opening quote, if
 * any) in the `length` bytes at `line` starts; NULL if there is none.
 */
const unsigned char *evident_last_value(const unsigned char *line, size_t length, const char *member,
                                        size_t member_length);
/* Decodes 64 lowercase hex digits followed by a closing quote, before `end`, into 32 bytes at `out`; 0 if they are not that. */
int evident_unhex(const unsigned char *hex, const unsigned char *end, unsigned char *out);

/* Whether sign.c found OpenSSL's EVP functions (after evident_sign_init). */
int evident_can_sign(void);
/* The key an ed25519Key external holds; NULL if `value` is not one. */
void *evident_signing_key(napi_env env, napi_value value);
/* Signs `length` bytes at `message` with `key` (evident_signing_key's) into 64 bytes at `signature`; 0 if it failed. */
int evident_ed25519_sign(void *key, const unsigned char *message, size_t length, unsigned char *signature);

/*
 * A job (job.c): `run` on a thread of its own; then, on the JS thread,
 * `settle` resolves or rejects its promise — or, if a worker thread's
 * teardown began meanwhile, `abandon` (no JS may run then) — and `release`
 * frees `data`.
 */
typedef struct evident_job evident_job;
typedef struct {
  void (*run)(void *data);
  void (*settle)(napi_env env, napi_deferred deferred, void *data);
  void (*abandon)(void *data);
  void (*release)(void *data);
} evident_job_fns;
/* Starts a job and returns its promise; NULL with an exception pending (and `data` released) if it cannot. */
napi_value evident_job_start(napi_env env, const char *name, evident_job_fns fns, void *data);

/*
 * Queues `execute` then `complete` on libuv's pool (napi_async_work) for
 * `data`: the promise they settle through *deferred, or NULL — with an
 * Error thrown naming `name` — if it could not be queued (then neither runs).
 * For work that never waits for a lock (waiting belongs to jobs).
 */
napi_value evident_queue_work(napi_env env, const char *name, napi_async_execute_callback execute,
                              napi_async_complete_callback complete, void *data, napi_deferred *deferred,
                              napi_async_work *work);

/* A JS Error for errno `err` from `syscall`, shaped like Node's fs errors: code ('EIO'), errno (negative), syscall. */
napi_value evident_errno_error(napi_env env, int err, const char *syscall);

#endif
