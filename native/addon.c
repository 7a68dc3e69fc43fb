/*
 * The evident addon: flock(2) (flock.c), a commit's sync-then-unlock (sync.c), Merkle node hashing (hash.c) and
 * reading leaf hashes out of log lines (scan.c).
 */
#include "evident.h"

NAPI_MODULE_INIT() {
  if (evident_flock_init(env, exports) == NULL) return NULL;
  if (evident_sync_init(env, exports) == NULL) return NULL;
  if (evident_scan_init(env, exports) == NULL) return NULL;
  if (evident_tiles_init(env, exports) == NULL) return NULL;
  if (evident_sign_init(env, exports) == NULL) return NULL;
  if (evident_checkpoint_init(env, exports) == NULL) return NULL; /* after sign: it signs with sign.c */
  if (evident_hash_init(env, exports) == NULL) return NULL;
  return evident_commit_init(env, exports); /* after hash and scan: it uses their SHA-256 and hex reader */
}
