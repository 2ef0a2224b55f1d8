// A JSON scanner for the hook's two small C programs: validates and finds, never converts (numbers of any size are
// skipped as text, so nothing is rounded). Static functions, included once per program.
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 256

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/** p at '"': the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++p >= end) return NULL;
      if (*p == 'u') {
        for (int i = 0; i < 4; i++) {
          if (++p >= end || !strchr("0123456789abcdefABCDEF", *p) || !*p) return NULL;
        }
      } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
        return NULL;
      }
    }
  }
  return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth);

/** p at '{' or '['; the byte after the matching close, or NULL. */
static const char *skip_container(const char *p, const char *end, int depth) {
  char close = *p == '{' ? '}' : ']';
  int object = *p == '{';
  p = ws(p + 1, end);
  if (p < end && *p == close) return p + 1;
  for (;;) {
    if (object) {
      if (p >= end || *p != '"' || !(p = skip_string(p, end))) return NULL;
      p = ws(p, end);
      if (p >= end || *p != ':') return NULL;
      p = ws(p + 1, end);
    }
    if (!(p = skip_value(p, end, depth + 1))) return NULL;
    p = ws(p, end);
    if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
    if (p < end && *p == close) return p + 1;
    return NULL;
  }
}

static const char *skip_value(const char *p, const char *end, int depth) {
  if (p >= end || depth > JSON_MAX_DEPTH) return NULL;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') return skip_container(p, end, depth);
  static const char *const words[] = { "true", "false", "null" };
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(words[i]);
    if ((size_t)(end - p) >= n && memcmp(p, words[i], n) == 0) return p + n;
  }
  // number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? -- any length: it is copied, never converted
  const char *q = p;
  if (q < end && *q == '-') q++;
  if (q >= end || *q < '0' || *q > '9') return NULL;
  if (*q == '0') q++;
  else while (q < end && *q >= '0' && *q <= '9') q++;
  if (q < end && *q == '.') {
    if (++q >= end || *q < '0' || *q > '9') return NULL;
    while (q < end && *q >= '0' && *q <= '9') q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < end && (*q == '+' || *q == '-')) q++;
    if (q >= end || *q < '0' || *q > '9') return NULL;
    while (q < end && *q >= '0' && *q <= '9') q++;
  }
  return q;
}

/** In the object at `obj` ('{'), the value of member `key` (its first byte), or NULL. *ok = 0 on malformed JSON. */
static const char *member(const char *obj, const char *end, const char *key, int *ok) {
  size_t klen = strlen(key);
  const char *p = ws(obj + 1, end);
  *ok = 1;
  if (p < end && *p == '}') return NULL;
  for (;;) {
    const char *k = p;
    if (p >= end || *p != '"' || !(p = skip_string(p, end))) break;
    int match = (size_t)(p - k) == klen + 2 && memcmp(k + 1, key, klen) == 0;
    p = ws(p, end);
    if (p >= end || *p != ':') break;
    p = ws(p + 1, end);
    if (match) return p;
    if (!(p = skip_value(p, end, 1))) break;
    p = ws(p, end);
    if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
    if (p < end && *p == '}') return NULL;
    break;
  }
  *ok = 0;
  return NULL;
}

/** A JSON string literal of s (quotes included), malloc'd. */
static char *quoted(const char *s) {
  char *out = malloc(strlen(s) * 6 + 3), *o = out;
  if (!out) return NULL;
  *o++ = '"';
  for (const char *c = s; *c; c++) {
    if (*c == '"' || *c == '\\') { *o++ = '\\'; *o++ = *c; }
    else if ((unsigned char)*c < 0x20) o += sprintf(o, "\\u%04x", (unsigned char)*c);
    else *o++ = *c;
  }
  *o++ = '"';
  *o = 0;
  return out;
}
