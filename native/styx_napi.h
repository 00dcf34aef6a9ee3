/*
 * N-API helpers shared by the styx addons. A source file defines STYX_ADDON
 * (its name at the head of messages, "styx_tun") and STYX_ERR (the stem of
 * its error codes, "ERR_STYX_TUN") before including this, so each addon's
 * errors still say where they come from.
 *
 * Plain N-API (node_api.h) plus libuv from Node's own headers, so node-gyp
 * builds the addons offline against the installed Node.
 */
#ifndef STYX_NAPI_H
#define STYX_NAPI_H

#if !defined(STYX_ADDON) || !defined(STYX_ERR)
#error "define STYX_ADDON and STYX_ERR before including styx_napi.h"
#endif

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Bails out of a napi_callback when an N-API call fails; a JS exception is
 * already pending in that case (or the engine is shutting down). */
#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      throw_last(env, #call);                                              \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static inline void throw_last(napi_env env, const char* what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info* info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, STYX_ADDON ": %s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, STYX_ERR "_NAPI", msg);
}

/* Throws an Error whose .code is the errno name (ENOENT, EPERM, ...) and whose
 * .syscall and .errno mirror Node's own system errors, so the TS side treats
 * every addon's errors alike and can turn the common cases into advice.
 * `detail` (or NULL) follows the syscall in the message. */
static inline void throw_errno(napi_env env, int err, const char* syscall, const char* detail) {
  char msg[512];
  const char* name = uv_err_name(-err);
  snprintf(msg, sizeof msg, "%s%s%s: %s (%s)", syscall, detail ? " " : "", detail ? detail : "",
           strerror(err), name);
  napi_value m, code, e, sc, no;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok) return;
  if (napi_create_error(env, code, m, &e) != napi_ok) return;
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) == napi_ok)
    napi_set_named_property(env, e, "syscall", sc);
  if (napi_create_int32(env, -err, &no) == napi_ok) napi_set_named_property(env, e, "errno", no);
  napi_throw(env, e);
}

static inline napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* The first `want` arguments of a call into argv; -1 with a TypeError
 * pending when there are fewer. */
static inline int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < want) {
    napi_throw_type_error(env, STYX_ERR "_ARGS", STYX_ADDON ": too few arguments");
    return -1;
  }
  return 0;
}

#endif
