/*
 * spool.c - an append-only file of every record drained during a run, so
 * that the Chrome trace written at the end can show all of them while the
 * process that drains keeps a flat memory footprint. Entries are fixed-size
 * (the 48-byte record plus the reader's process index), gathered in a buffer
 * and written with write(2); the trace writer reads them back in order
 * through the same buffer, so the file never has to fit in memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "internal.h"

#define SPOOL_BUF_ENTS 2048u /* 112 KiB per write */

_Static_assert(sizeof(stall_spool_ent_t) == 56, "spool entries are 56 bytes");

struct stall_spool_t {
    char *path;
    int fd;
    uint64_t written;       /* entries in the file */
    stall_spool_ent_t *buf; /* SPOOL_BUF_ENTS entries not yet written */
    size_t nbuf;
};

stall_spool_t *stall__spool_new(const char *path) {
    stall_spool_t *s = NULL;
    if (!path || !*path) {
        stall__err("stall__spool_new: path is empty");
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        stall__err("stall__spool_new: out of memory");
        return NULL;
    }
    s->fd = -1;
    s->path = strdup(path);
    s->buf = malloc(SPOOL_BUF_ENTS * sizeof *s->buf);
    if (!s->path || !s->buf) {
        stall__err("stall__spool_new: out of memory");
        goto fail;
    }
    s->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        stall__errno(errno, "cannot create spool %s", path);
        goto fail;
    }
    return s;
fail:
    free(s->path);
    free(s->buf);
    free(s);
    return NULL;
}

/* Writes the buffer out. On failure the buffered entries are dropped and the
 * file is cut back to the entries written before. Returns 0 or -1. */
static int flush(stall_spool_t *s) {
    const char *p = (const char *)s->buf;
    size_t left = s->nbuf * sizeof *s->buf;
    while (left > 0) {
        ssize_t w = write(s->fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            size_t lost = s->nbuf;
            s->nbuf = 0;
            off_t good = (off_t)(s->written * sizeof *s->buf);
            if (ftruncate(s->fd, good) < 0 || lseek(s->fd, good, SEEK_SET) < 0)
                return stall__errno(errno, "spool %s: cannot cut back after a failed write", s->path);
            return stall__errno(e, "spool %s: write failed, %zu records lost", s->path, lost);
        }
        p += w;
        left -= (size_t)w;
    }
    s->written += s->nbuf;
    s->nbuf = 0;
    return 0;
}

int stall__spool_add(stall_spool_t *s, const stall_reader_proc_t *proc,
                     const stall_record_t *recs, size_t n) {
    if (!s || !proc || (!recs && n > 0)) return stall__err("stall__spool_add: NULL argument");
    for (size_t i = 0; i < n; i++) {
        if (recs[i].flags & STALL_REC_OPEN) continue;
        stall_spool_ent_t *e = &s->buf[s->nbuf++];
        e->rec = recs[i];
        e->proc_index = proc->index;
        e->reserved = 0;
        if (s->nbuf == SPOOL_BUF_ENTS && flush(s) < 0) return -1;
    }
    return 0;
}

uint64_t stall__spool_count(const stall_spool_t *s) { return s ? s->written + s->nbuf : 0; }

int stall__spool_scan(stall_spool_t *s, stall_spool_fn fn, void *ctx) {
    if (!s || !fn) return stall__err("stall__spool_scan: NULL argument");
    if (s->nbuf > 0 && flush(s) < 0) return -1;
    const size_t esz = sizeof *s->buf;
    for (uint64_t at = 0; at < s->written;) {
        uint64_t want = s->written - at < SPOOL_BUF_ENTS ? s->written - at : SPOOL_BUF_ENTS;
        size_t got = 0; /* bytes read into buf */
        while (got < want * esz) {
            ssize_t r = pread(s->fd, (char *)s->buf + got, want * esz - got, (off_t)(at * esz + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return stall__errno(r < 0 ? errno : EIO, "cannot read spool %s", s->path);
            got += (size_t)r;
        }
        if (fn(ctx, s->buf, (size_t)want) != 0) return -1;
        at += want;
    }
    return 0;
}

void stall__spool_free(stall_spool_t *s) {
    if (!s) return;
    close(s->fd);
    unlink(s->path);
    free(s->path);
    free(s->buf);
    free(s);
}
