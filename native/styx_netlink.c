/*
 * Netlink and ESP-in-UDP sockets for the kernel (XFRM) data plane, part of
 * the styx_tun addon: Node's dgram has neither AF_NETLINK nor the UDP_ENCAP
 * and IP_XFRM_POLICY socket options. Messages are built and parsed in
 * TypeScript (src/dataplane/backends/xfrm); this file only moves bytes.
 * Reading uses the TUN poller (pollStart), since a netlink datagram is one
 * read() like a TUN packet.
 */
#define STYX_ADDON "styx_netlink"
#define STYX_ERR "ERR_STYX_NETLINK"
#include "styx_napi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

static int nl_int(napi_env env, napi_value v, int32_t* out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_STYX_NETLINK_ARGS", "styx_netlink: expected a number");
    return -1;
  }
  return 0;
}

/* netlinkOpen(protocol, groups) -> fd: non-blocking, bound to the multicast
 * group bitmask (0: requests only). */
static napi_value nl_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t proto, groups;
  if (get_args(env, info, 2, argv) || nl_int(env, argv[0], &proto) || nl_int(env, argv[1], &groups)) return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    throw_errno(env, errno, "socket(AF_NETLINK)", NULL);
    return NULL;
  }
  /* Replies to large dumps and bursts of expire events should not overrun. */
  int rcv = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = (uint32_t)groups;
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "bind(AF_NETLINK)", NULL);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* netlinkSend(fd, buf): one message (or batch) to the kernel. */
static napi_value nl_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (get_args(env, info, 2, argv) || nl_int(env, argv[0], &fd)) return NULL;
  void* data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_STYX_NETLINK_ARGS", "styx_netlink: expected a Buffer");
    return NULL;
  }
  struct sockaddr_nl to;
  memset(&to, 0, sizeof to);
  to.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd, data, len, 0, (struct sockaddr*)&to, sizeof to);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    throw_errno(env, errno, "sendto(AF_NETLINK)", NULL);
    return NULL;
  }
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* The IKE sockets must not be caught by IPsec policies of their own SAs
 * (a host-to-host policy covers the IKE traffic too): a per-socket policy
 * that allows everything, in and out, takes precedence over the SPD. */
static int bypass(int fd, int family) {
  struct xfrm_userpolicy_info pol;
  memset(&pol, 0, sizeof pol);
  pol.action = XFRM_POLICY_ALLOW;
  pol.sel.family = (uint16_t)family;
  int level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  int opt = family == AF_INET6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY;
  pol.dir = XFRM_POLICY_OUT;
  if (setsockopt(fd, level, opt, &pol, sizeof pol) < 0) return -1;
  pol.dir = XFRM_POLICY_IN;
  if (setsockopt(fd, level, opt, &pol, sizeof pol) < 0) return -1;
  return 0;
}

/* ikeSocket(family, address, port, natT) -> fd: a bound, non-blocking UDP
 * socket for IKE that bypasses IPsec policies; with natT, also the RFC 3948
 * ESP-in-UDP endpoint (UDP_ENCAP_ESPINUDP): the kernel takes ESP from it and
 * passes IKE (non-ESP marker) and keepalives up as plain datagrams. */
static napi_value nl_ike_socket(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t family, port;
  if (get_args(env, info, 4, argv) || nl_int(env, argv[0], &family) || nl_int(env, argv[2], &port)) return NULL;
  char addr[64];
  size_t alen = 0;
  if (napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &alen) != napi_ok) {
    napi_throw_type_error(env, "ERR_STYX_NETLINK_ARGS", "styx_netlink: address must be a string");
    return NULL;
  }
  bool natt = false;
  napi_get_value_bool(env, argv[3], &natt);
  int af = family == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (af == AF_INET) {
    struct sockaddr_in* s4 = (struct sockaddr_in*)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) goto bad_addr;
    sl = sizeof *s4;
  } else {
    struct sockaddr_in6* s6 = (struct sockaddr_in6*)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) goto bad_addr;
    sl = sizeof *s6;
  }
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket(udp)", NULL);
    return NULL;
  }
  int one = 1, encap = UDP_ENCAP_ESPINUDP;
  const char* what = NULL;
  if (af == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) what = "setsockopt(IPV6_V6ONLY)";
  else if (bypass(fd, af) < 0) what = "setsockopt(IP_XFRM_POLICY)";
  else if (natt && setsockopt(fd, SOL_UDP, UDP_ENCAP, &encap, sizeof encap) < 0) what = "setsockopt(UDP_ENCAP)";
  else if (bind(fd, (struct sockaddr*)&ss, sl) < 0) what = "bind(udp)";
  if (what) {
    int err = errno;
    close(fd);
    throw_errno(env, err, what, NULL);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
bad_addr:
  napi_throw_range_error(env, "ERR_STYX_NETLINK_ARGS", "styx_netlink: not an IP address");
  return NULL;
}

/* Called from the addon's init. */
int styx_netlink_register(napi_env env, napi_value exports) {
  static const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {
      {"netlinkOpen", nl_open},
      {"netlinkSend", nl_send},
      {"ikeSocket", nl_ike_socket},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return -1;
  }
  return 0;
}
