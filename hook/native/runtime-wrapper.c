// swarmnet-runtime: the OCI runtime Docker calls instead of runc (daemon.json "runtimes" + "default-runtime").
//
// `create` with a bundle: adds swarmnet's createContainer hook (the `swarmnet-hook` file beside this executable) to
// the bundle's config.json when the engine sets the network up from a prestart hook (Docker before 26; see
// needs_hook), then execs runc with the arguments unchanged. Every other call (start, state, kill,
// delete, exec, features, --version, ...) execs runc at once. C, not Node: Docker calls the runtime several times per
// container start and healthcheck, and Node's own start (25-40 ms) would be paid on each.
//
// The edit is textual: the hook entry is inserted into the JSON bytes and nothing else changes, so unknown fields,
// formatting and integers above 2^53 (which a parse + serialise would round) are kept exactly. The new file is
// written beside the old one and renamed over it, so runc never reads a half-written config.
//
// It never fails a container that runc would start: any error of its own (unreadable bundle, JSON it does not
// understand, no hook file) is logged where runc logs (--log, in --log-format) and runc runs on the unchanged bundle.
// It never writes to stdout (Docker reads runc's). Signals, stdio and the exit code are runc's: this process becomes
// runc (execv), it does not wait for it.
//
// SWARMNET_RUNC (environment) names the runc to exec; default /usr/sbin/runc, then runc from PATH.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json-scan.h"
#include "runc-log.h"

#define HOOK_FILE "swarmnet-hook"
/** Seconds runc gives the hook before it kills it; the hook itself fails open well before that. */
#define HOOK_TIMEOUT "10"
/** A bundle config larger than this is left alone (Docker's are a few KiB). */
#define MAX_CONFIG (16 << 20)

static const char *log_path;
static int log_json;

/** One warning line where runc logs (--log file, else stderr), in runc's --log-format. */
#define warn(...) runc_log(log_path, log_json, "swarmnet-runtime", __VA_ARGS__)

static void exec_runc(char **argv) {
  const char *runc = getenv("SWARMNET_RUNC");
  argv[0] = "runc";
  if (runc && *runc) execv(runc, argv);
  else {
    execv("/usr/sbin/runc", argv);
    execvp("runc", argv);
  }
  warn("cannot exec runc%s%s: %s", runc ? " " : "", runc ? runc : "", strerror(errno));
  _exit(127);
}

/**
 * The edit that adds `entry` to hooks.createContainer of the config in [buf, end): replace `*cut` bytes at `*at`
 * with the returned text (malloc'd). NULL with *why set when the document is not an object it understands.
 */
static char *plan(const char *buf, const char *end, const char *entry, size_t *at, size_t *cut, const char **why) {
  const char *top = ws(buf, end);
  *cut = 0;
  if (top >= end || *top != '{') { *why = "not a JSON object"; return NULL; }
  const char *after = skip_value(top, end, 0);
  if (!after || ws(after, end) != end) { *why = "malformed JSON"; return NULL; }
  int ok;
  const char *hooks = member(top, end, "hooks", &ok);
  char *text = malloc(strlen(entry) + 64);
  if (!ok || !text) { free(text); *why = "malformed JSON"; return NULL; }
  int empty;
  if (!hooks || (hooks[0] == 'n' && hooks[1] == 'u')) {  // absent or null
    if (hooks) { *at = hooks - buf; *cut = 4; sprintf(text, "{\"createContainer\":[%s]}", entry); return text; }
    empty = *ws(top + 1, end) == '}';
    *at = top + 1 - buf;
    sprintf(text, "\"hooks\":{\"createContainer\":[%s]}%s", entry, empty ? "" : ",");
    return text;
  }
  if (*hooks != '{') { free(text); *why = "\"hooks\" is not an object"; return NULL; }
  const char *cc = member(hooks, end, "createContainer", &ok);
  if (!ok) { free(text); *why = "malformed JSON"; return NULL; }
  if (!cc) {
    empty = *ws(hooks + 1, end) == '}';
    *at = hooks + 1 - buf;
    sprintf(text, "\"createContainer\":[%s]%s", entry, empty ? "" : ",");
    return text;
  }
  if (cc[0] == 'n' && cc[1] == 'u') { *at = cc - buf; *cut = 4; sprintf(text, "[%s]", entry); return text; }
  if (*cc != '[') { free(text); *why = "\"hooks.createContainer\" is not an array"; return NULL; }
  // Last in the array: hooks that were there first (GPU, other tooling) keep their order.
  const char *close = skip_value(cc, end, 1) - 1;
  empty = ws(cc + 1, end) == close;
  *at = close - buf;
  sprintf(text, "%s%s", empty ? "" : ",", entry);
  return text;
}

/**
 * Whether this container needs the hook: Docker before 26 (and 26.0.1-27) configures a container's network from
 * runc's prestart hook `libnetwork-setkey`, after Join, and only a createContainer hook can hold the process until
 * swarmnet serves its DNS. Newer engines join the network after the namespace exists and before `runc start`, so the
 * plugin serves it at Join and the hook would only be answered "not mine". SWARMNET_HOOK_ALWAYS=1 adds it regardless.
 */
static int needs_hook(const char *buf, const char *end) {
  const char *always = getenv("SWARMNET_HOOK_ALWAYS");
  if (always && strcmp(always, "1") == 0) return 1;
  int ok;
  const char *hooks = member(ws(buf, end), end, "hooks", &ok);
  if (!ok || !hooks || *hooks != '{') return 0;
  const char *prestart = member(hooks, end, "prestart", &ok);
  if (!ok || !prestart || *prestart != '[') return 0;
  const char *close = skip_value(prestart, end, 1);
  static const char setkey[] = "libnetwork-setkey";
  return close && memmem(prestart, (size_t)(close - prestart), setkey, sizeof setkey - 1) != NULL;
}

static int read_all(int fd, char **out, size_t *len) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -1;
  if (!S_ISREG(st.st_mode) || st.st_size > MAX_CONFIG) { errno = EFBIG; return -1; }
  char *buf = malloc(st.st_size + 1);
  if (!buf) return -1;
  size_t n = 0;
  while (n < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + n, st.st_size - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += r;
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= w;
  }
  return 0;
}

/** Adds the hook to <bundle>/config.json; on any problem logs it and leaves the file as it was. */
static void add_hook(const char *bundle) {
  char self[PATH_MAX], hook[PATH_MAX + 32], config[PATH_MAX], tmp[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) { warn("cannot find my own executable: %s", strerror(errno)); return; }
  self[n] = 0;
  *strrchr(self, '/') = 0;
  snprintf(hook, sizeof hook, "%s/%s", self, HOOK_FILE);
  if (access(hook, X_OK) != 0) { warn("no executable %s (%s): container created without the DNS hook", hook, strerror(errno)); return; }
  if (snprintf(config, sizeof config, "%s/config.json", bundle) >= (int)sizeof config ||
      snprintf(tmp, sizeof tmp, "%s/.config.json.swarmnet-XXXXXX", bundle) >= (int)sizeof tmp) {
    warn("bundle path too long: %s", bundle);
    return;
  }
  int fd = open(config, O_RDONLY | O_CLOEXEC);
  char *buf = NULL;
  size_t len = 0;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || read_all(fd, &buf, &len) < 0) {
    warn("cannot read %s: %s; container created without the DNS hook", config, strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  close(fd);
  char *qhook = quoted(hook);
  char *entry = qhook ? malloc(strlen(qhook) * 2 + 64) : NULL;
  if (!entry) { warn("out of memory"); free(qhook); free(buf); return; }
  if (memmem(buf, len, qhook, strlen(qhook))) { free(entry); free(qhook); free(buf); return; }  // already there
  sprintf(entry, "{\"path\":%s,\"args\":[\"" HOOK_FILE "\",\"createContainer\"],\"timeout\":" HOOK_TIMEOUT "}", qhook);
  size_t at, cut;
  const char *why = NULL;
  char *text = plan(buf, buf + len, entry, &at, &cut, &why);
  if (!text) {
    warn("%s: %s; container created without the DNS hook", config, why);
    free(entry); free(qhook); free(buf);
    return;
  }
  if (!needs_hook(buf, buf + len)) { free(text); free(entry); free(qhook); free(buf); return; }
  int out = mkostemp(tmp, O_CLOEXEC);
  int failed = out < 0;
  if (!failed) {
    // No fsync: the bundle lives on Docker's exec root (a tmpfs) for this container's life only; rename is what
    // keeps runc from ever seeing a partial file.
    failed = fchmod(out, st.st_mode & 07777) < 0 || write_all(out, buf, at) < 0 || write_all(out, text, strlen(text)) < 0 ||
             write_all(out, buf + at + cut, len - at - cut) < 0;
    failed = close(out) < 0 || failed;
    if (!failed) failed = rename(tmp, config) < 0;
    if (failed) unlink(tmp);
  }
  if (failed) warn("cannot write %s: %s; container created without the DNS hook", config, strerror(errno));
  free(text); free(entry); free(qhook); free(buf);
}

/** runc's global options that take a value (urfave/cli: -x v, --x v, -x=v, --x=v). */
static int takes_value(const char *name) {
  static const char *const names[] = { "root", "log", "log-format", "criu", "rootless", NULL };
  for (int i = 0; names[i]; i++) if (strcmp(name, names[i]) == 0) return 1;
  return 0;
}

/** "--log=x" -> name "log", value "x"; "-log" -> name "log", value NULL. */
static const char *flag(const char *arg, char *name, size_t size, const char **value) {
  const char *s = arg + (arg[1] == '-' ? 2 : 1);
  const char *eq = strchr(s, '=');
  size_t n = eq ? (size_t)(eq - s) : strlen(s);
  if (n >= size) n = size - 1;
  memcpy(name, s, n);
  name[n] = 0;
  *value = eq ? eq + 1 : NULL;
  return name;
}

int main(int argc, char **argv) {
  int i = 1;
  char name[64];
  const char *value;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    flag(argv[i], name, sizeof name, &value);
    if (!takes_value(name)) continue;
    if (!value && i + 1 < argc) value = argv[++i];
    if (strcmp(name, "log") == 0) log_path = value;
    else if (strcmp(name, "log-format") == 0) log_json = value && strcmp(value, "json") == 0;
  }
  if (i < argc && strcmp(argv[i], "create") == 0) {
    const char *bundle = NULL;
    for (int j = i + 1; j < argc && !bundle; j++) {
      if (strcmp(argv[j], "--") == 0) break;
      if (argv[j][0] != '-') continue;
      flag(argv[j], name, sizeof name, &value);
      if (strcmp(name, "bundle") && strcmp(name, "b")) continue;
      bundle = value ? value : j + 1 < argc ? argv[j + 1] : NULL;
    }
    char cwd[PATH_MAX];
    if (!bundle || !*bundle) bundle = getcwd(cwd, sizeof cwd);  // runc's default: the current directory
    if (bundle) add_hook(bundle);
  }
  exec_runc(argv);
  return 127;
}
