/*
 * json.c - JSON strings for the exporters that write to a FILE (report.json,
 * trace.json, the CLI's JSON lines): one escaper, so every output escapes the
 * same way and stays valid JSON whatever bytes a name or an argument holds.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "export.h"

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one
 * (overlong forms, surrogates and code points above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* Writes s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD. */
void stall__json_esc(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t n = c < 0x80 ? 1 : utf8_len(p);
        if (c == '"' || c == '\\') {
            putc_unlocked('\\', f);
            putc_unlocked((int)c, f);
        } else if (c == '\n') {
            fputs_unlocked("\\n", f);
        } else if (c == '\t') {
            fputs_unlocked("\\t", f);
        } else if (c == '\r') {
            fputs_unlocked("\\r", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (n == 0) {
            fputs_unlocked("\\ufffd", f);
            n = 1;
        } else {
            fwrite_unlocked(p, 1, n, f);
        }
        p += n;
    }
}

void stall__json_str(FILE *f, const char *s) {
    putc_unlocked('"', f);
    stall__json_esc(f, s ? s : "");
    putc_unlocked('"', f);
}

