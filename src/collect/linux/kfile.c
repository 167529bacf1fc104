/*
 * kfile.c - kept-open kernel files: open once, re-read from offset 0 with
 * pread at every sample (no stdio, no seek, one syscall for small files),
 * plus the path helpers the Linux collectors share. /proc and /sys files
 * report a size of 0, so a read goes on until EOF or a full buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "lx.h"

int stall__lx_cat(char *dst, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > cap) return -1;
    memcpy(dst + *len, s, n + 1);
    *len += n;
    return 0;
}

int stall__lx_catu(char *dst, size_t cap, size_t *len, uint64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    tmp[--i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return stall__lx_cat(dst, cap, len, tmp + i);
}

int stall__lx_join(char *dst, size_t cap, const char *a, const char *b) {
    size_t len = 0;
    if (cap == 0) goto fail;
    dst[0] = '\0';
    if (a && *a && stall__lx_cat(dst, cap, &len, a) < 0) goto fail;
    if (b && *b) {
        if (len > 0 && dst[len - 1] != '/' && b[0] != '/' && stall__lx_cat(dst, cap, &len, "/") < 0)
            goto fail;
        if (len > 0 && dst[len - 1] == '/' && b[0] == '/') b++;
        if (stall__lx_cat(dst, cap, &len, b) < 0) goto fail;
    }
    return 0;
fail:
    if (cap) dst[0] = '\0';
    errno = ENAMETOOLONG;
    return -1;
}

int stall__kf_open(stall_kfile_t *f, const char *root, const char *rel) {
    char path[PATH_MAX];
    if (!f) {
        errno = EINVAL;
        return -1;
    }
    f->fd = -1;
    if (!rel || stall__lx_join(path, sizeof path, root, rel) < 0) {
        errno = rel ? ENAMETOOLONG : EINVAL;
        return -1;
    }
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    f->fd = fd;
    return 0;
}

long stall__kf_read(stall_kfile_t *f, char *buf, size_t cap) {
    if (!buf || cap == 0) {
        errno = EINVAL;
        return -1;
    }
    buf[0] = '\0';
    if (!f || f->fd < 0) {
        errno = EBADF;
        return -1;
    }
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = pread(f->fd, buf + len, cap - 1 - len, (off_t)len);
        if (n < 0) {
            if (errno == EINTR) continue;
            buf[0] = '\0';
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (long)len;
}

void stall__kf_close(stall_kfile_t *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

long stall__lx_read_grow(stall_kfile_t *f, char **buf, size_t *cap, size_t max) {
    for (;;) {
        long n = stall__kf_read(f, *buf, *cap);
        if (n < 0) return -1;
        if ((size_t)n + 1 < *cap || *cap >= max) return n;
        size_t ncap = *cap * 2 > max ? max : *cap * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return n; /* keep what fitted: parsers take truncated text */
        *buf = nb;
        *cap = ncap;
    }
}

long stall__lx_read_once(const char *root, const char *rel, char *buf, size_t cap) {
    stall_kfile_t f;
    if (stall__kf_open(&f, root, rel) < 0) {
        if (cap) buf[0] = '\0';
        return -1;
    }
    long n = stall__kf_read(&f, buf, cap);
    int e = errno;
    stall__kf_close(&f);
    errno = e;
    return n;
}
