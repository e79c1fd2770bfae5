{
  "targets": [
    {
      "target_name": "sandlet_sbus",
      "sources": ["native/sbus.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
