/*
 * Batched UDP for the resolver's listeners: recvmmsg/sendmmsg, which Node's dgram does not use.
 *
 * Per readable event a socket reads up to SLOTS datagrams with one recvmmsg into a receive area that JavaScript
 * owns (one for the process: the batch is answered synchronously before the next read), calls JavaScript once
 * with the count, and JavaScript sends the answers it has with one sendmmsg back to the senders of those slots.
 * Answers that come later (forwarded queries) go out with sendMany and a copy of the sender's address.
 * That removes, per query, one syscall entry and one C++→JavaScript call, plus dgram's per-packet Buffer and
 * rinfo object (docs/performance.md has the measurements).
 *
 * A socket can be opened inside another network namespace (setns on this thread around socket()+bind(); the socket
 * stays in the namespace it was created in), so one process can answer on 127.0.0.11 in many containers.
 * listenTcp does the same for the TCP side: it returns a listening fd that Node adopts (net.Server.listen({ fd }));
 * reading and writing TCP needs no batching, so only the socket's creation is native.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS 64
#define SLOT_SIZE 65536
#define ADDR_SIZE 28 /* sizeof(struct sockaddr_in6); a sockaddr_in fits too */
/* Reads per readable event before yielding to the rest of the loop (the default; open() may ask for fewer). */
#define MAX_READS 16

typedef struct {
  int fd;
  int closing;
  /* Freed only when both libuv has let go of the poll handle (released) and JavaScript's handle to it was collected
   * (finalized), so a call through a stale handle after close() still finds valid memory and `closing` set. */
  int released;
  int finalized;
  /* Datagrams read per readable event (default SLOTS × MAX_READS). A container's listener takes a small share, so
   * one flooding container gets that much per loop turn and every other socket its turn in between (epoll is
   * level-triggered: the rest waits for the next turn). */
  int per_wake;
  /* Reading stopped by pause(): the kernel holds (and past its buffer drops) what arrives meanwhile. */
  int paused;
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch;
} sock_t;

/* The receive area (SLOTS × SLOT_SIZE), sender addresses (SLOTS × ADDR_SIZE) and lengths (SLOTS int32). */
static char *rx_base;
static char *addr_base;
static int32_t *len_base;
static napi_ref rx_ref, addr_ref, len_ref;
/* The areas above and the tx arrays below are process-wide: only the thread that called init() may use them. */
static napi_env owner;

static struct mmsghdr rx_msgs[SLOTS];
static struct iovec rx_iov[SLOTS];
static struct mmsghdr tx_msgs[SLOTS];
static struct iovec tx_iov[SLOTS];

#define CHECK(env, call)                                                                                          \
  do {                                                                                                            \
    if ((call) != napi_ok) {                                                                                      \
      napi_throw_error((env), NULL, "udp_batch: " #call " failed");                                               \
      return NULL;                                                                                                \
    }                                                                                                             \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, e;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_string_utf8(env, err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : "ESYSCALL", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &e);
  napi_throw(env, e);
  return NULL;
}

/* The thread that owned the areas is gone (a worker that exited): another may init. */
static void on_env_cleanup(void *arg) {
  if (owner != arg) return;
  owner = NULL;
  rx_base = NULL;
  addr_base = NULL;
  len_base = NULL;
  rx_ref = addr_ref = len_ref = NULL; /* deleted with their environment */
}

/* init(rx: Buffer, addrs: Buffer, lens: Int32Array): the shared areas, sized by the constants exported below. */
static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *rx, *addrs, *lens;
  size_t rx_len, addr_len, lens_len;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  CHECK(env, napi_get_buffer_info(env, argv[0], &rx, &rx_len));
  CHECK(env, napi_get_buffer_info(env, argv[1], &addrs, &addr_len));
  CHECK(env, napi_get_typedarray_info(env, argv[2], &t, &lens_len, &lens, &ab, &off));
  if (rx_len < (size_t)SLOTS * SLOT_SIZE || addr_len < (size_t)SLOTS * ADDR_SIZE || t != napi_int32_array || lens_len < SLOTS) {
    napi_throw_range_error(env, NULL, "udp_batch.init: areas too small");
    return NULL;
  }
  if (owner && owner != env) {
    napi_throw_error(env, NULL, "udp_batch: already in use by another thread (worker_threads are not supported)");
    return NULL;
  }
  if (!owner) napi_add_env_cleanup_hook(env, on_env_cleanup, env);
  owner = env;
  if (rx_ref) { napi_delete_reference(env, rx_ref); napi_delete_reference(env, addr_ref); napi_delete_reference(env, len_ref); }
  CHECK(env, napi_create_reference(env, argv[0], 1, &rx_ref));
  CHECK(env, napi_create_reference(env, argv[1], 1, &addr_ref));
  CHECK(env, napi_create_reference(env, argv[2], 1, &len_ref));
  rx_base = rx;
  addr_base = addrs;
  len_base = lens;
  for (int i = 0; i < SLOTS; i++) {
    rx_iov[i].iov_base = rx_base + (size_t)i * SLOT_SIZE;
    rx_iov[i].iov_len = SLOT_SIZE;
  }
  return NULL;
}

static socklen_t addr_len_of(const void *sa) {
  return ((const struct sockaddr *)sa)->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void on_close(uv_handle_t *h) {
  sock_t *s = h->data;
  close(s->fd);
  s->fd = -1;
  s->released = 1;
  if (s->finalized) free(s);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sock_t *s = data;
  s->finalized = 1;
  if (s->released) free(s);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  sock_t *s = p->data;
  if (status < 0 || !(events & UV_READABLE) || s->closing || !rx_base) return;
  napi_env env = s->env;
  for (int r = 0, left = s->per_wake; r < MAX_READS && left > 0 && !s->closing && !s->paused; r++) {
    int want = left < SLOTS ? left : SLOTS;
    for (int i = 0; i < SLOTS; i++) {
      memset(&rx_msgs[i].msg_hdr, 0, sizeof rx_msgs[i].msg_hdr);
      rx_msgs[i].msg_hdr.msg_iov = &rx_iov[i];
      rx_msgs[i].msg_hdr.msg_iovlen = 1;
      rx_msgs[i].msg_hdr.msg_name = addr_base + (size_t)i * ADDR_SIZE;
      rx_msgs[i].msg_hdr.msg_namelen = ADDR_SIZE;
    }
    int n = recvmmsg(s->fd, rx_msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (n <= 0) break; /* EAGAIN, or an error the next event will see again */
    for (int i = 0; i < n; i++) {
      /* A datagram larger than a slot is cut: report it as -1 so the caller drops it. */
      len_base[i] = (rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)rx_msgs[i].msg_len;
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value fn, recv, count, result;
    napi_get_reference_value(env, s->on_batch, &fn);
    napi_get_global(env, &recv); /* napi_make_callback wants an object */
    napi_create_int32(env, n, &count);
    napi_status st = napi_make_callback(env, NULL, recv, fn, 1, &count, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    if (n < want) break;
    left -= n;
  }
}

/* socket(family, type) created inside the namespace at netns (NULL: ours); the fd, or -errno. */
static int open_in_netns(const char *netns, int family, int type) {
  int self = -1, target = -1, fd = -1, err = 0;
  if (netns) {
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) return -errno;
    target = open(netns, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO there must not block the loop */
    if (target < 0) { err = errno; close(self); return -err; }
    if (setns(target, CLONE_NEWNET) < 0) { err = errno; close(self); close(target); return -err; }
  }
  fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) err = errno;
  if (netns) {
    /* Back to our own namespace before anything else runs on this thread; failing that is not survivable. */
    if (setns(self, CLONE_NEWNET) < 0) abort();
    close(self);
    close(target);
  }
  return fd < 0 ? -err : fd;
}

/* open(ip, port, reusePort, onBatch, netnsPath?, perWake?) → socket handle (an external). */
static napi_value open_socket(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char ip[64], netns[4096];
  size_t n;
  int32_t port;
  bool reuse;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &n));
  if (n >= sizeof ip - 1) { napi_throw_type_error(env, NULL, "udp_batch.open: not a literal IP address"); return NULL; }
  CHECK(env, napi_get_value_int32(env, argv[1], &port));
  CHECK(env, napi_get_value_bool(env, argv[2], &reuse));
  if (port < 0 || port > 65535) { napi_throw_range_error(env, NULL, "udp_batch.open: bad port"); return NULL; }
  napi_valuetype vt;
  CHECK(env, napi_typeof(env, argv[4], &vt));
  int use_netns = vt == napi_string;
  if (use_netns) {
    CHECK(env, napi_get_value_string_utf8(env, argv[4], netns, sizeof netns, &n));
    if (n >= sizeof netns - 1) { napi_throw_range_error(env, NULL, "udp_batch.open: namespace path too long"); return NULL; }
  }
  int32_t per_wake = SLOTS * MAX_READS;
  CHECK(env, napi_typeof(env, argv[5], &vt));
  if (vt == napi_number) CHECK(env, napi_get_value_int32(env, argv[5], &per_wake));
  if (per_wake < 1 || per_wake > SLOTS * MAX_READS) { napi_throw_range_error(env, NULL, "udp_batch.open: perWake must be 1..1024"); return NULL; }
  if (!rx_base || env != owner) { napi_throw_error(env, NULL, "udp_batch: init() first, on this thread"); return NULL; }

  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  socklen_t salen;
  int family;
  if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
    family = AF_INET;
    ((struct sockaddr_in *)&sa)->sin_family = AF_INET;
    ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
    salen = sizeof(struct sockaddr_in);
  } else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
    family = AF_INET6;
    ((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    salen = sizeof(struct sockaddr_in6);
  } else {
    napi_throw_type_error(env, NULL, "udp_batch.open: not a literal IP address");
    return NULL;
  }
  int fd = open_in_netns(use_netns ? netns : NULL, family, SOCK_DGRAM);
  if (fd < 0) return throw_errno(env, use_netns ? "udp_batch.open: namespace/socket" : "udp_batch.open: socket", -fd);
  int one = 1;
  /* No SO_REUSEADDR: for UDP it would let a second socket (a stale daemon, a double open) bind the same address
   * and silently take part of the queries. Sharing is explicit, with reusePort. */
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int e = errno; close(fd);
    return throw_errno(env, "udp_batch.open: SO_REUSEPORT", e);
  }
  /* In a container's namespace the address may not exist yet (Docker 28 joins before it brings lo up): bind anyway,
   * the socket receives once the address is up. */
  if (use_netns) setsockopt(fd, family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP, family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, &one, sizeof one);
  /* IPv6 sockets keep the system's dual-stack default, as dgram and Node's TCP do: "::" serves IPv4 clients too. */
  if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
    int e = errno; close(fd);
    return throw_errno(env, "udp_batch.open: bind", e);
  }
  sock_t *s = calloc(1, sizeof *s);
  if (!s) { close(fd); napi_throw_error(env, NULL, "udp_batch.open: out of memory"); return NULL; }
  s->fd = fd;
  s->env = env;
  s->per_wake = per_wake;
  if (napi_create_reference(env, argv[3], 1, &s->on_batch) != napi_ok) {
    close(fd); free(s);
    napi_throw_error(env, NULL, "udp_batch.open: callback setup failed");
    return NULL;
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  s->poll.data = s;
  if (uv_poll_init(loop, &s->poll, fd) != 0) {
    napi_delete_reference(env, s->on_batch);
    close(fd); free(s);
    napi_throw_error(env, NULL, "udp_batch.open: cannot poll the socket");
    return NULL;
  }
  if (uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) {
    napi_delete_reference(env, s->on_batch);
    s->closing = 1;
    s->finalized = 1; /* no JavaScript handle: on_close frees */
    uv_close((uv_handle_t *)&s->poll, on_close);
    napi_throw_error(env, NULL, "udp_batch.open: cannot poll the socket");
    return NULL;
  }
  napi_value ext;
  CHECK(env, napi_create_external(env, s, on_finalize, NULL, &ext));
  return ext;
}

static sock_t *sock_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) { napi_throw_type_error(env, NULL, "udp_batch: not a socket"); return NULL; }
  return p;
}

/* Points tx message k at replies[i], to addr. 0, or -1 with a JavaScript exception pending. */
static int tx_set(napi_env env, napi_value replies, uint32_t i, int k, void *addr) {
  napi_value b;
  void *data;
  size_t len;
  if (napi_get_element(env, replies, i, &b) != napi_ok || napi_get_buffer_info(env, b, &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp_batch: replies must be Buffers");
    return -1;
  }
  tx_iov[k].iov_base = data;
  tx_iov[k].iov_len = len;
  memset(&tx_msgs[k].msg_hdr, 0, sizeof tx_msgs[k].msg_hdr);
  tx_msgs[k].msg_hdr.msg_iov = &tx_iov[k];
  tx_msgs[k].msg_hdr.msg_iovlen = 1;
  tx_msgs[k].msg_hdr.msg_name = addr;
  tx_msgs[k].msg_hdr.msg_namelen = addr_len_of(addr);
  return 0;
}

/*
 * Sends tx messages [0, k) with as few sendmmsg calls as the kernel allows; returns how many went. status (if not
 * NULL) gets 0 per datagram sent, else its errno. A datagram the kernel refuses (no route, a filter) is skipped;
 * a full send buffer drops the rest, as UDP does.
 */
static int tx_flush(sock_t *s, int k, int32_t *status) {
  int done = 0, sent = 0;
  if (status) for (int i = 0; i < k; i++) status[i] = 0;
  while (done < k) {
    int r = s->closing ? (errno = EBADF, -1) : sendmmsg(s->fd, tx_msgs + done, (unsigned)(k - done), MSG_DONTWAIT);
    if (r > 0) { done += r; sent += r; continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EBADF)) {
      int e = errno;
      while (done < k) { if (status) status[done] = e; done++; }
      break;
    }
    if (status) status[done] = r < 0 ? errno : EIO;
    done++;
  }
  return sent;
}

/* send(sock, replies: Buffer[], slots: Int32Array, count) → datagrams sent. Unsendable ones are dropped, as UDP does. */
static napi_value send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  if (!s) return NULL;
  int32_t count;
  CHECK(env, napi_get_value_int32(env, argv[3], &count));
  napi_typedarray_type t;
  size_t slots_len, off;
  void *slots_data;
  napi_value ab;
  CHECK(env, napi_get_typedarray_info(env, argv[2], &t, &slots_len, &slots_data, &ab, &off));
  if (t != napi_int32_array || count < 0 || count > SLOTS || (size_t)count > slots_len) {
    napi_throw_range_error(env, NULL, "udp_batch.send: bad count or slots");
    return NULL;
  }
  int32_t *slots = slots_data;
  int k = 0;
  for (int i = 0; i < count; i++) {
    if (slots[i] < 0 || slots[i] >= SLOTS) continue;
    if (tx_set(env, argv[1], (uint32_t)i, k, addr_base + (size_t)slots[i] * ADDR_SIZE) < 0) return NULL;
    k++;
  }
  napi_value out;
  napi_create_int32(env, tx_flush(s, k, NULL), &out);
  return out;
}

/*
 * sendMany(sock, replies: Buffer[], addrs: Buffer(count × ADDR_SIZE), count, status: Int32Array) → datagrams sent.
 * The late answers and upstream queries gathered during one turn of the loop, in one sendmmsg where the kernel
 * allows. status[i] is 0 when datagram i went, else its errno (EAGAIN for all left when the send buffer is full),
 * so a caller can fail over at once instead of waiting for a timeout.
 */
static napi_value send_many(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  if (!s) return NULL;
  void *addrs, *status_data;
  size_t alen, status_len, off;
  int32_t count;
  napi_typedarray_type t;
  napi_value ab;
  CHECK(env, napi_get_buffer_info(env, argv[2], &addrs, &alen));
  CHECK(env, napi_get_value_int32(env, argv[3], &count));
  CHECK(env, napi_get_typedarray_info(env, argv[4], &t, &status_len, &status_data, &ab, &off));
  if (t != napi_int32_array || count < 0 || count > SLOTS || (size_t)count > status_len || alen < (size_t)count * ADDR_SIZE) {
    napi_throw_range_error(env, NULL, "udp_batch.sendMany: bad count, addresses or status");
    return NULL;
  }
  int32_t *status = status_data;
  for (int i = 0; i < count; i++) {
    if (tx_set(env, argv[1], (uint32_t)i, i, (char *)addrs + (size_t)i * ADDR_SIZE) < 0) return NULL;
  }
  napi_value out;
  napi_create_int32(env, tx_flush(s, count, status), &out);
  return out;
}

/* local(sock) → [ip, port] actually bound (port 0 picks one). */
static napi_value local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_storage sa;
  socklen_t l = sizeof sa;
  if (getsockname(s->fd, (struct sockaddr *)&sa, &l) < 0) return throw_errno(env, "udp_batch.local", errno);
  char ip[INET6_ADDRSTRLEN];
  int port;
  if (sa.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
  } else {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  }
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_int32(env, port, &v);
  napi_set_element(env, arr, 1, v);
  return arr;
}

/* The (sock, on) arguments of ref() and pause(): the socket, or NULL with an exception pending or nothing to do. */
static sock_t *sock_and_flag(napi_env env, napi_callback_info info, bool *on) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  sock_t *s = sock_arg(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_bool(env, argv[1], on) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp_batch: a boolean was expected");
    return NULL;
  }
  return s->closing ? NULL : s;
}

/* ref(sock, on): whether this socket keeps the process alive (an idle upstream pool must not). */
static napi_value ref_socket(napi_env env, napi_callback_info info) {
  bool on;
  sock_t *s = sock_and_flag(env, info, &on);
  if (!s) return NULL;
  if (on) uv_ref((uv_handle_t *)&s->poll);
  else uv_unref((uv_handle_t *)&s->poll);
  return NULL;
}

/* pause(sock, on): stops reading (on) or reads again (off); a query budget spent holds the socket this way, so the
 * loop spends nothing on a flooding sender until the budget renews. */
static napi_value pause_socket(napi_env env, napi_callback_info info) {
  bool on;
  sock_t *s = sock_and_flag(env, info, &on);
  if (!s || s->paused == (int)on) return NULL;
  s->paused = on;
  int err = on ? uv_poll_stop(&s->poll) : uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (err != 0) return throw_errno(env, on ? "uv_poll_stop" : "uv_poll_start", -err);
  return NULL;
}

/* close(sock): stops reading; the fd is closed once libuv lets go of it. Idempotent. */
static napi_value close_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  if (!s || s->closing) return NULL;
  s->closing = 1;
  uv_poll_stop(&s->poll);
  napi_delete_reference(env, s->on_batch);
  uv_close((uv_handle_t *)&s->poll, on_close);
  return NULL;
}

/* A literal IPv4/IPv6 address and port → sockaddr; the family, or 0 when ip is not a literal address. */
static int sockaddr_of(const char *ip, int32_t port, struct sockaddr_storage *sa, socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return AF_INET6;
  }
  return 0;
}

/* listenTcp(ip, port, backlog, netnsPath?) → fd of a listening TCP socket (non-blocking, close-on-exec), created in
 * that namespace. The caller owns the fd: net.Server.listen({ fd }) adopts it, or it must be closed. */
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char ip[64], netns[4096];
  size_t n;
  int32_t port, backlog;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &n));
  if (n >= sizeof ip - 1) { napi_throw_type_error(env, NULL, "udp_batch.listenTcp: not a literal IP address"); return NULL; }
  CHECK(env, napi_get_value_int32(env, argv[1], &port));
  CHECK(env, napi_get_value_int32(env, argv[2], &backlog));
  napi_valuetype vt;
  CHECK(env, napi_typeof(env, argv[3], &vt));
  int use_netns = vt == napi_string;
  if (use_netns) {
    CHECK(env, napi_get_value_string_utf8(env, argv[3], netns, sizeof netns, &n));
    if (n >= sizeof netns - 1) { napi_throw_range_error(env, NULL, "udp_batch.listenTcp: namespace path too long"); return NULL; }
  }
  if (port < 0 || port > 65535 || backlog < 1) {
    napi_throw_range_error(env, NULL, "udp_batch.listenTcp: bad port or backlog");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t salen;
  int family = sockaddr_of(ip, port, &sa, &salen);
  if (!family) {
    napi_throw_type_error(env, NULL, "udp_batch.listenTcp: not a literal IP address");
    return NULL;
  }
  int fd = open_in_netns(use_netns ? netns : NULL, family, SOCK_STREAM);
  if (fd < 0) return throw_errno(env, use_netns ? "udp_batch.listenTcp: namespace/socket" : "udp_batch.listenTcp: socket", -fd);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (use_netns) setsockopt(fd, family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP, family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, &one, sizeof one);
  const char *step = "udp_batch.listenTcp: bind";
  int ok = bind(fd, (struct sockaddr *)&sa, salen) == 0;
  if (ok) { step = "udp_batch.listenTcp: listen"; ok = listen(fd, backlog) == 0; }
  if (!ok) {
    int e = errno; close(fd);
    return throw_errno(env, step, e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* connectTcp(ip, port, netnsPath) → fd of a TCP socket connecting (non-blocking) to ip:port from inside that
 * namespace: the forwarder's way to a resolver only the container reaches. Node adopts it (new net.Socket({ fd })). */
static napi_value connect_tcp(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char ip[64], netns[4096];
  size_t n;
  int32_t port;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &n));
  if (n >= sizeof ip - 1) { napi_throw_type_error(env, NULL, "udp_batch.connectTcp: not a literal IP address"); return NULL; }
  CHECK(env, napi_get_value_int32(env, argv[1], &port));
  CHECK(env, napi_get_value_string_utf8(env, argv[2], netns, sizeof netns, &n));
  if (n >= sizeof netns - 1) { napi_throw_range_error(env, NULL, "udp_batch.connectTcp: namespace path too long"); return NULL; }
  if (port < 1 || port > 65535) { napi_throw_range_error(env, NULL, "udp_batch.connectTcp: bad port"); return NULL; }
  struct sockaddr_storage sa;
  socklen_t salen;
  int family = sockaddr_of(ip, port, &sa, &salen);
  if (!family) { napi_throw_type_error(env, NULL, "udp_batch.connectTcp: not a literal IP address"); return NULL; }
  int fd = open_in_netns(netns, family, SOCK_STREAM);
  if (fd < 0) return throw_errno(env, "udp_batch.connectTcp: namespace/socket", -fd);
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
    int e = errno; close(fd);
    return throw_errno(env, "udp_batch.connectTcp: connect", e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"init", NULL, init, NULL, NULL, NULL, napi_default, NULL},
    {"open", NULL, open_socket, NULL, NULL, NULL, napi_default, NULL},
    {"send", NULL, send_batch, NULL, NULL, NULL, napi_default, NULL},
    {"sendMany", NULL, send_many, NULL, NULL, NULL, napi_default, NULL},
    {"local", NULL, local_address, NULL, NULL, NULL, napi_default, NULL},
    {"ref", NULL, ref_socket, NULL, NULL, NULL, napi_default, NULL},
    {"pause", NULL, pause_socket, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, close_socket, NULL, NULL, NULL, napi_default, NULL},
    {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_default, NULL},
    {"connectTcp", NULL, connect_tcp, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  napi_value v;
  napi_create_int32(env, SLOTS, &v);
  napi_set_named_property(env, exports, "SLOTS", v);
  napi_create_int32(env, SLOT_SIZE, &v);
  napi_set_named_property(env, exports, "SLOT_SIZE", v);
  napi_create_int32(env, ADDR_SIZE, &v);
  napi_set_named_property(env, exports, "ADDR_SIZE", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
