/*
 * writeTiles for the tree on disk (src/store/file/tree.ts): a batch of full
 * tiles written in one call on a thread of libuv's pool. For each tile:
 * create its file (O_EXCL: a full tile never changes, so one that exists was
 * written by another writer with the same bytes) and write its hashes; write
 * its inner nodes into its level's tile-inner file, if given; remove the
 * directory of its partial versions (`<tile>.p/`), which it supersedes.
 *
 * Why: the integrator writes a tile per 256 entries, and through fs.writeFile
 * each costs three thread-pool round trips and their JavaScript, a stat and
 * a recursive removal: ~170 ms of its main thread in 3 s of 4 writers (a CPU
 * profile). Here the syscalls are the same, off the main thread, in one round
 * trip. No lock is waited for, so the pool is the right place; Node waits for
 * pool work when a worker thread ends, and the data is copied so that a
 * worker's buffers are never touched after the call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evident.h"

typedef struct {
  char *path;          /* the tile's file */
  char *partials;      /* its partial versions' directory, or NULL */
  unsigned char *hashes;
  size_t hashes_length;
  int inner_fd;        /* -1: no inner nodes */
  double inner_offset;
  unsigned char *inner;
  size_t inner_length;
  int err;
  const char *syscall;
} tile_t;

typedef struct {
  tile_t *tiles;
  uint32_t count;
  napi_deferred deferred;
  napi_async_work work;
} batch_t;

static int write_all(int fd, const unsigned char *bytes, size_t length, off_t position, int positioned) {
  for (size_t done = 0; done < length;) {
    ssize_t n = positioned ? pwrite(fd, bytes + done, length - done, position + (off_t)done)
                           : write(fd, bytes + done, length - done);
    if (n == -1 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? EIO : errno;
    done += (size_t)n;
  }
  return 0;
}

/* Removes `dir` and the files in it (a partial tile's directory holds only files); 0 if it is gone. */
static int remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return errno == ENOENT ? 0 : errno;
  int fd = dirfd(d);
  struct dirent *e;
  int err = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) err = errno;
  }
  closedir(d);
  if (err == 0 && rmdir(dir) != 0 && errno != ENOENT) err = errno;
  return err;
}

static void write_tile(tile_t *t) {
  int fd;
  do fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  while (fd == -1 && errno == EINTR);
  if (fd == -1 && errno != EEXIST) {
    t->err = errno;
    t->syscall = "open";
    return;
  }
  if (fd != -1) {
    int err = write_all(fd, t->hashes, t->hashes_length, 0, 0);
    if (close(fd) != 0 && err == 0) err = errno;
    if (err != 0) {
      t->err = err;
      t->syscall = "write";
      return;
    }
  }
  if (t->inner_fd >= 0) {
    int err = write_all(t->inner_fd, t->inner, t->inner_length, (off_t)t->inner_offset, 1);
    if (err != 0) {
      t->err = err;
      t->syscall = "pwrite";
      return;
    }
  }
  if (t->partials != NULL) {
    int err = remove_dir(t->partials);
    if (err != 0) {
      t->err = err;
      t->syscall = "rmdir";
    }
  }
}

static void batch_execute(napi_env env, void *data) {
  (void)env;
  batch_t *b = data;
  for (uint32_t k = 0; k < b->count; k++) write_tile(&b->tiles[k]);
}

static void batch_free(batch_t *b) {
  for (uint32_t k = 0; k < b->count; k++) {
    free(b->tiles[k].path);
    free(b->tiles[k].partials);
    free(b->tiles[k].hashes);
    free(b->tiles[k].inner);
  }
  free(b->tiles);
  free(b);
}

/* Resolves with one entry per tile: null, or the Error its write failed with. */
static void batch_complete(napi_env env, napi_status status, void *data) {
  batch_t *b = data;
  napi_delete_async_work(env, b->work);
  napi_value results, item;
  napi_create_array_with_length(env, b->count, &results);
  for (uint32_t k = 0; k < b->count; k++) {
    tile_t *t = &b->tiles[k];
    if (status != napi_ok) item = evident_errno_error(env, ECANCELED, "writeTiles");
    else if (t->err != 0) item = evident_errno_error(env, t->err, t->syscall);
    else napi_get_null(env, &item);
    napi_set_element(env, results, k, item);
  }
  napi_resolve_deferred(env, b->deferred, results);
  batch_free(b);
}

static char *copy_string(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *out = malloc(length + 1);
  if (out != NULL && napi_get_value_string_utf8(env, value, out, length + 1, &length) != napi_ok) {
    free(out);
    return NULL;
  }
  return out;
}

static unsigned char *copy_buffer(napi_env env, napi_value value, size_t *length) {
  void *data;
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, length) != napi_ok)
    return NULL;
  unsigned char *out = malloc(*length > 0 ? *length : 1);
  if (out != NULL) memcpy(out, data, *length);
  return out;
}

/* One tile: [path, hashes, partialsDir | null, innerFd, innerOffset, inner | null]. */
static int read_tile(napi_env env, napi_value item, tile_t *t) {
  napi_value v[6];
  for (uint32_t k = 0; k < 6; k++)
    if (napi_get_element(env, item, k, &v[k]) != napi_ok) return 0;
  napi_valuetype type;
  t->inner_fd = -1;
  if ((t->path = copy_string(env, v[0])) == NULL || (t->hashes = copy_buffer(env, v[1], &t->hashes_length)) == NULL)
    return 0;
  if (napi_typeof(env, v[2], &type) != napi_ok) return 0;
  if (type != napi_null && (t->partials = copy_string(env, v[2])) == NULL) return 0;
  if (napi_typeof(env, v[5], &type) != napi_ok) return 0;
  if (type != napi_null) {
    if (napi_get_value_int32(env, v[3], &t->inner_fd) != napi_ok ||
        napi_get_value_double(env, v[4], &t->inner_offset) != napi_ok ||
        (t->inner = copy_buffer(env, v[5], &t->inner_length)) == NULL)
      return 0;
  }
  return 1;
}

/* writeTiles(tiles): see the top of this file; a promise of one null-or-Error per tile. */
static napi_value write_tiles(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise;
  bool is_array = false;
  uint32_t count = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, "EVIDENT_NATIVE", "writeTiles takes an array of tiles");
    return NULL;
  }
  batch_t *b = calloc(1, sizeof *b);
  if (b == NULL || (b->tiles = calloc(count > 0 ? count : 1, sizeof *b->tiles)) == NULL) {
    free(b);
    napi_throw_error(env, "EVIDENT_NATIVE", "out of memory");
    return NULL;
  }
  b->count = count;
  for (uint32_t k = 0; k < count; k++) {
    napi_value item;
    if (napi_get_element(env, argv[0], k, &item) != napi_ok || !read_tile(env, item, &b->tiles[k])) {
      batch_free(b);
      napi_throw_type_error(env, "EVIDENT_NATIVE",
                            "writeTiles: a tile is [path, hashes, partialsDir | null, innerFd, innerOffset, inner | null]");
      return NULL;
    }
  }
  promise = evident_queue_work(env, "evident.writeTiles", batch_execute, batch_complete, b, &b->deferred, &b->work);
  if (promise == NULL) batch_free(b);
  return promise;
}

/* Adds writeTiles to `exports` (see addon.c). */
napi_value evident_tiles_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"writeTiles", NULL, write_tiles, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
