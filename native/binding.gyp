{
  "variables": {
    # build.mjs sets it to 1 to build the TUN addon alone when the ESP addon does not build.
    "styx_skip_esp%": 0
  },
  "targets": [
    {
      "target_name": "styx_tun",
      "sources": ["styx_tun.c", "styx_netlink.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none"}]
      ]
    },
    {
      # AEAD seal/open on the OpenSSL inside node (its headers come with Node's own) and sendmmsg.
      "target_name": "styx_esp",
      "sources": ["styx_esp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux' or styx_skip_esp==1", {"type": "none"}]
      ]
    }
  ]
}
