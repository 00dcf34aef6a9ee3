/*
 * styx ESP addon: the per-packet work of the userspace ESP data plane that
 * costs too much through Node's own APIs.
 *
 * - AEAD seal/open (AES-GCM, RFC 4106; ChaCha20-Poly1305, RFC 7634) with one
 *   EVP_CIPHER_CTX per SA and direction, keyed once. Node's crypto module
 *   can only build a new cipher object per packet (key schedule, several
 *   JS<->C++ crossings and allocations each time); here a packet costs one
 *   N-API call that re-IVs the kept context. The ESP logic (framing,
 *   sequence numbers, replay window, policies) stays in src/esp/ in JS;
 *   this file only transforms the octets it is given, in the same layout
 *   src/esp/sa.ts uses.
 * - sendmmsg on a UDP socket: a batch of ESP-in-UDP datagrams in one system
 *   call instead of one dgram send (and one libuv request) per packet. The
 *   socket is opened here so its fd is known without reaching into Node's
 *   internals; net/ wraps the same fd in a dgram socket (bind({ fd })) for
 *   everything it receives and for IKE.
 *
 * The cryptography is OpenSSL's EVP interface, declared by the OpenSSL
 * headers Node ships in its include directory and resolved at load time
 * against the OpenSSL that is linked into the node binary itself (Node
 * exports those symbols for addons). Nothing is linked or downloaded at
 * build time.
 */
/* sendmmsg and struct mmsghdr are GNU extensions in glibc's headers. */
#define _GNU_SOURCE
#define STYX_ADDON "styx_esp"
#define STYX_ERR "ERR_STYX_ESP"
#include "styx_napi.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if OPENSSL_VERSION_MAJOR < 3
#error "styx_esp needs the OpenSSL 3 headers of Node >= 18"
#endif

#define ESP_HEADER 8
#define AEAD_IV 8
#define NONCE 12
#define SALT 4

/* Returns NULL so a callback can `return throw_range(...)`. */
static napi_value throw_range(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_STYX_ESP_ARGS", msg);
  return NULL;
}


static napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}


/* ---- AEAD SAs ------------------------------------------------------------ */

enum { KIND_AES_GCM = 0, KIND_CHACHA20_POLY1305 = 1 };

/* One SA's keyed contexts. Both directions exist because an EspTransform
 * offers seal and open (the known-answer tests use both on one transform);
 * the engine uses one of them per SA. */
typedef struct {
  EVP_CIPHER_CTX* enc;
  EVP_CIPHER_CTX* dec;
  uint8_t salt[SALT];
  uint32_t icv;
  int esn;
} aead_sa;

static void aead_free_ctx(aead_sa* sa) {
  /* EVP_CIPHER_CTX_free cleanses the key schedule. */
  if (sa->enc) EVP_CIPHER_CTX_free(sa->enc);
  if (sa->dec) EVP_CIPHER_CTX_free(sa->dec);
  sa->enc = sa->dec = NULL;
  OPENSSL_cleanse(sa->salt, sizeof sa->salt);
}

static void aead_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  aead_sa* sa = data;
  aead_free_ctx(sa);
  free(sa);
}

static EVP_CIPHER_CTX* keyed_ctx(const EVP_CIPHER* cipher, const uint8_t* key, int enc) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) return NULL;
  /* The IV length is set before the key so later re-IVs need no ctrl call:
   * both ciphers take the 12-octet salt | explicit IV nonce. */
  if (EVP_CipherInit_ex(c, cipher, NULL, NULL, NULL, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, NONCE, NULL) != 1 ||
      EVP_CipherInit_ex(c, NULL, NULL, key, NULL, enc) != 1) {
    EVP_CIPHER_CTX_free(c);
    return NULL;
  }
  return c;
}

/* aeadNew(kind, key, salt, icvBytes, esn) -> handle. `key` is the cipher key
 * without the salt (16/24/32 octets for GCM, 32 for ChaCha20). */
static napi_value aead_new(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, argv)) return NULL;
  int32_t kind = -1;
  uint32_t icv = 0;
  bool esn = false;
  void *key = NULL, *salt = NULL;
  size_t key_len = 0, salt_len = 0;
  CHECK(napi_get_value_int32(env, argv[0], &kind));
  CHECK(napi_get_buffer_info(env, argv[1], &key, &key_len));
  CHECK(napi_get_buffer_info(env, argv[2], &salt, &salt_len));
  CHECK(napi_get_value_uint32(env, argv[3], &icv));
  CHECK(napi_get_value_bool(env, argv[4], &esn));

  const EVP_CIPHER* cipher = NULL;
  if (kind == KIND_AES_GCM) {
    if (icv != 8 && icv != 12 && icv != 16) return throw_range(env, "styx_esp: GCM ICV must be 8, 12 or 16 octets");
    cipher = key_len == 16 ? EVP_aes_128_gcm() : key_len == 24 ? EVP_aes_192_gcm() : key_len == 32 ? EVP_aes_256_gcm() : NULL;
  } else if (kind == KIND_CHACHA20_POLY1305) {
    if (icv != 16) return throw_range(env, "styx_esp: ChaCha20-Poly1305 ICV must be 16 octets");
    cipher = key_len == 32 ? EVP_chacha20_poly1305() : NULL;
  }
  if (!cipher) return throw_range(env, "styx_esp: unknown AEAD or wrong key length");
  if (salt_len != SALT) return throw_range(env, "styx_esp: the salt must be 4 octets");

  aead_sa* sa = calloc(1, sizeof *sa);
  if (!sa) {
    napi_throw_error(env, "ERR_STYX_ESP_NOMEM", "styx_esp: out of memory");
    return NULL;
  }
  sa->enc = keyed_ctx(cipher, key, 1);
  sa->dec = keyed_ctx(cipher, key, 0);
  if (!sa->enc || !sa->dec) {
    aead_free_ctx(sa);
    free(sa);
    napi_throw_error(env, "ERR_STYX_ESP_EVP", "styx_esp: OpenSSL refused the AEAD key");
    return NULL;
  }
  memcpy(sa->salt, salt, SALT);
  sa->icv = icv;
  sa->esn = esn;
  napi_value ext;
  if (napi_create_external(env, sa, aead_finalize, NULL, &ext) != napi_ok) {
    aead_free_ctx(sa);
    free(sa);
    throw_last(env, "aeadNew");
    return NULL;
  }
  return ext;
}

static aead_sa* get_sa(napi_env env, napi_value v) {
  void* data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, "ERR_STYX_ESP_ARGS", "styx_esp: not an AEAD handle");
    return NULL;
  }
  aead_sa* sa = data;
  if (!sa->enc) {
    napi_throw_error(env, "ERR_STYX_ESP_FREED", "styx_esp: the SA's keys were already released");
    return NULL;
  }
  return sa;
}

/* aeadFree(handle): forgets the keys now rather than at garbage collection
 * (the SA was deleted). Idempotent. */
static napi_value aead_release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  void* data = NULL;
  CHECK(napi_get_value_external(env, argv[0], &data));
  if (data) aead_free_ctx(data);
  return undefined(env);
}

/* RFC 4106 4 / RFC 7634 2: nonce = salt | explicit IV (packet[8..16)).
 * RFC 4106 5 / RFC 7634 2.1: AAD = SPI | seq-low, or SPI | seq-high | seq-low
 * with ESN. */
static int aead_begin(aead_sa* sa, EVP_CIPHER_CTX* c, const uint8_t* packet, uint32_t seq_high, int enc) {
  uint8_t nonce[NONCE];
  uint8_t aad[12];
  int aad_len = ESP_HEADER, outl = 0;
  memcpy(nonce, sa->salt, SALT);
  memcpy(nonce + SALT, packet + ESP_HEADER, AEAD_IV);
  if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, enc) != 1) return 0;
  if (sa->esn) {
    memcpy(aad, packet, 4);
    aad[4] = (uint8_t)(seq_high >> 24);
    aad[5] = (uint8_t)(seq_high >> 16);
    aad[6] = (uint8_t)(seq_high >> 8);
    aad[7] = (uint8_t)seq_high;
    memcpy(aad + 8, packet + 4, 4);
    aad_len = 12;
  } else {
    memcpy(aad, packet, ESP_HEADER);
  }
  return EVP_CipherUpdate(c, NULL, &outl, aad, aad_len) == 1;
}

/* Encrypts out[pt_at, pt_at+pt_len) in place and writes the ICV after it;
 * out[0..16) already holds SPI | seq-low | IV. */
static int aead_seal_one(aead_sa* sa, uint8_t* out, size_t pt_at, size_t pt_len, uint32_t seq_high) {
  EVP_CIPHER_CTX* c = sa->enc;
  int n = 0, f = 0;
  if (!aead_begin(sa, c, out, seq_high, 1)) return 0;
  if (pt_len > 0 && EVP_CipherUpdate(c, out + pt_at, &n, out + pt_at, (int)pt_len) != 1) return 0;
  if (EVP_CipherFinal_ex(c, out + pt_at + n, &f) != 1) return 0;
  if ((size_t)(n + f) != pt_len) return 0;
  return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, (int)sa->icv, out + pt_at + pt_len) == 1;
}

/* Verifies and decrypts packet[16, len-icv) into out; 1 authentic, 0 not.
 * Nothing is left in `out` unless the tag verified. */
static int aead_open_one(aead_sa* sa, const uint8_t* packet, size_t len, uint8_t* out, uint32_t seq_high) {
  EVP_CIPHER_CTX* c = sa->dec;
  size_t ct_at = ESP_HEADER + AEAD_IV, tag_at = len - sa->icv, ct_len = tag_at - ct_at;
  int n = 0, f = 0, okay = 0;
  if (aead_begin(sa, c, packet, seq_high, 0) &&
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, (int)sa->icv, (void*)(packet + tag_at)) == 1 &&
      (ct_len == 0 || EVP_CipherUpdate(c, out, &n, packet + ct_at, (int)ct_len) == 1) &&
      EVP_CipherFinal_ex(c, out + n, &f) == 1 && (size_t)(n + f) == ct_len)
    okay = 1;
  if (!okay && ct_len > 0) OPENSSL_cleanse(out, ct_len);
  return okay;
}

/* aeadSeal(handle, out, ptAt, ptLen, seqHigh) */
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, argv)) return NULL;
  aead_sa* sa = get_sa(env, argv[0]);
  if (!sa) return NULL;
  void* out = NULL;
  size_t len = 0;
  uint32_t pt_at = 0, pt_len = 0, seq_high = 0;
  CHECK(napi_get_buffer_info(env, argv[1], &out, &len));
  CHECK(napi_get_value_uint32(env, argv[2], &pt_at));
  CHECK(napi_get_value_uint32(env, argv[3], &pt_len));
  CHECK(napi_get_value_uint32(env, argv[4], &seq_high));
  if (pt_at < ESP_HEADER + AEAD_IV || (uint64_t)pt_at + pt_len + sa->icv > len || pt_len > INT32_MAX)
    return throw_range(env, "styx_esp: seal range outside the buffer");
  if (!aead_seal_one(sa, out, pt_at, pt_len, seq_high)) {
    napi_throw_error(env, "ERR_STYX_ESP_EVP", "styx_esp: AEAD encryption failed");
    return NULL;
  }
  return undefined(env);
}

/* aeadOpen(handle, packet, out, seqHigh) -> authentic. `out` takes the
 * plaintext (packet length - 16 - ICV octets). */
static napi_value aead_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  aead_sa* sa = get_sa(env, argv[0]);
  if (!sa) return NULL;
  void *packet = NULL, *out = NULL;
  size_t len = 0, out_len = 0;
  uint32_t seq_high = 0;
  CHECK(napi_get_buffer_info(env, argv[1], &packet, &len));
  CHECK(napi_get_buffer_info(env, argv[2], &out, &out_len));
  CHECK(napi_get_value_uint32(env, argv[3], &seq_high));
  if (len < ESP_HEADER + AEAD_IV + sa->icv || len > INT32_MAX || out_len < len - ESP_HEADER - AEAD_IV - sa->icv)
    return throw_range(env, "styx_esp: open: packet too short or output too small");
  return boolean(env, aead_open_one(sa, packet, len, out, seq_high) == 1);
}

/* ---- UDP --------------------------------------------------------------- */

static int parse_addr(napi_env env, napi_value v_addr, napi_value v_port, struct sockaddr_storage* ss, socklen_t* sl) {
  char text[64];
  size_t n = 0;
  uint32_t port = 0;
  if (napi_get_value_string_utf8(env, v_addr, text, sizeof text, &n) != napi_ok ||
      napi_get_value_uint32(env, v_port, &port) != napi_ok || port > 65535) {
    napi_throw_type_error(env, "ERR_STYX_ESP_ARGS", "styx_esp: address must be a string and port 0-65535");
    return -1;
  }
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in* a4 = (struct sockaddr_in*)ss;
  struct sockaddr_in6* a6 = (struct sockaddr_in6*)ss;
  if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *sl = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *sl = sizeof *a6;
    return 0;
  }
  napi_throw_type_error(env, "ERR_STYX_ESP_ARGS", "styx_esp: not an IPv4 or IPv6 address");
  return -1;
}

/* Socket buffers past net.core.[rw]mem_max need the FORCE variants
 * (CAP_NET_ADMIN, which a daemon driving a TUN has); without it the plain
 * option still gets what the limit allows. */
static void set_buffer(int fd, int force_opt, int opt, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

/* udpOpen(address, port, rcvbuf, sndbuf) -> fd, bound, non-blocking. */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  if (parse_addr(env, argv[0], argv[1], &ss, &sl)) return NULL;
  int32_t rcv = 0, snd = 0;
  CHECK(napi_get_value_int32(env, argv[2], &rcv));
  CHECK(napi_get_value_int32(env, argv[3], &snd));
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", NULL);
    return NULL;
  }
  if (ss.ss_family == AF_INET6) {
    /* As dgram's udp6 with ipv6Only: IPv4 has its own socket. */
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcv);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, snd);
  if (bind(fd, (struct sockaddr*)&ss, sl) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "bind", NULL);
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* udpBufferSizes(fd) -> [rcvbuf, sndbuf] as the kernel reports them. */
static napi_value udp_buffer_sizes(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd = -1;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int r = 0, s = 0;
  socklen_t l = sizeof r;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &r, &l) < 0) {
    throw_errno(env, errno, "getsockopt", "SO_RCVBUF");
    return NULL;
  }
  l = sizeof s;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s, &l) < 0) {
    throw_errno(env, errno, "getsockopt", "SO_SNDBUF");
    return NULL;
  }
  napi_value arr, a, b;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_int32(env, r, &a));
  CHECK(napi_create_int32(env, s, &b));
  CHECK(napi_set_element(env, arr, 0, a));
  CHECK(napi_set_element(env, arr, 1, b));
  return arr;
}

#define SEND_CHUNK 64

/* udpSend(fd, bufs, start, count, address, port, result: Int32Array(2))
 *   -> how many of bufs[start, start+count) were dealt with.
 * All go to one destination. A datagram the kernel refuses (no route,
 * unreachable, filtered) is skipped and counted in result[0], its errno in
 * result[1]; a full socket buffer (EAGAIN, ENOBUFS) ends the call early, and
 * the caller hands the rest to dgram, which waits for the socket. */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (get_args(env, info, 7, argv)) return NULL;
  int32_t fd = -1;
  uint32_t start = 0, count = 0, total = 0;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_array_length(env, argv[1], &total));
  CHECK(napi_get_value_uint32(env, argv[2], &start));
  CHECK(napi_get_value_uint32(env, argv[3], &count));
  if ((uint64_t)start + count > total) return throw_range(env, "styx_esp: send range outside the array");
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  if (parse_addr(env, argv[4], argv[5], &ss, &sl)) return NULL;
  napi_typedarray_type tt;
  size_t rlen = 0;
  void* rdata = NULL;
  CHECK(napi_get_typedarray_info(env, argv[6], &tt, &rlen, &rdata, NULL, NULL));
  if (tt != napi_int32_array || rlen < 2) return throw_range(env, "styx_esp: result must be an Int32Array(2)");
  int32_t* result = rdata;

  struct mmsghdr msgs[SEND_CHUNK];
  struct iovec iov[SEND_CHUNK];
  uint32_t done = 0;
  while (done < count) {
    uint32_t n = count - done < SEND_CHUNK ? count - done : SEND_CHUNK;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      void* data = NULL;
      size_t len = 0;
      CHECK(napi_get_element(env, argv[1], start + done + i, &el));
      CHECK(napi_get_buffer_info(env, el, &data, &len));
      iov[i].iov_base = data;
      iov[i].iov_len = len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &ss;
      msgs[i].msg_hdr.msg_namelen = sl;
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r > 0) {
      done += (uint32_t)r;
      continue;
    }
    if (r == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) break;
    if (err == EBADF || err == ENOTSOCK || err == EFAULT) {
      throw_errno(env, err, "sendmmsg", NULL);
      return NULL;
    }
    /* sendmmsg reports an error only for the first datagram of the call. */
    result[0]++;
    result[1] = err;
    done++;
  }
  napi_value out;
  CHECK(napi_create_uint32(env, done, &out));
  return out;
}

/* openssl() -> the OpenSSL this addon runs on (the one inside node). */
static napi_value openssl_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  CHECK(napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {
      {"aeadNew", aead_new},   {"aeadFree", aead_release}, {"aeadSeal", aead_seal},
      {"aeadOpen", aead_open}, {"udpOpen", udp_open},      {"udpBufferSizes", udp_buffer_sizes},
      {"udpSend", udp_send},   {"openssl", openssl_version},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
