/* What the addon's C files share; addon.c puts their exports together. */
#ifndef EVIDENT_H
#define EVIDENT_H
#include <node_api.h>

napi_value evident_flock_init(napi_env env, napi_value exports);
napi_value evident_sync_init(napi_env env, napi_value exports);

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
