/*
 * test_util.h - small helpers shared by the C unit tests: a scratch base
 * folder, a reader callback that copies every delivered record, lookups of a
 * process by pid, a recursive remove, and a clean environment. Header-only
 * (static functions), included by each test_*.c after <cmocka.h>.
 */
#ifndef STALL_TEST_UTIL_H
#define STALL_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stall.h"

/* Removes the variables that would change what the library does, so that a
 * test run under `stall run` or with STALL_* set behaves the same. */
static inline void tu_clean_env(void) {
    unsetenv("STALL_SESSION_DIR");
    unsetenv("STALL_DIR");
    unsetenv("STALL_RING_RECORDS");
    unsetenv("STALL_MAX_THREADS");
    unsetenv("STALL_THREAD_CPU");
}

/* Makes a fresh 0700 scratch folder (under $TMPDIR or /tmp) into buf. */
static inline int tu_mkbase(char *buf, size_t cap, const char *tag) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(buf, cap, "%s/stall-unit-%s-XXXXXX", tmp, tag);
    return mkdtemp(buf) ? 0 : -1;
}

static inline int tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf path (depth first). Returns 0 or -1. */
static inline int tu_rmrf(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int tu_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* One delivered record and the process it came from. */
typedef struct tu_rec_t {
    stall_record_t rec;
    uint32_t proc_index;
    uint32_t proc_pid;
} tu_rec_t;

/* Everything a drain delivered, in delivery order. */
typedef struct tu_coll_t {
    tu_rec_t *v;
    size_t n, cap;
    size_t calls; /* callback invocations */
    int bad_run;  /* a run mixed processes, or a record's pid did not match its process */
} tu_coll_t;

static inline int tu_collect_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs,
                                size_t n) {
    tu_coll_t *c = ctx;
    c->calls++;
    if (c->n + n > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->n + n) cap *= 2;
        tu_rec_t *nv = realloc(c->v, cap * sizeof *nv);
        if (!nv) abort();
        c->v = nv;
        c->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        c->v[c->n].rec = recs[i];
        c->v[c->n].proc_index = p->index;
        c->v[c->n].proc_pid = p->pid;
        if (recs[i].pid != p->pid) c->bad_run = 1;
        c->n++;
    }
    return 0;
}

static inline void tu_coll_reset(tu_coll_t *c) {
    c->n = 0;
    c->calls = 0;
    c->bad_run = 0;
}

static inline void tu_coll_free(tu_coll_t *c) {
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Records of one thread (tid) that are not session markers, in order. The
 * result points into a new array the caller frees; *out_n gets the count. */
static inline tu_rec_t *tu_select_tid(const tu_coll_t *c, uint32_t tid, size_t *out_n) {
    tu_rec_t *out = malloc((c->n + 1) * sizeof *out);
    if (!out) abort();
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].rec.tid == tid && c->v[i].rec.kind != STALL_KIND_SESSION) out[k++] = c->v[i];
    *out_n = k;
    return out;
}

/* Finds the process with this pid among those the reader has seen; fills
 * *out and returns 0, or -1 when absent. */
static inline int tu_find_proc(stall_reader_t *r, uint32_t pid, stall_reader_proc_t *out) {
    size_t n = stall_reader_proc(r, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        stall_reader_proc_t p;
        stall_reader_proc(r, i, &p);
        if (p.pid == pid) {
            if (out) *out = p;
            return 0;
        }
    }
    return -1;
}

/* The reader a test holds, so that a failed assertion (which leaves the test
 * at once) does not leave it open and make the next tests fail to open
 * theirs: tests open and close readers with these, and use
 * tu_teardown_reader as their teardown. */
static stall_reader_t *tu_held_reader;

static inline stall_reader_t *tu_reader_open(const char *dir) {
    stall_reader_t *r = stall_reader_open(dir);
    if (r) tu_held_reader = r;
    return r;
}

static inline int tu_reader_close(stall_reader_t *r, int remove) {
    if (r == tu_held_reader) tu_held_reader = NULL;
    return stall_reader_close(r, remove);
}

static inline int tu_teardown_reader(void **state) {
    (void)state;
    if (tu_held_reader) stall_reader_close(tu_held_reader, 0);
    tu_held_reader = NULL;
    return 0;
}

/* Drains r until a drain delivers nothing (at most 64 drains). */
static inline void tu_drain_all(stall_reader_t *r, tu_coll_t *c) {
    for (int i = 0; i < 64; i++)
        if (stall_reader_drain(r, tu_collect_cb, c) <= 0) break;
}

/* Starts this test binary's session (one per process) in a fresh scratch
 * folder written into base: ring_records 0 means the default; *dir gets the
 * session directory. Returns 0, or -1 (with the library's message on stderr). */
static inline int tu_session_start(char *base, size_t cap, const char *tag, uint32_t ring_records,
                                   stall_session_t **sess, const char **dir) {
    if (tu_mkbase(base, cap, tag) < 0) return -1;
    stall_options_t o = {.ring_records = ring_records, .base_dir = base, .no_export = 1};
    *sess = stall_session_start(tag, &o);
    if (!*sess) {
        fprintf(stderr, "stall_session_start: %s\n", stall_last_error());
        return -1;
    }
    *dir = stall_session_dir(*sess);
    return *dir ? 0 : -1;
}

/* Stops the session when there is one, drains and removes its directory,
 * then removes the scratch folder. */
static inline void tu_session_end(stall_session_t *sess, const char *dir, const char *base) {
    if (sess) {
        stall_session_stop(sess);
        stall_reader_t *r = tu_reader_open(dir);
        if (r) tu_reader_close(r, 1);
    }
    tu_rmrf(base);
}

#endif
