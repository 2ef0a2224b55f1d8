// One warning line in runc's log format, for the runtime wrapper and the hook: Docker shows runc's log (the bundle's
// log.json) when a container fails, and that is where an operator looks. Text format: time="…" level=warning msg="…".
#pragma once
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/** Appends to path (stderr when NULL or not writable); json: runc's --log-format json. */
__attribute__((format(printf, 4, 5)))
static void runc_log(const char *path, int json, const char *prog, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char ts[40];
  time_t now = time(NULL);
  struct tm tm;
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  int fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
  FILE *out = fd >= 0 ? fdopen(fd, "a") : NULL;
  if (!out) {
    if (fd >= 0) close(fd);
    out = stderr;
  }
  if (json) {
    fprintf(out, "{\"level\":\"warning\",\"msg\":\"%s: ", prog);
    for (const char *c = msg; *c; c++) {
      if (*c == '"' || *c == '\\') fprintf(out, "\\%c", *c);
      else if ((unsigned char)*c < 0x20) fprintf(out, "\\u%04x", (unsigned char)*c);
      else fputc(*c, out);
    }
    fprintf(out, "\",\"time\":\"%s\"}\n", ts);
  } else {
    fprintf(out, "time=\"%s\" level=warning msg=\"%s: %s\"\n", ts, prog, msg);
  }
  if (out != stderr) fclose(out);
}
