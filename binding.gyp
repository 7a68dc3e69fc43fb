{
  "targets": [
    {
      "target_name": "evident_native",
      "sources": ["native/addon.c", "native/flock.c", "native/job.c", "native/sync.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
