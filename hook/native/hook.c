// swarmnet-hook: the OCI createContainer hook the runtime wrapper adds to every container (hook/README.md).
//
// runc runs it after the container's namespaces exist and before its process starts, inside those namespaces (so
// /proc/self/ns/net is the container's network namespace), with the OCI state on stdin. It tells the swarmnet plugin
// which namespace this container has and waits, bounded, for the plugin's answer: "served" once the container's
// 127.0.0.11 answers, or "not mine" at once for a container with no swarmnet endpoint (and on Docker 28, where the
// hook runs before Join and the namespace is still empty, for every container: Join is the moment there).
//
// The plugin listens on swarmnet-hook.sock in its plugin directory, which Docker propagates to the host as
// /run/docker/plugins/<plugin id>/ (root only). The namespace is named by device and inode: the plugin runs in
// its own PID namespace and cannot open /proc/<pid>/ns/net, but it can stat the SandboxKey files of its endpoints.
//
// It never fails a container: every outcome exits 0. When the plugin is missing, refuses, or does not answer within
// the bound, one warning goes to runc's log (the bundle's log.json, where Docker looks) and the container starts
// without waiting. Nothing on stdout; small and static in what it touches, since it runs in the container's cgroup.
//
// Request (one line): {"id":"<container id>","bundle":"<path>","netns":{"dev":D,"ino":I}}
// Answer (one line, any content; the plugin's JSON is logged only when it is not {"ok":true...}).
// SWARMNET_PLUGINS_DIR and SWARMNET_HOOK_WAIT_MS override the directory and the bound (tests; runc passes none).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "json-scan.h"
#include "runc-log.h"

#define PLUGINS_DIR "/run/docker/plugins"
#define SOCKET_NAME "swarmnet-hook.sock"
/** Under the hook entry's own timeout (10 s), and long enough for the plugin to open a listener on a busy node. */
#define WAIT_MS 5000
#define MAX_STATE (64 << 10)

static char log_file[4096];
#define warn(...) runc_log(log_file[0] ? log_file : NULL, 1, "swarmnet-hook", __VA_ARGS__)

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** The string member `key` of the state object, unescaped only if it needs none (ids and paths do not); or NULL. */
static char *string_member(const char *buf, const char *end, const char *key) {
  int ok;
  const char *top = ws(buf, end);
  if (top >= end || *top != '{' || !skip_value(top, end, 0)) return NULL;
  const char *v = member(top, end, key, &ok);
  if (!v || *v != '"') return NULL;
  const char *close = skip_string(v, end);
  if (!close || memchr(v + 1, '\\', close - 1 - (v + 1))) return NULL;
  return strndup(v + 1, close - 1 - (v + 1));
}

/** The first swarmnet-hook.sock under dir/<plugin id>/ (one swarmnet plugin per engine). */
static int find_socket(const char *dir, char *out, size_t size) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while (found < 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if ((size_t)snprintf(out, size, "%s/%s/" SOCKET_NAME, dir, e->d_name) < size && stat(out, &st) == 0 && S_ISSOCK(st.st_mode)) found = 0;
  }
  closedir(d);
  return found;
}

int main(void) {
  const char *dir = getenv("SWARMNET_PLUGINS_DIR");
  const char *wait = getenv("SWARMNET_HOOK_WAIT_MS");
  long wait_ms = wait ? strtol(wait, NULL, 10) : WAIT_MS;
  if (wait_ms <= 0) wait_ms = WAIT_MS;
  if (!dir || !*dir) dir = PLUGINS_DIR;

  static char state[MAX_STATE + 1];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(0, state + n, MAX_STATE - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += r;
    if (n == MAX_STATE) break;
  }
  state[n] = 0;
  char *id = string_member(state, state + n, "id");
  char *bundle = string_member(state, state + n, "bundle");
  if (bundle && strlen(bundle) + sizeof "/log.json" < sizeof log_file) snprintf(log_file, sizeof log_file, "%s/log.json", bundle);
  if (!id || !bundle) {
    warn("no container id or bundle in the OCI state on stdin: container starts without waiting for swarmnet DNS");
    return 0;
  }
  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) != 0) {
    warn("cannot stat /proc/self/ns/net (%s): container %.12s starts without waiting for swarmnet DNS", strerror(errno), id);
    return 0;
  }
  char path[sizeof ((struct sockaddr_un *)0)->sun_path];
  if (find_socket(dir, path, sizeof path) != 0) {
    warn("no swarmnet plugin socket under %s (plugin not enabled?): container %.12s starts without waiting for swarmnet DNS", dir, id);
    return 0;
  }
  char *qid = quoted(id), *qbundle = quoted(bundle);
  char *req = qid && qbundle ? malloc(strlen(qid) + strlen(qbundle) + 128) : NULL;
  if (!req) {
    warn("out of memory");
    return 0;
  }
  int len = sprintf(req, "{\"id\":%s,\"bundle\":%s,\"netns\":{\"dev\":%llu,\"ino\":%llu}}\n", qid, qbundle,
                    (unsigned long long)ns.st_dev, (unsigned long long)ns.st_ino);

  // Connect, send, read one line; all under one deadline (a unix connect does not block on a live listener).
  long long deadline = now_ms() + wait_ms;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    warn("swarmnet plugin not reachable at %s (%s): container %.12s starts without waiting for swarmnet DNS", path, strerror(errno), id);
    return 0;
  }
  char reply[4096];
  size_t got = 0, sent = 0;
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      warn("no answer from the swarmnet plugin within %ld ms: container %.12s starts without waiting for swarmnet DNS", wait_ms, id);
      return 0;
    }
    struct pollfd p = { .fd = fd, .events = sent < (size_t)len ? POLLOUT : POLLIN };
    if (poll(&p, 1, (int)left) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p.revents & POLLOUT) {
      ssize_t w = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR) break;
      if (w > 0) sent += w;
    } else if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = recv(fd, reply + got, sizeof reply - 1 - got, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) break;
      got += r;
      reply[got] = 0;
      char *nl = memchr(reply, '\n', got);
      if (nl || got == sizeof reply - 1) {
        if (nl) *nl = 0;
        if (strncmp(reply, "{\"ok\":true", 10) != 0) warn("swarmnet plugin answered for container %.12s: %s", id, reply);
        return 0;
      }
    }
  }
  warn("the swarmnet plugin closed the connection without an answer (%s): container %.12s starts without waiting for swarmnet DNS",
       errno ? strerror(errno) : "no data", id);
  return 0;
}
