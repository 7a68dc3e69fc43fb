/*
 * syncUnlock(fd, lockFd): makes fd's data durable, then — only if that
 * succeeded — flock(lockFd, LOCK_UN), both on one thread of libuv's pool.
 *
 * Why: a commit holds the append lock until its bytes are durable. Released
 * from JavaScript, the lock would stay held until the sync's completion had
 * reached the event loop, which on a busy machine can be hundreds of
 * microseconds after the sync returned, with every other writer waiting that
 * long too. Released on the thread that synced, the lock is free the moment
 * the data is. When the sync fails the lock is still held, so that the
 * caller can cut the batch off before anyone else appends after it.
 *
 * On macOS fsync and fdatasync do not flush the drive's cache; F_FULLFSYNC
 * does, as libuv (and so Node's fs.fdatasync) asks for there, falling back
 * to fsync where the file system does not support it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "evident.h"

typedef struct {
  int fd;
  int lock_fd;
  int err;
  const char *syscall;
  napi_deferred deferred;
  napi_async_work work;
} sync_t;

static int durable(int fd) {
#ifdef __APPLE__
  if (fcntl(fd, F_FULLFSYNC) == 0) return 0;
  return fsync(fd);
#else
  return fdatasync(fd);
#endif
}

static void sync_execute(napi_env env, void *data) {
  (void)env;
  sync_t *s = data;
  int rc;
  do rc = durable(s->fd);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    s->err = errno;
    s->syscall = "fdatasync";
    return;
  }
  do rc = flock(s->lock_fd, LOCK_UN);
  while (rc == -1 && errno == EINTR);
  if (rc == -1) {
    s->err = errno;
    s->syscall = "flock";
  }
}

static void sync_complete(napi_env env, napi_status status, void *data) {
  sync_t *s = data;
  if (status != napi_ok) {
    napi_value error, msg;
    napi_create_string_utf8(env, "syncUnlock was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, s->deferred, error);
  } else if (s->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, s->deferred, undefined);
  } else {
    napi_reject_deferred(env, s->deferred, evident_errno_error(env, s->err, s->syscall));
  }
  napi_delete_async_work(env, s->work);
  free(s);
}

static napi_value sync_unlock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int fd, lock_fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &lock_fd) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "expected two file descriptors");
    return NULL;
  }
  sync_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    napi_throw_error(env, "EVIDENT_NATIVE", "out of memory");
    return NULL;
  }
  s->fd = fd;
  s->lock_fd = lock_fd;
  napi_value promise = evident_queue_work(env, "evident.syncUnlock", sync_execute, sync_complete, s, &s->deferred, &s->work);
  if (promise == NULL) free(s);
  return promise;
}

/* Adds syncUnlock to `exports` (see addon.c). */
napi_value evident_sync_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"syncUnlock", NULL, sync_unlock, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
