/* The evident addon: flock(2) (flock.c), a commit's sync-then-unlock (sync.c) and Merkle node hashing (hash.c). */
#include "evident.h"

NAPI_MODULE_INIT() {
  if (evident_flock_init(env, exports) == NULL) return NULL;
  if (evident_sync_init(env, exports) == NULL) return NULL;
  return evident_hash_init(env, exports);
}
