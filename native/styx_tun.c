/*
 * styx TUN addon: the few system calls Node cannot make by itself for the
 * userspace ESP data plane (and, in styx_netlink.c, for the kernel one).
 *
 * Reading uses uv_poll on a non-blocking fd and drains up to `max` packets
 * per wake-up into an arena the JS side owns, then makes ONE JS call per
 * batch. Threadpool reads (fs.read) on a TUN fd were measured an order of
 * magnitude slower and keep process.exit() waiting while a read blocks.
 *
 */
#define STYX_ADDON "styx_tun"
#define STYX_ERR "ERR_STYX_TUN"
#include "styx_napi.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TUN_PATH "/dev/net/tun"

static int get_ifname(napi_env env, napi_value v, char out[IFNAMSIZ]) {
  size_t len = 0;
  char buf[64];
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_STYX_TUN_ARGS", "styx_tun: interface name must be a string");
    return -1;
  }
  if (len >= IFNAMSIZ) {
    napi_throw_range_error(env, "ERR_STYX_TUN_ARGS",
                           "styx_tun: interface name is longer than 15 bytes");
    return -1;
  }
  memset(out, 0, IFNAMSIZ);
  memcpy(out, buf, len);
  return 0;
}

/* open(name, multiQueue) -> [fd, actualName]. An empty name lets the kernel
 * pick tunN. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  char name[IFNAMSIZ];
  if (get_ifname(env, argv[0], name)) return NULL;
  bool mq = false;
  CHECK(napi_get_value_bool(env, argv[1], &mq));

  int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", TUN_PATH);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "ioctl", "TUNSETIFF");
    return NULL;
  }
  napi_value arr, vfd, vname;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &vname));
  CHECK(napi_set_element(env, arr, 0, vfd));
  CHECK(napi_set_element(env, arr, 1, vname));
  return arr;
}

/* Interface ioctls go through a throwaway datagram socket, as ifconfig does;
 * it avoids spawning `ip` for the two settings every TUN needs. */
static int ifreq_ioctl(napi_env env, unsigned long req, struct ifreq* ifr, const char* what) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    throw_errno(env, errno, "socket", NULL);
    return -1;
  }
  int rc = ioctl(s, req, ifr);
  int err = errno;
  close(s);
  if (rc < 0) {
    throw_errno(env, err, "ioctl", what);
    return -1;
  }
  return 0;
}

/* setMtu(name, mtu) */
static napi_value tun_set_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (get_ifname(env, argv[0], ifr.ifr_name)) return NULL;
  int32_t mtu = 0;
  CHECK(napi_get_value_int32(env, argv[1], &mtu));
  ifr.ifr_mtu = mtu;
  if (ifreq_ioctl(env, SIOCSIFMTU, &ifr, "SIOCSIFMTU")) return NULL;
  return undefined(env);
}

/* setUp(name, up) */
static napi_value tun_set_up(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (get_ifname(env, argv[0], ifr.ifr_name)) return NULL;
  bool up = false;
  CHECK(napi_get_value_bool(env, argv[1], &up));
  if (ifreq_ioctl(env, SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS")) return NULL;
  if (up) ifr.ifr_flags |= IFF_UP;
  else ifr.ifr_flags &= ~IFF_UP;
  if (ifreq_ioctl(env, SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS")) return NULL;
  return undefined(env);
}

/* write(fd, pkts) -> number of packets the kernel took. A TUN write is one
 * packet; a packet the kernel rejects (malformed, EINVAL) is skipped so one
 * bad packet does not stall the batch. EAGAIN (queue full) ends the batch
 * early: the caller sees the short count. A dead device throws. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int32_t fd = -1;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  uint32_t n = 0;
  CHECK(napi_get_array_length(env, argv[1], &n));
  uint32_t written = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    void* data = NULL;
    size_t len = 0;
    CHECK(napi_get_element(env, argv[1], i, &el));
    CHECK(napi_get_buffer_info(env, el, &data, &len));
    ssize_t r;
    do r = write(fd, data, len);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
      written++;
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
    if (err == EINVAL || err == EMSGSIZE || err == EFAULT) continue;
    throw_errno(env, err, "write", "TUN");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_uint32(env, written, &out));
  return out;
}

/* close(fd) */
static napi_value tun_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd = -1;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (close(fd) < 0 && errno != EINTR) {
    throw_errno(env, errno, "close", "TUN");
    return NULL;
  }
  return undefined(env);
}

/* ---- batch reader ------------------------------------------------------ */

/* Lifetime: the struct is shared by the uv handle (until its close callback)
 * and the JS external (until finalized). `owners` counts both so neither
 * frees it under the other; JS may drop the external while polling goes on. */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  int fd;
  int owners;
  int active;
  int in_cb;        /* inside the JS callback */
  int stop_pending; /* stopped from inside it: finish after it returns */
  uint8_t* arena;
  size_t slot;
  uint32_t* lens;
  uint32_t max;
  napi_ref arena_ref;
  napi_ref lens_ref;
  napi_ref cb_ref;
  napi_async_context async;
} tun_poller;

static void poller_release(tun_poller* p) {
  if (--p->owners == 0) free(p);
}

static void drop_js_refs(tun_poller* p) {
  napi_env env = p->env;
  if (p->cb_ref) napi_delete_reference(env, p->cb_ref);
  if (p->arena_ref) napi_delete_reference(env, p->arena_ref);
  if (p->lens_ref) napi_delete_reference(env, p->lens_ref);
  if (p->async) napi_async_destroy(env, p->async);
  p->cb_ref = p->arena_ref = p->lens_ref = NULL;
  p->async = NULL;
}

static void on_poll_closed(uv_handle_t* h) {
  poller_release((tun_poller*)h->data);
}

static void cleanup_hook(void* arg);

static void poller_stop(tun_poller* p) {
  if (!p->active) return;
  p->active = 0;
  uv_poll_stop(&p->poll);
  napi_remove_env_cleanup_hook(p->env, cleanup_hook, p);
  /* close() from the packet callback itself: the async context and callback
   * are still in use by napi_make_callback, so deliver() releases them. */
  if (p->in_cb) {
    p->stop_pending = 1;
    return;
  }
  drop_js_refs(p);
  uv_close((uv_handle_t*)&p->poll, on_poll_closed);
}

/* Worker or process teardown with a TUN still polled: stop, so libuv does
 * not call into a dead environment. */
static void cleanup_hook(void* arg) {
  tun_poller* p = arg;
  if (!p->active) return;
  p->active = 0;
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t*)&p->poll, on_poll_closed);
}

static void deliver(tun_poller* p, uint32_t n, int err) {
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2];
  if (napi_get_reference_value(env, p->cb_ref, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &recv) == napi_ok && napi_create_uint32(env, n, &argv[0]) == napi_ok &&
      napi_create_int32(env, err, &argv[1]) == napi_ok) {
    /* make_callback, not call_function: it runs the microtask queue and
     * nextTicks after the callback, as Node does for its own I/O. Its
     * receiver must be an object (undefined throws), hence the global. */
    p->in_cb = 1;
    napi_status st = napi_make_callback(env, p->async, recv, cb, 2, argv, NULL);
    p->in_cb = 0;
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
  if (p->stop_pending) {
    p->stop_pending = 0;
    drop_js_refs(p);
    uv_close((uv_handle_t*)&p->poll, on_poll_closed);
  }
}

static void on_readable(uv_poll_t* h, int status, int events) {
  (void)events;
  tun_poller* p = h->data;
  if (!p->active) return;
  if (status < 0) {
    deliver(p, 0, status);
    return;
  }
  uint32_t n = 0;
  int err = 0;
  while (n < p->max) {
    ssize_t r = read(p->fd, p->arena + (size_t)n * p->slot, p->slot);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = -errno;
      break;
    }
    p->lens[n++] = (uint32_t)r;
  }
  /* A full batch returns to the loop on purpose: the poll is level-triggered,
   * so the rest is read on the next turn, after timers and sockets had theirs. */
  if (n > 0 || err) deliver(p, n, err);
}

static void poller_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  poller_release((tun_poller*)data);
}

/* pollStart(fd, arena: Buffer, lens: Uint32Array, slot, max, cb(n, err))
 *   -> opaque poller. cb(n, 0): packets 0..n-1 are in arena at i*slot, with
 *   lengths in lens[i]; cb(0, -errno): the fd failed. */
static napi_value tun_poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, argv)) return NULL;
  int32_t fd = -1, slot = 0, max = 0;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  void* arena = NULL;
  size_t arena_len = 0;
  CHECK(napi_get_buffer_info(env, argv[1], &arena, &arena_len));
  napi_typedarray_type tt;
  size_t lens_len = 0;
  void* lens = NULL;
  CHECK(napi_get_typedarray_info(env, argv[2], &tt, &lens_len, &lens, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[3], &slot));
  CHECK(napi_get_value_int32(env, argv[4], &max));
  if (tt != napi_uint32_array || slot <= 0 || max <= 0 || lens_len < (size_t)max ||
      arena_len < (size_t)slot * (size_t)max) {
    napi_throw_range_error(env, "ERR_STYX_TUN_ARGS",
                           "styx_tun: arena or lengths array smaller than slot * max");
    return NULL;
  }
  uv_loop_t* loop = NULL;
  CHECK(napi_get_uv_event_loop(env, &loop));

  tun_poller* p = calloc(1, sizeof *p);
  if (!p) {
    napi_throw_error(env, "ERR_STYX_TUN_NOMEM", "styx_tun: out of memory");
    return NULL;
  }
  p->env = env;
  p->fd = fd;
  p->arena = arena;
  p->slot = (size_t)slot;
  p->lens = lens;
  p->max = (uint32_t)max;
  p->poll.data = p;
  int rc = uv_poll_init(loop, &p->poll, fd);
  if (rc < 0) {
    free(p);
    throw_errno(env, -rc, "uv_poll_init", NULL);
    return NULL;
  }
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &p->arena_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &p->lens_ref) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &p->cb_ref) != napi_ok ||
      napi_create_string_utf8(env, "StyxTunRead", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->async) != napi_ok) {
    drop_js_refs(p);
    p->owners = 1;
    uv_close((uv_handle_t*)&p->poll, on_poll_closed);
    throw_last(env, "pollStart");
    return NULL;
  }
  rc = uv_poll_start(&p->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    drop_js_refs(p);
    p->owners = 1;
    uv_close((uv_handle_t*)&p->poll, on_poll_closed);
    throw_errno(env, -rc, "uv_poll_start", NULL);
    return NULL;
  }
  p->active = 1;
  p->owners = 2;
  napi_add_env_cleanup_hook(env, cleanup_hook, p);
  napi_value ext;
  if (napi_create_external(env, p, poller_finalize, NULL, &ext) != napi_ok) {
    p->owners = 1; /* no external will ever release it */
    poller_stop(p);
    throw_last(env, "pollStart");
    return NULL;
  }
  return ext;
}

static tun_poller* get_poller(napi_env env, napi_value v) {
  void* data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, "ERR_STYX_TUN_ARGS", "styx_tun: not a poller");
    return NULL;
  }
  return data;
}

/* pollStop(poller): idempotent. */
static napi_value tun_poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  tun_poller* p = get_poller(env, argv[0]);
  if (!p) return NULL;
  poller_stop(p);
  return undefined(env);
}

/* pollRef(poller, ref): whether a polled TUN alone keeps the loop alive. */
static napi_value tun_poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  tun_poller* p = get_poller(env, argv[0]);
  if (!p) return NULL;
  bool ref = true;
  CHECK(napi_get_value_bool(env, argv[1], &ref));
  if (p->active) {
    if (ref) uv_ref((uv_handle_t*)&p->poll);
    else uv_unref((uv_handle_t*)&p->poll);
  }
  return undefined(env);
}

/* native/styx_netlink.c: the kernel data plane's sockets. */
int styx_netlink_register(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  static const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {
      {"open", tun_open},         {"setMtu", tun_set_mtu},       {"setUp", tun_set_up},
      {"write", tun_write},       {"close", tun_close},          {"pollStart", tun_poll_start},
      {"pollStop", tun_poll_stop}, {"pollRef", tun_poll_ref},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  if (styx_netlink_register(env, exports) != 0) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
