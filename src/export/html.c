/*
 * html.c - writes report.html: the template compiled in from
 * report.html.in with the report JSON put where its marker is. The JSON is
 * escaped so that it cannot end the <script> element that holds it; the
 * page's own script renders it in the browser. Nothing here looks at what
 * the JSON says.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "html.h"
#include "internal.h"

/* Returns the escape sequence for the character at s[i] (and sets *skip to
 * the bytes it replaces), or NULL when the byte is copied as it is. */
static const char *escape_at(const unsigned char *s, size_t len, size_t i, size_t *skip) {
    *skip = 1;
    switch (s[i]) {
    case '<': return "\\u003c";
    case '>': return "\\u003e";
    case '&': return "\\u0026";
    case 0xE2: /* U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8 */
        if (i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            *skip = 3;
            return s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
        }
        return NULL;
    default: return NULL;
    }
}

/* Length of the escaped JSON, or SIZE_MAX when it contains a NUL byte. */
static size_t escaped_len(const unsigned char *s, size_t len) {
    size_t n = 0, skip;
    for (size_t i = 0; i < len; i += skip) {
        if (s[i] == 0) return SIZE_MAX;
        n += escape_at(s, len, i, &skip) ? 6 : 1;
    }
    return n;
}

char *stall__report_html_render(const char *report_json, size_t len, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)report_json;
    const size_t head = stall__report_html_template_marker_at;
    const size_t tail_at = head + stall__report_html_template_marker_len;
    const size_t tail = stall__report_html_template_len - tail_at;
    char *out = NULL;
    size_t n, o = 0, skip;

    if (!report_json || len == 0) {
        errno = EINVAL;
        stall__err("report html: the report JSON is empty");
        goto fail;
    }
    if (len > (SIZE_MAX - stall__report_html_template_len - 1) / 6) {
        errno = ENOMEM;
        stall__err("report html: the report JSON is too large (%zu bytes)", len);
        goto fail;
    }
    n = escaped_len(s, len);
    if (n == SIZE_MAX) {
        errno = EINVAL;
        stall__err("report html: the report JSON contains a NUL byte");
        goto fail;
    }
    out = malloc(head + n + tail + 1);
    if (!out) {
        errno = ENOMEM;
        stall__err("report html: out of memory for a %zu-byte page", head + n + tail);
        goto fail;
    }
    memcpy(out, stall__report_html_template, head);
    o = head;
    for (size_t i = 0; i < len; i += skip) {
        const char *e = escape_at(s, len, i, &skip);
        if (e) {
            memcpy(out + o, e, 6);
            o += 6;
        } else {
            out[o++] = (char)s[i];
        }
    }
    memcpy(out + o, stall__report_html_template + tail_at, tail);
    o += tail;
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
fail:
    free(out);
    return NULL;
}

/* Writes all of buf to fd, going on after short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int stall__report_html_write(const char *path, const char *report_json, size_t len) {
    char tmp[PATH_MAX];
    size_t page_len = 0;
    char *page = NULL;
    int fd = -1, made = 0;

    if (!path || !*path) {
        stall__err("report html: no output path");
        goto fail;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        stall__err("report html: path too long: %s", path);
        goto fail;
    }
    page = stall__report_html_render(report_json, len, &page_len);
    if (!page) goto fail; /* the error is set */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        stall__errno(errno, "report html: cannot create %s", tmp);
        goto fail;
    }
    made = 1;
    if (write_all(fd, page, page_len) < 0) {
        stall__errno(errno, "report html: cannot write %s", tmp);
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        stall__errno(errno, "report html: cannot write %s", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        stall__errno(errno, "report html: cannot rename %s to %s", tmp, path);
        goto fail;
    }
    free(page);
    return 0;
fail:
    if (fd >= 0) close(fd);
    if (made) unlink(tmp);
    free(page);
    return -1;
}
