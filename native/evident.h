/* What the addon's C files share; addon.c puts their exports together. */
#ifndef EVIDENT_H
#define EVIDENT_H
#include <node_api.h>

napi_value evident_flock_init(napi_env env, napi_value exports);
napi_value evident_hash_init(napi_env env, napi_value exports);
napi_value evident_scan_init(napi_env env, napi_value exports);
napi_value evident_sync_init(napi_env env, napi_value exports);

/* A JS Error for errno `err` from `syscall`, shaped like Node's fs errors: code ('EIO'), errno (negative), syscall. */
napi_value evident_errno_error(napi_env env, int err, const char *syscall);

#endif
