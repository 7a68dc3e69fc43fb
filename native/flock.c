/*
 * flock(2) for Node.js, as an N-API addon.
 *
 * Why flock and not fcntl(F_SETLK): a flock lock belongs to the open file
 * description, so two descriptors opened separately exclude each other even
 * inside one process (worker threads, two Log objects), and the kernel drops
 * the lock when the holder dies. Classic POSIX record locks are per process:
 * two threads of one process would both "hold" them.
 *
 * Waiting happens on a thread of its own (a job, job.c), never on libuv's
 * shared thread pool: several waiters blocked in the pool would starve the
 * holder's own file I/O (the pool has four threads by default) and deadlock
 * the process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <uv.h>

#include "evident.h"

typedef struct {
  int fd;
  int err;
} wait_t;

/* See evident.h. */
napi_value evident_errno_error(napi_env env, int err, const char *syscall) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s, %s", uv_err_name(-err), strerror(err), syscall);
  napi_value msg, code, error, number, name;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &number);
  napi_set_named_property(env, error, "errno", number);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "syscall", name);
  return error;
}

static void throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, evident_errno_error(env, err, syscall));
}

static int get_fd(napi_env env, napi_callback_info info, int *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||
      argc < 1 || napi_get_value_int32(env, argv[0], fd) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "expected a file descriptor");
    return 0;
  }
  return 1;
}

/* flock(fd, op | LOCK_NB): true when taken, false when another descriptor holds the lock in a mode that excludes it. */
static napi_value try_flock(napi_env env, napi_callback_info info, int op) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  int rc;
  do rc = flock(fd, op | LOCK_NB);
  while (rc == -1 && errno == EINTR);
  if (rc == -1 && errno != EWOULDBLOCK) {
    throw_errno(env, errno, "flock");
    return NULL;
  }
  napi_value result;
  if (napi_get_boolean(env, rc == 0, &result) != napi_ok) return NULL;
  return result;
}

/* tryLock(fd): takes the exclusive lock if it is free; false if it is held. */
static napi_value try_lock(napi_env env, napi_callback_info info) {
  return try_flock(env, info, LOCK_EX);
}

/* tryLockShared(fd): takes a shared lock unless the exclusive one is held (a reader's look: readers share it). */
static napi_value try_lock_shared(napi_env env, napi_callback_info info) {
  return try_flock(env, info, LOCK_SH);
}

/* unlock(fd): releases the lock this descriptor holds. */
static napi_value unlock(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  int rc;
  do rc = flock(fd, LOCK_UN);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    throw_errno(env, errno, "flock");
    return NULL;
  }
  return NULL;
}

/* The lock wait, on the job's thread. */
static void wait_run(void *data) {
  wait_t *w = data;
  int rc;
  do rc = flock(w->fd, LOCK_EX);
  while (rc == -1 && errno == EINTR);
  w->err = rc == -1 ? errno : 0;
}

static void wait_settle(napi_env env, napi_deferred deferred, void *data) {
  wait_t *w = data;
  if (w->err != 0) {
    napi_reject_deferred(env, deferred, evident_errno_error(env, w->err, "flock"));
    return;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_resolve_deferred(env, deferred, undefined);
}

/* A worker thread went away while waiting: nobody will release the lock, so release it now. */
static void wait_abandon(void *data) {
  wait_t *w = data;
  if (w->err == 0) flock(w->fd, LOCK_UN);
}

/* lockWait(fd): a promise that resolves once the exclusive lock is held (waiting on a thread of its own, job.c). */
static napi_value lock_wait(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  wait_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  w->fd = fd;
  evident_job_fns fns = {wait_run, wait_settle, wait_abandon, free};
  return evident_job_start(env, "evident.flock", fns, w);
}

/* Adds tryLock, tryLockShared, lockWait and unlock to `exports` (see addon.c). */
napi_value evident_flock_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tryLock", NULL, try_lock, NULL, NULL, NULL, napi_default, NULL},
      {"tryLockShared", NULL, try_lock_shared, NULL, NULL, NULL, napi_default, NULL},
      {"lockWait", NULL, lock_wait, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, unlock, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
