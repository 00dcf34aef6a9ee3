{
  "targets": [
    {
      "target_name": "styx_tun",
      "sources": ["styx_tun.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none"}]
      ]
    }
  ]
}
