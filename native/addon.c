/*
 * The evident addon: only what Node cannot do. flock(2) with waiting on a thread of its own (flock.c), and a
 * commit's sync followed by the unlock on the thread that synced (sync.c).
 */
#include "evident.h"

NAPI_MODULE_INIT() {
  if (evident_flock_init(env, exports) == NULL) return NULL;
  return evident_sync_init(env, exports);
}
