// sandlet's one native piece: what Node cannot do for SBus.
// AF_UNIX SOCK_DGRAM bind/receive (driven by a libuv poll handle, never blocking the loop),
// sendmsg with SCM_RIGHTS to a path, pipe2(O_CLOEXEC) and close. N-API only, so one build
// loads in every Node >= 18.
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

// The kernel never passes more than SCM_MAX_FD (253) descriptors in one message.
#define MAX_FDS 253

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "N-API call failed: " #call); \
      return NULL;                                    \
    }                                                 \
  } while (0)

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case EAGAIN: return "EAGAIN";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EADDRINUSE: return "EADDRINUSE";
    case EACCES: return "EACCES";
    case EMSGSIZE: return "EMSGSIZE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    default: return "EUNKNOWN";
  }
}

// Throws an Error with .code (errno name), .errno and .path, message "<op> <path>: <CODE> (<text>)".
static void throw_errno(napi_env env, int err, const char *op, const char *path) {
  char msg[512];
  const char *code = errno_name(err);
  if (path != NULL) {
    snprintf(msg, sizeof msg, "%s %s: %s (%s)", op, path, code, strerror(err));
  } else {
    snprintf(msg, sizeof msg, "%s: %s (%s)", op, code, strerror(err));
  }
  napi_value js_code, js_msg, error, js_errno;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg);
  napi_create_error(env, js_code, js_msg, &error);
  napi_create_int32(env, err, &js_errno);
  napi_set_named_property(env, error, "errno", js_errno);
  if (path != NULL) {
    napi_value js_path;
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &js_path);
    napi_set_named_property(env, error, "path", js_path);
  }
  napi_throw(env, error);
}

// Reads a string argument into buf; returns 0 and throws when it does not fit.
static int get_path_arg(napi_env env, napi_value value, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, buf, size, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "path must be a string");
    return 0;
  }
  if (len == 0) {
    napi_throw_type_error(env, NULL, "path must not be empty");
    return 0;
  }
  if (len >= size - 1) {
    throw_errno(env, ENAMETOOLONG, "socket path too long (max 107 bytes)", buf);
    return 0;
  }
  return 1;
}

static int fill_addr(struct sockaddr_un *addr, const char *path) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof addr->sun_path) return 0;
  memcpy(addr->sun_path, path, len);
  return 1;
}

// A socket file that nobody is bound to any more refuses connections: such a file is stale.
static int socket_file_is_stale(const struct sockaddr_un *addr) {
  struct stat st;
  if (stat(addr->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return 0;
  int rc = connect(probe, (const struct sockaddr *)addr, sizeof *addr);
  int err = errno;
  close(probe);
  return rc != 0 && err == ECONNREFUSED;
}

// A new non-blocking, close-on-exec AF_UNIX socket of `type` bound at the path in argv[0] (also
// copied to `path`). A stale socket file is replaced; a live one is EADDRINUSE. Returns the fd, or
// -1 with an exception pending.
static int bind_path_arg(napi_env env, napi_callback_info info, int type, char *path, size_t path_size) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "N-API call failed: napi_get_cb_info");
    return -1;
  }
  if (argc < 1 || !get_path_arg(env, argv[0], path, path_size)) return -1;
  struct sockaddr_un addr;
  if (!fill_addr(&addr, path)) {
    throw_errno(env, ENAMETOOLONG, "bind", path);
    return -1;
  }
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", path);
    return -1;
  }
  int err = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : errno;
  if (err == EADDRINUSE && socket_file_is_stale(&addr)) {
    unlink(path);
    err = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : errno;
  }
  if (err != 0) {
    close(fd);
    throw_errno(env, err, "bind", path);
    return -1;
  }
  return fd;
}

// bind(path) -> fd: a datagram socket, non-blocking and close-on-exec (see bind_path_arg).
static napi_value Bind(napi_env env, napi_callback_info info) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  int fd = bind_path_arg(env, info, SOCK_DGRAM, path, sizeof path);
  if (fd < 0) return NULL;
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

// One sending socket per process, shared by all threads: sendmsg is thread-safe and an unbound
// datagram socket carries no per-peer state.
static int sender_fd = -1;
static uv_mutex_t sender_lock;
static uv_once_t sender_once = UV_ONCE_INIT;
static void init_sender_lock(void) { uv_mutex_init(&sender_lock); }

static int get_sender(void) {
  uv_once(&sender_once, init_sender_lock);
  uv_mutex_lock(&sender_lock);
  if (sender_fd < 0) sender_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int fd = sender_fd;
  uv_mutex_unlock(&sender_lock);
  return fd;
}

// The body and fds arguments of send() and sendOn() (argv[1], argv[2]). Returns 0 with an
// exception pending when they are wrong.
static int get_send_args(napi_env env, napi_value *argv, void **data, size_t *length, int *fds, uint32_t *nfds) {
  bool is_buffer = false;
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "body must be a Buffer");
    return 0;
  }
  if (napi_get_buffer_info(env, argv[1], data, length) != napi_ok) return 0;
  bool is_array = false;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "fds must be an array of integers");
    return 0;
  }
  if (napi_get_array_length(env, argv[2], nfds) != napi_ok) return 0;
  if (*nfds > MAX_FDS) {
    napi_throw_range_error(env, NULL, "too many fds in one datagram (max 253)");
    return 0;
  }
  for (uint32_t i = 0; i < *nfds; i++) {
    napi_value item;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok || napi_get_value_int32(env, item, &fds[i]) != napi_ok ||
        fds[i] < 0) {
      napi_throw_type_error(env, NULL, "fds must be non-negative integers");
      return 0;
    }
  }
  return 1;
}

// One sendmsg with fds as SCM_RIGHTS, to addr (a datagram) or on a connected socket (addr NULL).
// Returns 0 or an errno. Never blocks, never raises SIGPIPE.
static int send_with_fds(int sock, const struct sockaddr_un *addr, void *data, size_t length, const int *fds,
                         uint32_t nfds) {
  struct iovec iov = {.iov_base = data, .iov_len = length};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  if (addr != NULL) {
    msg.msg_name = (void *)addr;
    msg.msg_namelen = sizeof *addr;
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(control.buf, 0, CMSG_SPACE(sizeof(int) * nfds));
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }
  ssize_t sent;
  do {
    sent = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  return sent < 0 ? errno : 0;
}

// send(path, body: Buffer, fds: number[]) -> undefined. Throws with .code EAGAIN when the
// receiver's queue is full, so the caller can back off and retry.
static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "send(path, body, fds) needs three arguments");
    return NULL;
  }
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (!get_path_arg(env, argv[0], path, sizeof path)) return NULL;
  void *data = NULL;
  size_t length = 0;
  int fds[MAX_FDS];
  uint32_t nfds = 0;
  if (!get_send_args(env, argv, &data, &length, fds, &nfds)) return NULL;
  struct sockaddr_un addr;
  if (!fill_addr(&addr, path)) {
    throw_errno(env, ENAMETOOLONG, "sendmsg", path);
    return NULL;
  }
  int sock = get_sender();
  if (sock < 0) {
    throw_errno(env, errno, "socket", path);
    return NULL;
  }
  int err = send_with_fds(sock, &addr, data, length, fds, nfds);
  if (err != 0) throw_errno(env, err, "sendmsg", path);
  return NULL;
}

// sendOn(fd, body: Buffer, fds: number[]) -> undefined: one message on a connected SOCK_SEQPACKET
// socket. Throws with .code EAGAIN when the peer's queue is full, EPIPE/ECONNRESET when it is gone.
static napi_value SendOn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t sock = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || sock < 0) {
    napi_throw_type_error(env, NULL, "sendOn(fd, body, fds): bad arguments");
    return NULL;
  }
  void *data = NULL;
  size_t length = 0;
  int fds[MAX_FDS];
  uint32_t nfds = 0;
  if (!get_send_args(env, argv, &data, &length, fds, &nfds)) return NULL;
  int err = send_with_fds(sock, NULL, data, length, fds, nfds);
  if (err != 0) throw_errno(env, err, "sendmsg", NULL);
  return NULL;
}

// listenSeqpacket(path) -> fd: a listening AF_UNIX SOCK_SEQPACKET socket, non-blocking and
// close-on-exec. A stale socket file is replaced; a live one is EADDRINUSE (another process owns it).
static napi_value ListenSeqpacket(napi_env env, napi_callback_info info) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  int fd = bind_path_arg(env, info, SOCK_SEQPACKET, path, sizeof path);
  if (fd < 0) return NULL;
  if (listen(fd, 8) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "listen", path);
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

// connectSeqpacket(path) -> fd: a connected, non-blocking, close-on-exec SOCK_SEQPACKET socket.
// Throws with .code EAGAIN when the listener's backlog is full, ENOENT/ECONNREFUSED when nobody
// listens: the caller retries.
static napi_value ConnectSeqpacket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (argc < 1 || !get_path_arg(env, argv[0], path, sizeof path)) return NULL;
  struct sockaddr_un addr;
  if (!fill_addr(&addr, path)) {
    throw_errno(env, ENAMETOOLONG, "connect", path);
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", path);
    return NULL;
  }
  int rc;
  do {
    rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "connect", path);
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

// A receiving socket under a libuv poll handle. Each readable event drains the queue and calls
// back once per datagram: callback(body: Buffer, fds: number[], truncated: boolean).
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  size_t max_bytes;
  size_t capacity;
  char *buffer;
  int closing;
  // A connected socket: recvmsg's 0 is the peer's EOF, reported once through `closed`.
  int connected;
  napi_ref closed;
  // A listening socket: each readable event accepts connections, calling back with their fds.
  int accepting;
} listener_t;

static void on_listener_closed(uv_handle_t *handle) {
  listener_t *l = (listener_t *)handle->data;
  close(l->fd);  // only now: see on_op_closed
  free(l->buffer);
  free(l);
}

static void deliver(listener_t *l, size_t len, const int *fds, int nfds, int truncated) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[3], cb, recv, result, item;
  void *unused;
  napi_create_buffer_copy(env, len, l->buffer, &unused, &argv[0]);
  napi_create_array_with_length(env, (size_t)nfds, &argv[1]);
  for (int i = 0; i < nfds; i++) {
    napi_create_int32(env, fds[i], &item);
    napi_set_element(env, argv[1], (uint32_t)i, item);
  }
  napi_get_boolean(env, truncated != 0, &argv[2]);
  napi_get_reference_value(env, l->callback, &cb);
  napi_get_global(env, &recv);  // make_callback wants an object receiver
  // make_callback drains microtasks and nextTicks afterwards, as a real Node callback does.
  if (napi_make_callback(env, l->async, recv, cb, 3, argv, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

// The peer of a connected socket is gone: polling stops and `closed` is called once. The fd stays
// open until JS calls close(), so its number is never reused while JS may still name it.
static void report_closed(listener_t *l) {
  if (l->closing) return;
  l->closing = 1;
  uv_poll_stop(&l->poll);
  if (l->closed == NULL) return;
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result;
  napi_get_reference_value(env, l->closed, &cb);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, l->async, recv, cb, 0, NULL, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

// Accepts every pending connection (bounded per wake-up) and calls back with each new fd, which
// is non-blocking, close-on-exec and the callback's to own.
static void accept_pending(listener_t *l) {
  for (int round = 0; round < 16 && !l->closing; round++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN: none left. EMFILE and the like: the next wake-up tries again.
    }
    napi_env env = l->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) {
      close(fd);
      return;
    }
    napi_value argv[1], cb, recv, result;
    napi_create_int32(env, fd, &argv[0]);
    napi_get_reference_value(env, l->callback, &cb);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, l->async, recv, cb, 1, argv, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
    napi_close_handle_scope(env, scope);
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  listener_t *l = (listener_t *)handle->data;
  (void)events;
  // libuv reports EPOLLERR as an error status and stops the handle: on a connected socket that is
  // the peer gone with our message unread (ECONNRESET), an EOF like any other.
  if (status < 0) {
    if (l->connected) report_closed(l);
    return;
  }
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  if (l->accepting) {
    accept_pending(l);
    return;
  }
  // Bounded drain, so one flooding peer cannot starve the rest of the loop.
  for (int round = 0; round < 64 && !l->closing; round++) {
    struct iovec iov = {.iov_base = l->buffer, .iov_len = l->capacity};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(l->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (l->connected && (n == 0 || (n < 0 && errno != EAGAIN))) {
      report_closed(l);
      return;
    }
    if (n < 0) return;  // EAGAIN: drained. Other errors: nothing to deliver.
    int fds[MAX_FDS];
    int nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < count && nfds < MAX_FDS; i++) {
        memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      }
    }
    int truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || (size_t)n > l->max_bytes;
    deliver(l, (size_t)n, fds, nfds, truncated);
  }
}

static napi_value ListenerClose(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  listener_t *l = NULL;
  if (napi_remove_wrap(env, self, (void **)&l) != napi_ok || l == NULL) return NULL;  // closed
  l->closing = 1;
  uv_poll_stop(&l->poll);
  napi_delete_reference(env, l->callback);
  if (l->closed != NULL) napi_delete_reference(env, l->closed);
  napi_async_destroy(env, l->async);
  uv_close((uv_handle_t *)&l->poll, on_listener_closed);
  return NULL;
}

// The arguments of listen() and readToEnd(): (fd, maxBytes, callback). Returns 0 with a
// TypeError pending when they are wrong.
static int get_poll_args(napi_env env, napi_callback_info info, const char *usage, int allow_zero,
                         int32_t *fd, uint32_t *max_bytes, napi_value *callback) {
  size_t argc = 3;
  napi_value argv[3];
  napi_valuetype cb_type = napi_undefined;
  *fd = -1;
  *max_bytes = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0 ||
      napi_get_value_uint32(env, argv[1], max_bytes) != napi_ok || (!allow_zero && *max_bytes == 0) ||
      napi_typeof(env, argv[2], &cb_type) != napi_ok || cb_type != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  *callback = argv[2];
  return 1;
}

// The JS side of a long-lived poll-driven object (a listener): a reference to its callback with an
// async context (named resource) to call it in, and an object wrapping `native` whose one method
// is `method`. No finalizer: the object is closed explicitly. Returns the object, or NULL with an
// exception pending.
static napi_value make_handle(napi_env env, napi_value callback, const char *resource, void *native,
                              const char *method, napi_callback method_fn,
                              napi_ref *callback_ref, napi_async_context *async, napi_value *method_value) {
  napi_value name, self;
  CHECK(napi_create_reference(env, callback, 1, callback_ref));
  CHECK(napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, async));
  CHECK(napi_create_object(env, &self));
  CHECK(napi_wrap(env, self, native, NULL, NULL, NULL));
  CHECK(napi_create_function(env, method, NAPI_AUTO_LENGTH, method_fn, NULL, method_value));
  CHECK(napi_set_named_property(env, self, method, *method_value));
  return self;
}

// Drives fd under a poll handle: datagrams (or messages of a connected socket, with EOF reported
// to `closed` when it is not NULL), or connections when `accepting`. Takes ownership of fd.
static napi_value start_listener(napi_env env, int32_t fd, uint32_t max_bytes, napi_value callback, napi_value closed,
                                 int accepting) {
  uv_loop_t *loop = NULL;
  CHECK(napi_get_uv_event_loop(env, &loop));
  listener_t *l = calloc(1, sizeof *l);
  if (l == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  // One byte more than allowed: a datagram that fills it is over the bound, and anything larger
  // shows as MSG_TRUNC.
  l->max_bytes = max_bytes;
  l->capacity = (size_t)max_bytes + 1;
  l->buffer = malloc(l->capacity);
  l->fd = fd;
  l->env = env;
  l->accepting = accepting;
  if (l->buffer == NULL) {
    free(l);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  int rc = uv_poll_init(loop, &l->poll, fd);
  if (rc != 0) {
    free(l->buffer);
    free(l);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  l->poll.data = l;
  napi_value close_fn;
  napi_value self = make_handle(env, callback, "sandlet.sbus.listener", l, "close", ListenerClose, &l->callback, &l->async, &close_fn);
  if (self == NULL) return NULL;
  if (closed != NULL) {
    l->connected = 1;
    CHECK(napi_create_reference(env, closed, 1, &l->closed));
  }
  rc = uv_poll_start(&l->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    napi_value tmp;
    napi_call_function(env, self, close_fn, 0, NULL, &tmp);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  return self;
}

// listen(fd, maxDatagramBytes, callback[, closed]) -> { close() }. Takes ownership of fd: close()
// closes it. With `closed`, fd is a connected socket whose EOF calls closed() once.
static napi_value Listen(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t max_bytes;
  napi_value callback;
  if (!get_poll_args(env, info, "listen(fd, maxDatagramBytes, callback[, closed]): bad arguments", 0, &fd, &max_bytes, &callback)) {
    return NULL;
  }
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_value closed = NULL;
  if (argc >= 4) {
    napi_valuetype t = napi_undefined;
    CHECK(napi_typeof(env, argv[3], &t));
    if (t == napi_function) {
      closed = argv[3];
    } else if (t != napi_undefined) {
      napi_throw_type_error(env, NULL, "listen: closed must be a function");
      return NULL;
    }
  }
  return start_listener(env, fd, max_bytes, callback, closed, 0);
}

// acceptOn(fd, callback) -> { close() }: accepts connections on a listening socket, calling
// back with each connection's fd (the callback's to own). Takes ownership of fd.
static napi_value AcceptOn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  napi_valuetype cb_type = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &cb_type) != napi_ok || cb_type != napi_function) {
    napi_throw_type_error(env, NULL, "acceptOn(fd, callback): bad arguments");
    return NULL;
  }
  return start_listener(env, fd, 1, argv[1], NULL, 1);
}

// pipe() -> [readFd, writeFd], both close-on-exec. Optional size asks the kernel for a larger
// pipe buffer (F_SETPIPE_SZ), which cuts syscalls per byte on bulk streams; failure is ignored.
static napi_value Pipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t size = 0;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &size);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno(env, errno, "pipe2", NULL);
    return NULL;
  }
#ifdef F_SETPIPE_SZ
  if (size > 0) fcntl(fds[1], F_SETPIPE_SZ, size);
#endif
  napi_value result, r, w;
  CHECK(napi_create_array_with_length(env, 2, &result));
  CHECK(napi_create_int32(env, fds[0], &r));
  CHECK(napi_create_int32(env, fds[1], &w));
  CHECK(napi_set_element(env, result, 0, r));
  CHECK(napi_set_element(env, result, 1, w));
  return result;
}

// The call's arguments with argv[0] an fd. Returns 0 with a TypeError naming the call pending
// when it is not a non-negative integer.
static int get_fd_args(napi_env env, napi_callback_info info, const char *call, size_t *argc, napi_value *argv, int32_t *fd) {
  *fd = -1;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok || *argc < 1 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: fd must be a non-negative integer", call);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

// close(fd). EBADF is an error: it means some code closed an fd it did not own.
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (!get_fd_args(env, info, "close(fd)", &argc, argv, &fd)) return NULL;
  // On Linux the fd is released even when close() reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) {
    throw_errno(env, errno, "close", NULL);
    return NULL;
  }
  return NULL;
}

// pollable(fd, setNonBlocking) -> whether fd is a pipe or a socket (what libuv can poll; a
// regular file cannot be). With setNonBlocking, such an fd is also put in non-blocking mode, so a
// reader may try it synchronously and fall back to polling on EAGAIN. One fstat, no Stats object:
// the agent asks this for every fd of every EXECUTE.
static napi_value Pollable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool nonblock = false;
  if (!get_fd_args(env, info, "pollable(fd, setNonBlocking)", &argc, argv, &fd)) return NULL;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &nonblock);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    throw_errno(env, errno, "fstat", NULL);
    return NULL;
  }
  bool pollable = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
  if (pollable && nonblock) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)) {
      throw_errno(env, errno, "fcntl", NULL);
      return NULL;
    }
  }
  napi_value result;
  CHECK(napi_get_boolean(env, pollable, &result));
  return result;
}

// fileSize(fd) -> st_size, without the Stats object fs.fstatSync builds (asked per invocation of
// the invocation log's fd).
static napi_value FileSize(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (!get_fd_args(env, info, "fileSize(fd)", &argc, argv, &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    throw_errno(env, errno, "fstat", NULL);
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int64(env, (int64_t)st.st_size, &result));
  return result;
}

// tryWrite(fd, body) -> bytes written. Puts the fd in non-blocking mode first: replies go to
// pipes a peer handed us, and a peer that hands over a full pipe must not stall the server.
// Throws with .code EAGAIN when the pipe has no room.
static napi_value TryWrite(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "tryWrite(fd, body): bad arguments");
    return NULL;
  }
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)) {
    throw_errno(env, errno, "fcntl", NULL);
    return NULL;
  }
  ssize_t n;
  do {
    n = write(fd, data, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    throw_errno(env, errno, "write", NULL);
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int64(env, (int64_t)n, &result));
  return result;
}

// The poll-driven reads below run several times per invocation. They are named to JS by number,
// not by a wrapped object: an object with a native finalizer is held by a weak handle, which
// V8's young-generation GC treats as strong, so every such object (with what it held) survived
// into the old generation and was freed only by full GCs. Per env: the reads in flight, by
// slot, and one async context for all their callbacks (the callbacks settle promises, and
// async context flows along those).
#define SLOT_BITS 20
#define MAX_SLOTS (1u << SLOT_BITS)

// What every poll-driven op starts with. It is the first member of each op's struct, and the
// poll handle the first member of it, so a handle's address is its op's.
enum op_kind { OP_READ_TO_END = 1, OP_STREAM = 2, OP_WATCH = 3, OP_PUMP = 4 };

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  int fd;
  uint32_t slot;
  enum op_kind kind;  // an id of one kind never reaches the functions of the other
  int ended;          // EOF or error seen, or stopped from JS: no more reads
  const char *error_code;  // static strings only (errno names)
  char *buf;
  size_t len;  // bytes in buf that a read to EOF delivers
} op_t;


typedef struct {
  void **ops;
  uint32_t *gens;
  uint32_t *free_slots;
  uint32_t nfree;
  uint32_t cap;
  napi_async_context async;
} registry_t;

static void registry_finalize(napi_env env, void *data, void *hint) {
  registry_t *g = (registry_t *)data;
  (void)env;
  (void)hint;
  free(g->ops);
  free(g->gens);
  free(g->free_slots);
  free(g);
}

static registry_t *registry(napi_env env) {
  registry_t *g = NULL;
  napi_get_instance_data(env, (void **)&g);
  return g;
}

// Returns the op's id (generation and slot in one safe integer), or -1 when out of slots.
static int64_t registry_put(registry_t *g, void *op, uint32_t *slot_out) {
  if (g->nfree == 0) {
    uint32_t cap = g->cap ? g->cap * 2 : 64;
    if (cap > MAX_SLOTS) return -1;
    void **ops = realloc(g->ops, cap * sizeof *ops);
    if (ops == NULL) return -1;
    g->ops = ops;
    uint32_t *gens = realloc(g->gens, cap * sizeof *gens);
    if (gens == NULL) return -1;
    g->gens = gens;
    uint32_t *free_slots = realloc(g->free_slots, cap * sizeof *free_slots);
    if (free_slots == NULL) return -1;
    g->free_slots = free_slots;
    for (uint32_t i = cap; i > g->cap; i--) {
      g->ops[i - 1] = NULL;
      g->gens[i - 1] = 0;
      g->free_slots[g->nfree++] = i - 1;
    }
    g->cap = cap;
  }
  uint32_t slot = g->free_slots[--g->nfree];
  g->ops[slot] = op;
  *slot_out = slot;
  return ((int64_t)g->gens[slot] << SLOT_BITS) | slot;
}

static void *registry_get(registry_t *g, int64_t id) {
  if (g == NULL || id < 0) return NULL;
  uint32_t slot = (uint32_t)(id & (MAX_SLOTS - 1));
  if (slot >= g->cap || (int64_t)g->gens[slot] != (id >> SLOT_BITS)) return NULL;
  return g->ops[slot];
}

// The op is over: its id now names nothing (a late cancel() or close() is a no-op).
static void registry_drop(registry_t *g, uint32_t slot) {
  g->ops[slot] = NULL;
  g->gens[slot] = (g->gens[slot] + 1) & 0x7fffffff;
  g->free_slots[g->nfree++] = slot;
}

// The op of a kind that argv[0] names; NULL (no exception) when it names none.
static void *op_arg(napi_env env, napi_callback_info info, int kind) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t id = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &id) != napi_ok) {
    return NULL;
  }
  op_t *op = (op_t *)registry_get(registry(env), id);
  return op != NULL && (int)op->kind == kind ? op : NULL;
}

// Calls an op's callback with two arguments in the shared async context; a throw is fatal, as
// an uncaught exception is.
static void op_callback(napi_env env, napi_ref callback, napi_value *argv) {
  napi_value cb, recv, result;
  napi_get_reference_value(env, callback, &cb);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, registry(env)->async, recv, cb, 2, argv, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

// Calls an op's callback as (errorCode | null, data | null) in the shared async context.
static void call_op(napi_env env, napi_ref callback, const char *error_code, const char *data, size_t len) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[2];
  if (error_code != NULL) {
    napi_create_string_utf8(env, error_code, NAPI_AUTO_LENGTH, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  if (data != NULL) {
    void *unused;
    napi_create_buffer_copy(env, len, len > 0 ? data : "", &unused, &argv[1]);
  } else {
    napi_get_null(env, &argv[1]);
  }
  op_callback(env, callback, argv);
  napi_close_handle_scope(env, scope);
}


// The fd is closed only once libuv let go of it: closing it under an active handle could leave
// a stale epoll registration for the next fd with that number.
static void on_op_closed(uv_handle_t *handle) {
  op_t *op = (op_t *)handle->data;
  close(op->fd);
  free(op->buf);
  free(op);
}

// Stopped from JS: no callback; the fd is closed and the op freed once libuv let go.
static void op_stop_quietly(op_t *op) {
  op->ended = 1;
  uv_poll_stop(&op->poll);
  napi_delete_reference(op->env, op->callback);
  registry_drop(registry(op->env), op->slot);
  uv_close((uv_handle_t *)&op->poll, on_op_closed);
}

// EOF or error: the fd is closed first, then JS hears of it (a read to EOF with its data), then
// the callback goes. So a settled read never leaves an fd behind.
static void on_op_finished(uv_handle_t *handle) {
  op_t *op = (op_t *)handle->data;
  napi_env env = op->env;
  close(op->fd);
  registry_drop(registry(env), op->slot);
  int with_data = op->kind == OP_READ_TO_END && op->error_code == NULL;
  call_op(env, op->callback, op->error_code, with_data ? op->buf : NULL, op->len);
  napi_delete_reference(env, op->callback);
  free(op->buf);
  free(op);
}

static void op_finish(op_t *op, const char *error_code) {
  op->ended = 1;
  op->error_code = error_code;
  uv_poll_stop(&op->poll);
  uv_close((uv_handle_t *)&op->poll, on_op_finished);
}

// After a read() that returned n <= 0: 1 to read again (EINTR), else 0, having finished the op at
// EOF or on an error (EAGAIN only waits for the next wake-up).
static int op_read_again(op_t *op, ssize_t n) {
  if (n < 0 && errno == EINTR) return 1;
  if (n < 0 && errno == EAGAIN) return 0;
  op_finish(op, n == 0 ? NULL : errno_name(errno));
  return 0;
}

static void free_handle(uv_handle_t *handle) { free(handle); }

// Sets up a poll-driven op on fd: non-blocking mode, a poll handle, a reference to the callback, a
// registry slot. Returns 0 with *id_out set; -1 with an exception pending and the op the caller's
// to free; -2 with an exception pending and the op already on its way to being freed (its poll
// handle must be closed first). Either way fd stays open.
static int start_op(napi_env env, int32_t fd, napi_value callback, op_t *op, napi_value *id_out) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw_errno(env, errno, "fcntl", NULL);
    return -1;
  }
  uv_loop_t *loop = NULL;
  int rc = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &op->poll, fd) : UV_EINVAL;
  if (rc != 0) {
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return -1;
  }
  op->poll.data = op;
  op->env = env;
  op->fd = fd;
  registry_t *g = registry(env);
  int64_t id = registry_put(g, op, &op->slot);
  if (id < 0 || napi_create_reference(env, callback, 1, &op->callback) != napi_ok ||
      napi_create_int64(env, id, id_out) != napi_ok) {
    if (id >= 0) registry_drop(g, op->slot);
    uv_close((uv_handle_t *)&op->poll, free_handle);
    napi_throw_error(env, "ENOMEM", "too many reads in flight");
    return -2;
  }
  return 0;
}

// A pipe read to EOF: the small messages of SBus (replies, output metadata, task status) without
// a stream object per read. Owns the fd and closes it.
typedef struct {
  op_t op;
  size_t max_bytes;
  size_t cap;
  // Done at a read that ends with '\n' as well as at EOF: sandlet's agent ends the JSON document
  // of metadata and status with one, and writes it before the pipe can be closed.
  int until_newline;
} reader_t;

static void on_reader_event(uv_poll_t *handle, int status, int events) {
  reader_t *r = (reader_t *)handle->data;
  (void)status;
  (void)events;
  if (r->op.ended) return;
  for (;;) {
    if (r->op.len == r->cap) {
      size_t cap = r->cap * 2;
      if (cap > r->max_bytes + 1) cap = r->max_bytes + 1;
      char *grown = realloc(r->op.buf, cap);
      if (grown == NULL) {
        op_finish(&r->op, "ENOMEM");
        return;
      }
      r->op.buf = grown;
      r->cap = cap;
    }
    ssize_t n = read(r->op.fd, r->op.buf + r->op.len, r->cap - r->op.len);
    if (n > 0) {
      r->op.len += (size_t)n;
      if (r->op.len > r->max_bytes) {
        op_finish(&r->op, "ETOOLARGE");
        return;
      }
      if (r->until_newline && r->op.buf[r->op.len - 1] == '\n') {
        op_finish(&r->op, NULL);
        return;
      }
      continue;
    }
    if (!op_read_again(&r->op, n)) return;
  }
}

// cancelRead(id): ends a read with no callback (and closes its fd). A finished read: no-op.
static napi_value CancelRead(napi_env env, napi_callback_info info) {
  reader_t *r = (reader_t *)op_arg(env, info, OP_READ_TO_END);
  if (r != NULL && !r->op.ended) op_stop_quietly(&r->op);
  return NULL;
}

// readToEnd(fd, maxBytes, callback, untilNewline?) -> id (for cancelRead). Takes ownership of fd.
static napi_value ReadToEnd(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t max_bytes;
  napi_value callback;
  const char *usage = "readToEnd(fd, maxBytes, callback, untilNewline?): bad arguments";
  if (!get_poll_args(env, info, usage, 1, &fd, &max_bytes, &callback)) return NULL;
  size_t argc = 4;
  napi_value argv[4];
  bool until_newline = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 4) napi_get_value_bool(env, argv[3], &until_newline);
  reader_t *r = calloc(1, sizeof *r);
  size_t cap = max_bytes < 4096 ? (size_t)max_bytes + 1 : 4096;
  char *buf = r == NULL ? NULL : malloc(cap);
  if (buf == NULL) {
    free(r);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  r->cap = cap;
  r->op.buf = buf;
  r->max_bytes = max_bytes;
  r->until_newline = until_newline;
  napi_value id;
  r->op.kind = OP_READ_TO_END;
  int started = start_op(env, fd, callback, &r->op, &id);
  if (started != 0) {
    free(buf);
    if (started == -1) free(r);
    return NULL;
  }
  int rc = uv_poll_start(&r->op.poll, UV_READABLE | UV_DISCONNECT, on_reader_event);
  if (rc != 0) {
    r->op.fd = -1;  // a call that throws leaves the fd to its caller, as every other failure here
    op_stop_quietly(&r->op);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  return id;
}

// An op's struct (zeroed) and its buffer, or NULL with ENOMEM thrown.
static void *alloc_with_buffer(napi_env env, size_t size, size_t buf_bytes, char **buf) {
  void *o = calloc(1, size);
  *buf = o == NULL ? NULL : malloc(buf_bytes);
  if (*buf == NULL) {
    free(o);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  return o;
}

// A pipe read as a stream: the output object on the gateway's side, without a net.Socket (and
// its two stream states, handle wrap and listeners) per invocation. Owns the fd.
// callback(null, chunk) per read, then callback(null, null) at EOF or callback(errnoName, null)
// on an error, each delivered only once the fd is closed; after closeReader() from JS, nothing.
typedef struct {
  op_t op;
  int polling;
  size_t chunk;
} stream_t;

static void on_stream_event(uv_poll_t *handle, int status, int events) {
  stream_t *s = (stream_t *)handle->data;
  (void)status;
  (void)events;
  // A bounded number of reads per wake-up, so one fast writer cannot starve the loop.
  for (int round = 0; round < 16 && s->polling && !s->op.ended; round++) {
    ssize_t n = read(s->op.fd, s->op.buf, s->chunk);
    if (n > 0) {
      call_op(s->op.env, s->op.callback, NULL, s->op.buf, (size_t)n);  // may pause or close it
      continue;
    }
    if (!op_read_again(&s->op, n)) return;
  }
}

static napi_value ResumeReader(napi_env env, napi_callback_info info) {
  stream_t *s = (stream_t *)op_arg(env, info, OP_STREAM);
  if (s == NULL || s->op.ended || s->polling) return NULL;
  int rc = uv_poll_start(&s->op.poll, UV_READABLE | UV_DISCONNECT, on_stream_event);
  if (rc != 0) {
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  s->polling = 1;
  return NULL;
}

static napi_value PauseReader(napi_env env, napi_callback_info info) {
  stream_t *s = (stream_t *)op_arg(env, info, OP_STREAM);
  if (s == NULL || s->op.ended || !s->polling) return NULL;
  uv_poll_stop(&s->op.poll);
  s->polling = 0;
  return NULL;
}

static napi_value CloseReader(napi_env env, napi_callback_info info) {
  stream_t *s = (stream_t *)op_arg(env, info, OP_STREAM);
  if (s == NULL || s->op.ended) return NULL;
  s->polling = 0;
  op_stop_quietly(&s->op);
  return NULL;
}

// openReader(fd, chunkBytes, callback) -> id (for resumeReader, pauseReader, closeReader).
// Takes ownership of fd. Starts paused: nothing is read before resumeReader().
static napi_value OpenReader(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t chunk;
  napi_value callback;
  const char *usage = "openReader(fd, chunkBytes, callback): bad arguments";
  if (!get_poll_args(env, info, usage, 0, &fd, &chunk, &callback)) return NULL;
  char *buf;
  stream_t *s = alloc_with_buffer(env, sizeof *s, chunk, &buf);
  if (s == NULL) return NULL;
  s->chunk = chunk;
  s->op.buf = buf;
  napi_value id;
  s->op.kind = OP_STREAM;
  int started = start_op(env, fd, callback, &s->op, &id);
  if (started != 0) {
    free(buf);
    if (started == -1) free(s);
    return NULL;
  }
  return id;
}

// A watch for the reader of a pipe going away, on the pipe's write end: a task's status pipe, whose
// reader (the gateway) closes it when it gives up on the task. It polls a dup of the fd (closed
// with the watch), so the fd itself stays its owner's to write and close. An abandoned pipe shows
// as EPOLLERR, which epoll always reports: UV_DISCONNECT alone never wakes it for room to write.
// callback(null, null) once, when the reader is gone; after unwatch(), nothing.
static void on_watch_event(uv_poll_t *handle, int status, int events) {
  op_t *op = (op_t *)handle->data;
  (void)status;
  (void)events;
  if (!op->ended) op_finish(op, NULL);
}

// watchHangup(fd, callback) -> id (for unwatch). fd stays the caller's; it is made non-blocking.
static napi_value WatchHangup(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  napi_valuetype cb_type = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &cb_type) != napi_ok || cb_type != napi_function) {
    napi_throw_type_error(env, NULL, "watchHangup(fd, callback): bad arguments");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", NULL);
    return NULL;
  }
  op_t *op = calloc(1, sizeof *op);
  if (op == NULL) {
    close(copy);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  op->kind = OP_WATCH;
  napi_value id;
  int started = start_op(env, copy, argv[1], op, &id);
  if (started != 0) {
    close(copy);
    if (started == -1) free(op);
    return NULL;
  }
  int rc = uv_poll_start(&op->poll, UV_DISCONNECT, on_watch_event);
  if (rc != 0) {
    op_stop_quietly(op);  // closes the dup once libuv let go of it
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  return id;
}

// unwatch(id): ends a watch with no callback. A watch that fired already: no-op.
static napi_value Unwatch(napi_env env, napi_callback_info info) {
  op_t *op = (op_t *)op_arg(env, info, OP_WATCH);
  if (op != NULL && !op->ended) op_stop_quietly(op);
  return NULL;
}

// A byte pump from one fd to another, run by libuv on the loop with no JS per chunk: a large
// response relayed as it is (the front door's passthrough) costs two splices per 1 MiB instead
// of a trip through two stream objects. It polls dups of both fds, so the caller's fds
// stay the caller's (closing them cannot make the pump write to a reused number), and closes
// the dups when it ends. callback(null, moved) once `bytes` moved (or at EOF when bytes is -1),
// else callback(code, moved): 'ESHORT' (EOF first), 'ETIMEDOUT' (no progress for idleMs) or an
// errno name; after cancelPump(), nothing. With `chunked`, each read goes out as one HTTP/1.1
// chunk (size line, data, CRLF; the last chunk is the caller's to write).
// Room before the data for a chunk's size line (hex digits and CRLF).
#define PUMP_CHUNK_HEAD 18
// A TCP source wakes the pump only once this much is queued (SO_RCVLOWAT), and the pump moves up
// to this much per splice: a fast body then moves in batches, with a sixteenth of the wake-ups of
// 64 KiB arrivals, here and down the line (a storlet's input pipe, its output, the client). On a
// machine whose cores the store shares, those wake-ups were most of what the pump cost: 1 MiB
// rather than 256 KiB took a fifth off the gateway's CPU per GiB through an identity storlet
// (0.29-0.33 s from 0.37-0.44 s) and about a tenth off the client's.
#define PUMP_BATCH (1024 * 1024)
// A source that brings less than a batch in this long is read as its bytes come from then on, so
// a slow body is never held back for long.
#define PUMP_BATCH_MS 20

typedef struct {
  op_t op;          // op.poll and op.fd: the source; op.buf: the plain loop's buffer, made when needed
  uv_poll_t out;    // the destination
  int out_fd;
  uv_timer_t idle;
  uint64_t idle_ms;
  size_t off;       // op.buf[off, op.len) is still to be written
  int64_t left;     // bytes still to read; -1: until EOF
  uint64_t moved;   // bytes read (and written, once the pump ended well)
  int chunked;
  int quiet;        // cancelled from JS: no callback
  int open_handles; // closed one by one; the last close frees the pump
  // Bytes move by splice(2) through this pipe, never through user space: on a machine whose
  // cores the store shares, the copies were what the pump cost. -1: read and write instead,
  // through op.buf.
  int sp_r, sp_w;
  // Chunked and spliced, the framing goes around the data: `glue` is the CRLF that ends the last
  // chunk (owed once a chunk's data went) and the next chunk's size line, sent before its data.
  char glue[2 + PUMP_CHUNK_HEAD];
  size_t glue_off, glue_len;
  int crlf_owed;
  int finishing;    // the source ended: only the last CRLF is left to send
  int plain_write;  // the destination is no socket: write() instead of send()
  int lowat;        // the source's SO_RCVLOWAT while above 1 (see PUMP_LOWAT); 0: left as it was
  int waiting_out;  // the destination is full: the pump waits for room, not for the source
  uint64_t last_progress;  // loop time of the last byte moved
} pump_t;

static void pump_close_splice(pump_t *p) {
  if (p->sp_r >= 0) close(p->sp_r);
  if (p->sp_w >= 0) close(p->sp_w);
  p->sp_r = p->sp_w = -1;
}

// The pump's own fds: its dups of the source and the destination, and its splice pipe.
static void pump_close_fds(pump_t *p) {
  close(p->op.fd);
  close(p->out_fd);
  pump_close_splice(p);
}

// callback(errorCode | null, bytesMoved) in the shared async context.
static void call_pump(napi_env env, napi_ref callback, const char *error_code, uint64_t moved) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[2];
  if (error_code != NULL) napi_create_string_utf8(env, error_code, NAPI_AUTO_LENGTH, &argv[0]);
  else napi_get_null(env, &argv[0]);
  napi_create_double(env, (double)moved, &argv[1]);
  op_callback(env, callback, argv);
  napi_close_handle_scope(env, scope);
}

static void on_pump_handle_closed(uv_handle_t *handle) {
  pump_t *p = (pump_t *)handle->data;
  if (--p->open_handles > 0) return;
  pump_close_fds(p);
  napi_env env = p->op.env;
  registry_drop(registry(env), p->op.slot);
  if (!p->quiet) call_pump(env, p->op.callback, p->op.error_code, p->moved);
  napi_delete_reference(env, p->op.callback);
  free(p->op.buf);
  free(p);
}

// Sets the source's low-water mark (PUMP_BATCH); 1 (the default) when batching is over. The
// socket outlives the pump (the caller's fd), so the default is back before it ends.
static void pump_set_lowat(pump_t *p, int64_t bytes) {
  int v = bytes > 1 ? (int)bytes : 1;
  if (v == p->lowat || (v == 1 && p->lowat == 0)) return;
  if (setsockopt(p->op.fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0 || v == 1) p->lowat = v > 1 ? v : 0;
}

static void pump_end(pump_t *p, const char *error_code) {
  if (p->op.ended) return;
  pump_set_lowat(p, 1);
  p->op.ended = 1;
  p->op.error_code = error_code;
  uv_poll_stop(&p->op.poll);
  uv_poll_stop(&p->out);
  uv_timer_stop(&p->idle);
  p->open_handles = 3;
  uv_close((uv_handle_t *)&p->op.poll, on_pump_handle_closed);
  uv_close((uv_handle_t *)&p->out, on_pump_handle_closed);
  uv_close((uv_handle_t *)&p->idle, on_pump_handle_closed);
}

static void on_pump_timer(uv_timer_t *timer);
static void pump_run(pump_t *p);

// Bytes moved: the batch wait (while the source is batched) or the idle wait starts over.
static void pump_progress(pump_t *p) {
  p->last_progress = uv_now(p->idle.loop);
  if (p->lowat > 1) uv_timer_start(&p->idle, on_pump_timer, PUMP_BATCH_MS, 0);
  else if (p->idle_ms > 0) uv_timer_start(&p->idle, on_pump_timer, p->idle_ms, 0);
}

// Nothing moved for a while: a batched source waiting on the source loses its mark (what is
// below it is read now); past idle_ms with no progress, the pump ends with ETIMEDOUT.
static void on_pump_timer(uv_timer_t *timer) {
  pump_t *p = (pump_t *)timer->data;
  if (p->op.ended) return;
  if (p->lowat > 1 && !p->waiting_out) {
    uint64_t before = p->last_progress;
    pump_set_lowat(p, 1);
    pump_run(p);
    if (p->op.ended || p->last_progress != before) return;  // progress armed the timer anew
  }
  if (p->idle_ms == 0) return;
  uint64_t quiet = uv_now(timer->loop) - p->last_progress;
  if (quiet >= p->idle_ms) pump_end(p, "ETIMEDOUT");
  else uv_timer_start(timer, on_pump_timer, p->idle_ms - quiet, 0);
}

static void on_pump_in(uv_poll_t *handle, int status, int events);
static void on_pump_out(uv_poll_t *handle, int status, int events);

// The destination is full: wait for room (0), or -1 when the pump ended instead.
static int pump_wait_out(pump_t *p) {
  p->waiting_out = 1;
  uv_poll_stop(&p->op.poll);
  int rc = uv_poll_start(&p->out, UV_WRITABLE | UV_DISCONNECT, on_pump_out);
  if (rc != 0) pump_end(p, uv_err_name(rc));
  return rc == 0 ? 0 : -1;
}

// Sends what is pending (the chunk framing, then the data): 1 when all of it went, 0 when the
// destination is full (then it waits for room), -1 when the pump ended.
static int pump_flush(pump_t *p) {
  while (p->glue_off < p->glue_len) {
    // MSG_MORE: the data follows at once, so the size line need not leave as a packet of its own.
    ssize_t n = p->plain_write ? write(p->out_fd, p->glue + p->glue_off, p->glue_len - p->glue_off)
                               : send(p->out_fd, p->glue + p->glue_off, p->glue_len - p->glue_off, MSG_NOSIGNAL | (p->finishing ? 0 : MSG_MORE));
    if (n < 0 && errno == ENOTSOCK && !p->plain_write) {
      p->plain_write = 1;
      continue;
    }
    if (n > 0) {
      p->glue_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return pump_wait_out(p);
    pump_end(p, errno_name(n < 0 ? errno : EIO));
    return -1;
  }
  while (p->off < p->op.len) {
    ssize_t n = p->sp_r >= 0 ? splice(p->sp_r, NULL, p->out_fd, NULL, p->op.len - p->off, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                             : write(p->out_fd, p->op.buf + p->off, p->op.len - p->off);
    if (n > 0) {
      p->off += (size_t)n;
      pump_progress(p);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return pump_wait_out(p);
    pump_end(p, errno_name(n < 0 ? errno : EIO));
    return -1;
  }
  return 1;
}

// All was moved: the last chunk's CRLF when it is owed (spliced chunks), then the end. The
// terminating chunk is the caller's to write.
static void pump_done(pump_t *p) {
  if (p->crlf_owed) {
    p->finishing = 1;
    p->crlf_owed = 0;
    memcpy(p->glue, "\r\n", 2);
    p->glue_off = 0;
    p->glue_len = 2;
    p->off = p->op.len = 0;
    if (pump_flush(p) != 1) return;  // on_pump_out ends it once there is room
  }
  pump_end(p, NULL);
}

// Reads and writes until the source is empty or the destination full; a bounded number of
// rounds per wake-up, so one fast pair cannot starve the loop.
static void pump_run(pump_t *p) {
  for (int round = 0; round < 16 && !p->op.ended; round++) {
    if (p->left == 0) {
      pump_done(p);
      return;
    }
    size_t want = p->left < 0 || p->left > PUMP_BATCH ? PUMP_BATCH : (size_t)p->left;
    size_t head = p->chunked ? PUMP_CHUNK_HEAD : 0;
    if (p->sp_w < 0 && p->op.buf == NULL && (p->op.buf = malloc(head + PUMP_BATCH + (p->chunked ? 2 : 0))) == NULL) {
      pump_end(p, "ENOMEM");
      return;
    }
    ssize_t n = p->sp_w >= 0 ? splice(p->op.fd, NULL, p->sp_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                             : read(p->op.fd, p->op.buf + head, want);
    if (n < 0 && errno == EINVAL && p->sp_w >= 0 && p->moved == 0) {
      pump_close_splice(p);  // a source splice cannot read: the plain loop from the first byte
      continue;
    }
    if (n > 0) {
      p->moved += (uint64_t)n;
      if (p->left > 0) p->left -= n;
      if (p->lowat > 1 && p->left >= 0 && p->left < p->lowat) pump_set_lowat(p, p->left);  // the tail is a smaller batch
      if (p->chunked && p->sp_w >= 0) {
        int gl = snprintf(p->glue, sizeof p->glue, "%s%zx\r\n", p->crlf_owed ? "\r\n" : "", (size_t)n);
        p->glue_off = 0;
        p->glue_len = (size_t)gl;
        p->crlf_owed = 1;
        p->off = 0;
        p->op.len = (size_t)n;
      } else if (p->chunked) {
        // The size line goes right before the data, CRLF right after: one write for the chunk.
        char line[PUMP_CHUNK_HEAD + 1];
        int hl = snprintf(line, sizeof line, "%zx\r\n", (size_t)n);
        memcpy(p->op.buf + head - hl, line, (size_t)hl);
        memcpy(p->op.buf + head + n, "\r\n", 2);
        p->off = head - (size_t)hl;
        p->op.len = head + (size_t)n + 2;
      } else {
        p->off = 0;
        p->op.len = (size_t)n;
      }
      pump_progress(p);
      if (pump_flush(p) != 1) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n == 0 && p->left > 0) pump_end(p, "ESHORT");
    else if (n == 0) pump_done(p);
    else pump_end(p, errno_name(errno));
    return;
  }
  if (!p->op.ended && p->left == 0) pump_done(p);
}

static void on_pump_in(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  pump_run((pump_t *)handle->data);
}

static void on_pump_out(uv_poll_t *handle, int status, int events) {
  pump_t *p = (pump_t *)handle->data;
  (void)status;
  (void)events;
  if (p->op.ended) return;
  int r = pump_flush(p);
  if (r != 1) return;
  uv_poll_stop(&p->out);
  p->waiting_out = 0;
  if (p->finishing) {
    pump_end(p, NULL);
    return;
  }
  if (p->left == 0) {
    pump_done(p);
    return;
  }
  int rc = uv_poll_start(&p->op.poll, UV_READABLE | UV_DISCONNECT, on_pump_in);
  if (rc != 0) pump_end(p, uv_err_name(rc));
}

// The failure path of Pump(): the pump never had a slot or a callback.
static void free_handle_pump(uv_handle_t *handle) {
  pump_t *p = (pump_t *)handle->data;
  if (--p->open_handles > 0) return;
  pump_close_fds(p);
  free(p->op.buf);
  free(p);
}

static int dup_nonblocking(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -1;
  int flags = fcntl(d, F_GETFL);
  if (flags < 0 || fcntl(d, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    close(d);
    errno = err;
    return -1;
  }
  return d;
}

// pump(fromFd, toFd, bytes, idleMs, callback[, chunked]) -> id (for cancelPump). bytes -1: until EOF.
static napi_value Pump(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int32_t from = -1, to = -1;
  int64_t bytes = 0, idle_ms = 0;
  napi_valuetype cb_type = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
      napi_get_value_int32(env, argv[0], &from) != napi_ok || from < 0 ||
      napi_get_value_int32(env, argv[1], &to) != napi_ok || to < 0 ||
      napi_get_value_int64(env, argv[2], &bytes) != napi_ok || bytes < -1 ||
      napi_get_value_int64(env, argv[3], &idle_ms) != napi_ok || idle_ms < 0 ||
      napi_typeof(env, argv[4], &cb_type) != napi_ok || cb_type != napi_function) {
    napi_throw_type_error(env, NULL, "pump(fromFd, toFd, bytes, idleMs, callback[, chunked]): bad arguments");
    return NULL;
  }
  bool chunked = false;
  if (argc >= 6) napi_get_value_bool(env, argv[5], &chunked);
  pump_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  p->sp_r = p->sp_w = -1;
  int in = dup_nonblocking(from);
  int out = in < 0 ? -1 : dup_nonblocking(to);
  if (out < 0) {
    int err = errno;
    if (in >= 0) close(in);
    free(p);
    throw_errno(env, err, "dup", NULL);
    return NULL;
  }
  uv_loop_t *loop = NULL;
  int rc = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &p->op.poll, in) : UV_EINVAL;
  if (rc == 0) {
    rc = uv_poll_init(loop, &p->out, out);
    if (rc != 0) {
      // The source's handle must be closed before its memory goes: freed in its close callback.
      p->op.poll.data = p;
      p->op.fd = in;
      p->out_fd = out;
      p->open_handles = 1;
      uv_close((uv_handle_t *)&p->op.poll, free_handle_pump);
      napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
      return NULL;
    }
  }
  if (rc != 0) {
    close(in);
    close(out);
    free(p);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  int sp[2];
  // Any failure here: the plain read/write loop.
  if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) == 0) {
    p->sp_r = sp[0];
    p->sp_w = sp[1];
    (void)fcntl(sp[1], F_SETPIPE_SZ, PUMP_BATCH);
  }
  uv_timer_init(loop, &p->idle);
  p->op.poll.data = p;
  p->out.data = p;
  p->idle.data = p;
  p->op.env = env;
  p->op.fd = in;
  p->op.kind = OP_PUMP;
  p->out_fd = out;
  p->chunked = chunked;
  p->left = bytes;
  p->idle_ms = (uint64_t)idle_ms;
  registry_t *g = registry(env);
  napi_value id;
  int64_t slot_id = registry_put(g, p, &p->op.slot);
  if (slot_id < 0 || napi_create_reference(env, argv[4], 1, &p->op.callback) != napi_ok ||
      napi_create_int64(env, slot_id, &id) != napi_ok) {
    if (slot_id >= 0) registry_drop(g, p->op.slot);
    p->op.slot = 0;
    p->quiet = 1;
    // Closed like an ended pump, but with no registry slot or callback to release.
    p->op.ended = 1;
    p->open_handles = 3;
    napi_throw_error(env, "ENOMEM", "too many pumps in flight");
    uv_close((uv_handle_t *)&p->op.poll, free_handle_pump);
    uv_close((uv_handle_t *)&p->out, free_handle_pump);
    uv_close((uv_handle_t *)&p->idle, free_handle_pump);
    return NULL;
  }
  if (bytes == 0) {
    pump_end(p, NULL);
    return id;
  }
  int proto = 0;
  socklen_t proto_len = sizeof proto;
  if (getsockopt(in, SOL_SOCKET, SO_PROTOCOL, &proto, &proto_len) == 0 && proto == IPPROTO_TCP)
    pump_set_lowat(p, bytes < 0 || bytes > PUMP_BATCH ? PUMP_BATCH : bytes);
  pump_progress(p);
  rc = uv_poll_start(&p->op.poll, UV_READABLE | UV_DISCONNECT, on_pump_in);
  if (rc != 0) pump_end(p, uv_err_name(rc));
  return id;
}

// cancelPump(id): ends a pump with no callback (its dups closed); a finished pump's id is a no-op.
static napi_value CancelPump(napi_env env, napi_callback_info info) {
  pump_t *p = (pump_t *)op_arg(env, info, OP_PUMP);
  if (p == NULL || p->op.ended) return NULL;
  p->quiet = 1;
  pump_end(p, NULL);
  return NULL;
}

// keepFreedHeap(trimBytes, mmapBytes) -> whether the C library took the settings (glibc only).
// Streams of 64 KiB Buffers are freed in bursts by V8's GC, tens of MiB at a time. glibc then
// gives the top of the heap back to the kernel and faults fresh pages in for the next burst:
// measured, 100,000+ page faults per GiB streamed, a third of a gateway's CPU on a VM. A trim
// threshold above that burst keeps the pages for reuse. Allocations below mmapBytes come from
// the heap too (glibc's own adaptive threshold goes up to 32 MiB and its trim threshold to twice
// that: these fixed values stay within what glibc may keep on its own).
static napi_value KeepFreedHeap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t trim = -1, mmap_bytes = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int64(env, argv[0], &trim) != napi_ok || napi_get_value_int64(env, argv[1], &mmap_bytes) != napi_ok ||
      trim < 0 || trim > INT32_MAX || mmap_bytes < 0 || mmap_bytes > INT32_MAX) {
    napi_throw_type_error(env, NULL, "keepFreedHeap(trimBytes, mmapBytes): bad arguments");
    return NULL;
  }
  bool ok = false;
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, (int)trim) == 1 && ok;
#endif
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"bind", NULL, Bind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, Send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listen", NULL, Listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendOn", NULL, SendOn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenSeqpacket", NULL, ListenSeqpacket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectSeqpacket", NULL, ConnectSeqpacket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptOn", NULL, AcceptOn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pipe", NULL, Pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readToEnd", NULL, ReadToEnd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancelRead", NULL, CancelRead, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tryWrite", NULL, TryWrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollable", NULL, Pollable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fileSize", NULL, FileSize, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openReader", NULL, OpenReader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"resumeReader", NULL, ResumeReader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pauseReader", NULL, PauseReader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeReader", NULL, CloseReader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchHangup", NULL, WatchHangup, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, Unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pump", NULL, Pump, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancelPump", NULL, CancelPump, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keepFreedHeap", NULL, KeepFreedHeap, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  registry_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_value name;
  CHECK(napi_create_string_utf8(env, "sandlet.sbus.read", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &g->async));
  CHECK(napi_set_instance_data(env, g, registry_finalize, NULL));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
