/*
 * fx.h - helpers of the collector tests: where the fixture trees are, copying
 * one into a scratch folder to edit it, rewriting a file in place (so that a
 * kept-open descriptor sees the new text, as with a real /proc file), reading
 * a file, and counting this process's open descriptors. Header-only; include
 * after <cmocka.h>.
 */
#ifndef STALL_TEST_FX_H
#define STALL_TEST_FX_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FIXTURES
#error "FIXTURES must name tests/collect/fixtures"
#endif

/* FIXTURES/name/sub into buf */
static inline const char *fx_path(char *buf, size_t cap, const char *name, const char *sub) {
    snprintf(buf, cap, "%s/%s%s%s", FIXTURES, name, sub && *sub ? "/" : "", sub ? sub : "");
    return buf;
}

/* Reads a whole file into buf (NUL-terminated); returns the length or -1. */
static inline long fx_read(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

/* Writes text to root/rel, truncating the file in place (same inode). */
static inline int fx_write(const char *root, const char *rel, const char *text) {
    char path[8448];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static inline int fx_copy_file(const char *src, const char *dst) {
    char buf[65536];
    int in = open(src, O_RDONLY), out = -1, rc = -1;
    if (in < 0) return -1;
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) goto done;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) goto done;
    rc = n < 0 ? -1 : 0;
done:
    close(in);
    if (out >= 0) close(out);
    return rc;
}

/* cp -r src dst (dst must not exist). */
static inline int fx_copy_tree(const char *src, const char *dst) {
    struct stat st;
    if (stat(src, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) return fx_copy_file(src, dst);
    if (mkdir(dst, 0755) < 0) return -1;
    DIR *d = opendir(src);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        rc = fx_copy_tree(a, b);
    }
    closedir(d);
    return rc;
}

static inline int fx_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static inline int fx_rmrf(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copies fixture `name` into a fresh scratch folder; its path goes to buf
 * (the folder holds proc/ and sys/). */
static inline int fx_scratch(char *buf, size_t cap, const char *name) {
    char src[4096];
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(buf, cap, "%s/stall-collect-XXXXXX", tmp);
    if (!mkdtemp(buf)) return -1;
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "/t");
    return fx_copy_tree(fx_path(src, sizeof src, name, NULL), buf);
}

/* Removes a scratch folder made by fx_scratch. */
static inline void fx_scratch_done(char *buf) {
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    fx_rmrf(buf);
}

/* Open file descriptors of this process. */
static inline int fx_nfds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own */
}

#endif
