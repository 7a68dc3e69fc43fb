{
  "targets": [
    {
      "target_name": "evident_flock",
      "sources": ["native/flock.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
