/* The evident addon: flock(2) (flock.c), a commit's sync-then-unlock (sync.c) and Merkle node hashing (hash.c). */
#include <node_api.h>

napi_value evident_flock_init(napi_env env, napi_value exports);
napi_value evident_hash_init(napi_env env, napi_value exports);
napi_value evident_sync_init(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
  if (evident_flock_init(env, exports) == NULL) return NULL;
  if (evident_sync_init(env, exports) == NULL) return NULL;
  return evident_hash_init(env, exports);
}
