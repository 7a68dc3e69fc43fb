{
  "targets": [
    {
      "target_name": "evident_native",
      "sources": ["native/addon.c", "native/checkpoint.c", "native/commit.c", "native/flock.c", "native/hash.c", "native/job.c", "native/scan.c", "native/sign.c", "native/sync.c", "native/tiles.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-ldl"]
    }
  ]
}
