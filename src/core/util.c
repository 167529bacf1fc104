/*
 * util.c - the thread-local error message, the version and clock entry
 * points, hashing, and the small no-stdio file helpers used by the core.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static _Thread_local char t_error[512];

const char *stall_version(void) { return STALL_VERSION_STRING; }

const char *stall_last_error(void) { return t_error; }

uint64_t stall_now_ns(void) { return stall__clock_ns(CLOCK_MONOTONIC); }

int stall__err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_error, sizeof t_error, fmt, ap);
    va_end(ap);
    return -1;
}

int stall__errno(int errnum, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t_error, sizeof t_error, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof t_error)
        snprintf(t_error + n, sizeof t_error - (size_t)n, ": %s", strerror(errnum));
    return -1;
}

uint32_t stall__hash(const char *s, size_t max, size_t *len_out) {
    uint32_t h = 2166136261u;
    size_t i = 0;
    for (; i < max && s[i]; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    if (len_out) *len_out = i;
    return h ? h : 1u;
}

void stall__strlcpy(char *dst, const char *src, size_t cap) {
    if (cap == 0) return;
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

long stall__read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

int stall__proc_stat(uint32_t pid, uint64_t *starttime, uint32_t *ppid, char *state,
                     char *comm, size_t comm_cap) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    if (stall__read_file(path, buf, sizeof buf) <= 0) return -1;
    /* "pid (comm) state ppid ..." where comm may hold spaces and ')' */
    char *open_paren = strchr(buf, '(');
    char *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren) return -1;
    if (comm && comm_cap) {
        size_t n = (size_t)(close_paren - open_paren - 1);
        if (n >= comm_cap) n = comm_cap - 1;
        memcpy(comm, open_paren + 1, n);
        comm[n] = '\0';
    }
    /* fields after comm: 3=state 4=ppid ... 22=starttime */
    char *p = close_paren + 1;
    int field = 2;
    unsigned long long v4 = 0, v22 = 0;
    while (*p && field < 22) {
        while (*p == ' ') p++;
        field++;
        char *end = p;
        while (*end && *end != ' ') end++;
        if (field == 4) v4 = strtoull(p, NULL, 10);
        if (field == 22) v22 = strtoull(p, NULL, 10);
        p = end;
    }
    if (field < 22) return -1;
    if (state) *state = close_paren[1] == ' ' ? close_paren[2] : '?';
    if (ppid) *ppid = (uint32_t)v4;
    if (starttime) *starttime = v22;
    return 0;
}
