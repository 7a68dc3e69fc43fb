/*
 * flock(2) for Node.js, as an N-API addon.
 *
 * Why flock and not fcntl(F_SETLK): a flock lock belongs to the open file
 * description, so two descriptors opened separately exclude each other even
 * inside one process (worker threads, two Log objects), and the kernel drops
 * the lock when the holder dies. Classic POSIX record locks are per process:
 * two threads of one process would both "hold" them.
 *
 * Waiting happens on a dedicated thread, never on libuv's shared thread pool:
 * several waiters blocked in the pool would starve the holder's own file I/O
 * (the pool has four threads by default) and deadlock the process.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <uv.h>

#include "evident.h"

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error(env, "EVIDENT_NATIVE", "N-API call failed: " #call);    \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

typedef struct {
  int fd;
  int err;
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
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

/* tryLock(fd): takes the exclusive lock if it is free; false if it is held. */
static napi_value try_lock(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc == -1 && errno == EINTR);
  if (rc == -1 && errno != EWOULDBLOCK) {
    throw_errno(env, errno, "flock");
    return NULL;
  }
  napi_value result;
  CHECK(napi_get_boolean(env, rc == 0, &result));
  return result;
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

/* Runs on the JS thread once the waiting thread is done. */
static void wait_done(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)data;
  wait_t *w = context;
  if (env == NULL) {
    /* The JS environment is gone (worker terminated): nobody will release
     * the lock, so release it now rather than hold it forever. */
    if (w->err == 0) flock(w->fd, LOCK_UN);
  } else if (w->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, w->deferred, undefined);
  } else {
    napi_reject_deferred(env, w->deferred, evident_errno_error(env, w->err, "flock"));
  }
}

static void wait_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void *wait_thread(void *arg) {
  wait_t *w = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  int rc;
  do rc = flock(w->fd, LOCK_EX);
  while (rc == -1 && errno == EINTR);
  w->err = rc == -1 ? errno : 0;
  napi_call_threadsafe_function(w->tsfn, NULL, napi_tsfn_blocking);
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  return NULL;
}

/* lockWait(fd): a promise that resolves once the exclusive lock is held. */
static napi_value lock_wait(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  wait_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  w->fd = fd;
  napi_value promise, name;
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "evident.flock", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, w,
                                        wait_finalize, w, wait_done, &w->tsfn));
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&thread, &attr, wait_thread, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    throw_errno(env, rc, "pthread_create");
    return NULL;
  }
  return promise;
}

/* Adds tryLock, lockWait and unlock to `exports` (see addon.c). */
napi_value evident_flock_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tryLock", NULL, try_lock, NULL, NULL, NULL, napi_default, NULL},
      {"lockWait", NULL, lock_wait, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, unlock, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 3, props) != napi_ok) return NULL;
  return exports;
}
