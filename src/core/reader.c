/*
 * reader.c - the consuming side of the span transport.
 *
 * A reader maps every process file of a session directory (finding new ones
 * at each drain), hands the records between each ring's read and write
 * positions to a callback without copying them, then advances the read
 * position so the producer may reuse the space. It tells live processes from
 * exited and crashed ones, hands over the spans a crashed thread left open,
 * and lets go of (unlinks) the files of dead processes it has emptied, so a
 * long run with short-lived workers does not fill shared memory.
 *
 * Only one reader drains a session at a time (flock on reader.lock): the
 * primary. Any number of observers may read it too, without the lock and
 * without writing anything shared (their mappings are read-only): each keeps
 * private cursors, copies records out of the rings and keeps only the copies
 * that the producer provably did not overwrite meanwhile (see observe_slot),
 * since the producer waits for the primary alone.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"
#include "span.h"

/* An observer's private position in one thread slot. */
typedef struct obs_slot_t {
    uint64_t pos;  /* next ring position to copy */
    uint64_t from; /* the primary's read_pos when first seen: losses count from here */
    int seen;
} obs_slot_t;

typedef struct rproc_t {
    char file[96];
    int fd;
    uint8_t *base;
    size_t size;
    proc_hdr_t *hdr;
    stall_reader_proc_t info;
    int finalized;      /* dead, truncated spans handed over, file released */
    char **saved_names; /* names kept after the mapping is released */
    obs_slot_t *obs;    /* observer only: one per thread slot */
} rproc_t;

#define FULL_CHECK_EVERY 10u /* drains between full listings and /proc liveness checks */
#define OBS_BATCH 256u       /* records an observer copies and validates at a time */

struct stall_reader_t {
    char dir[PATH_MAX];
    int lock_fd;  /* -1 for an observer */
    int observer; /* 1: read-only, private cursors (stall_reader_open_observer) */
    rproc_t *procs;
    size_t n, cap;
    char session_name[128];
    struct timespec dir_mtime; /* of the last listing */
    uint32_t drains;           /* drains so far: every FULL_CHECK_EVERY-th does the full checks */
};

static thread_slot_t *rslot(rproc_t *p, uint32_t i) {
    return (thread_slot_t *)(void *)(p->base + p->hdr->slots_off + i * p->hdr->slot_size);
}

static void read_session_name(stall_reader_t *r) {
    char path[PATH_MAX + 16], buf[2048];
    snprintf(path, sizeof path, "%s/meta.json", r->dir);
    if (stall__read_file(path, buf, sizeof buf) <= 0) return;
    const char *k = strstr(buf, "\"name\":\"");
    if (!k) return;
    k += 8;
    size_t o = 0;
    while (*k && *k != '"' && o + 1 < sizeof r->session_name) {
        if (*k == '\\' && k[1] == 'u') { /* \u00XX: the control characters we escape */
            char hex[5] = {0};
            memcpy(hex, k + 2, strnlen(k + 2, 4) < 4 ? strnlen(k + 2, 4) : 4);
            r->session_name[o++] = (char)strtol(hex, NULL, 16);
            k += 2 + strlen(hex);
            continue;
        }
        if (*k == '\\' && k[1]) k++;
        r->session_name[o++] = *k++;
    }
    r->session_name[o] = '\0';
}

/* Opens a primary (observer = 0: takes the lock) or an observer. */
static stall_reader_t *reader_open(const char *dir, int observer) {
    stall_reader_t *r = NULL;
    char path[PATH_MAX + 16];
    struct stat st;
    if (!dir || !*dir) {
        stall__err("%s: dir must be a session directory path",
                   observer ? "stall_reader_open_observer" : "stall_reader_open");
        return NULL;
    }
    if (stat(dir, &st) < 0) {
        stall__errno(errno, "session directory %s", dir);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/meta.json", dir);
    if (!S_ISDIR(st.st_mode) || access(path, R_OK) < 0) {
        stall__err("%s is not a stall session directory (no meta.json)", dir);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        stall__err("stall_reader_open: out of memory");
        return NULL;
    }
    r->lock_fd = -1;
    r->observer = observer;
    stall__strlcpy(r->dir, dir, sizeof r->dir);
    if (observer) goto done;
    snprintf(path, sizeof path, "%s/reader.lock", dir);
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (r->lock_fd < 0) {
        stall__errno(errno, "cannot open %s", path);
        goto fail;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        stall__err("session %s is already being read by another reader", dir);
        goto fail;
    }
done:
    read_session_name(r);
    return r;
fail:
    if (r->lock_fd >= 0) close(r->lock_fd);
    free(r);
    return NULL;
}

stall_reader_t *stall_reader_open(const char *dir) { return reader_open(dir, 0); }

stall_reader_t *stall_reader_open_observer(const char *dir) { return reader_open(dir, 1); }

/* Maps a newly seen process file. Returns 0, or -1 to skip it this time. */
static int proc_map(stall_reader_t *r, const char *file) {
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s", r->dir, file);
    /* an observer maps read-only: it cannot change shared state by mistake */
    int fd = open(path, (r->observer ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    obs_slot_t *obs = NULL;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(proc_hdr_t)) goto fail;
    uint8_t *base = mmap(NULL, (size_t)st.st_size, r->observer ? PROT_READ : PROT_READ | PROT_WRITE,
                         MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) goto fail;
    proc_hdr_t *h = (proc_hdr_t *)(void *)base;
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != STALL_PROC_MAGIC ||
        h->version != STALL_LAYOUT_VERSION || h->record_size != sizeof(stall_record_t) ||
        h->file_size != (uint64_t)st.st_size ||
        h->slots_off + (uint64_t)h->max_threads * h->slot_size > h->file_size) {
        munmap(base, (size_t)st.st_size);
        goto fail;
    }
    if (r->observer && !(obs = calloc(h->max_threads ? h->max_threads : 1, sizeof *obs))) {
        munmap(base, (size_t)st.st_size);
        goto fail;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        rproc_t *np = realloc(r->procs, cap * sizeof *np);
        if (!np) {
            munmap(base, (size_t)st.st_size);
            goto fail;
        }
        r->procs = np;
        r->cap = cap;
    }
    rproc_t *p = &r->procs[r->n];
    memset(p, 0, sizeof *p);
    stall__strlcpy(p->file, file, sizeof p->file);
    p->fd = fd;
    p->base = base;
    p->size = (size_t)st.st_size;
    p->hdr = h;
    p->obs = obs;
    p->info.index = (uint32_t)r->n;
    p->info.pid = h->pid;
    p->info.ppid = h->ppid;
    p->info.alive = 1;
    p->info.start_ns = h->start_ns;
    stall__strlcpy(p->info.comm, h->comm, sizeof p->info.comm);
    r->n++;
    return 0;
fail:
    free(obs);
    close(fd);
    return -1;
}

static int known(stall_reader_t *r, const char *file) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->procs[i].file, file)) return 1;
    return 0;
}

/* Maps the process files that appeared since the last call. The folder is
 * listed again when its mtime changed, and every FULL_CHECK_EVERY drains
 * anyway (an mtime has the coarse clock's resolution: a file made in the same
 * tick as the last listing leaves it unchanged). */
static void scan(stall_reader_t *r) {
    struct stat st;
    if (stat(r->dir, &st) == 0) {
        int same = st.st_mtim.tv_sec == r->dir_mtime.tv_sec && st.st_mtim.tv_nsec == r->dir_mtime.tv_nsec;
        if (same && r->drains % FULL_CHECK_EVERY != 0) return;
        r->dir_mtime = st.st_mtim;
    }
    DIR *d = opendir(r->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 9 || len >= sizeof r->procs[0].file || strncmp(e->d_name, "p-", 2) != 0 ||
            strcmp(e->d_name + len - 6, ".stall") != 0)
            continue;
        if (!known(r, e->d_name)) proc_map(r, e->d_name);
    }
    closedir(d);
}

/* Refreshes what we know of a mapped process. Liveness is a kill(pid, 0)
 * each time; with full = 1 also /proc/<pid>/stat: a zombie, or a pid reused
 * by another process (its start time differs), is dead too. */
static void proc_update(rproc_t *p, int full) {
    proc_hdr_t *h = p->hdr;
    p->info.closed = atomic_load(&h->state) == PROC_CLOSED;
    stall__strlcpy(p->info.label, h->label, sizeof p->info.label);
    uint32_t used = atomic_load_explicit(&h->slots_used, memory_order_acquire);
    if (used > h->max_threads) used = h->max_threads;
    uint64_t dropped = atomic_load(&h->dropped);
    uint32_t active = 0;
    for (uint32_t i = 0; i < used; i++) {
        thread_slot_t *s = rslot(p, i);
        dropped += atomic_load_explicit(&s->dropped, memory_order_relaxed);
        if (atomic_load(&s->state) == SLOT_ACTIVE) active++;
    }
    p->info.dropped = dropped;
    p->info.threads = active;
    if (p->info.closed) {
        p->info.alive = 0;
    } else {
        int gone = kill((pid_t)h->pid, 0) < 0 && errno == ESRCH;
        if (!gone && (full || !p->info.alive)) {
            uint64_t start = 0;
            char state = 0;
            gone = stall__proc_stat(h->pid, &start, NULL, &state, NULL, 0) < 0;
            if (!gone && start != h->proc_starttime) gone = 1; /* pid reused */
            if (state == 'Z' || state == 'X') gone = 1;         /* exited, not yet reaped */
        }
        p->info.alive = !gone;
    }
}

static ssize_t deliver(const stall_reader_proc_t *info, stall_record_t *recs, size_t n,
                       stall_record_fn fn, void *ctx, int *stop) {
    if (n == 0) return 0;
    if (fn(ctx, info, recs, n) != 0) *stop = 1;
    return (ssize_t)n;
}

typedef uint64_t word_t __attribute__((may_alias));

/* Copies n records out of a ring of slot s that the producer may be
 * overwriting at this very moment, then returns the oldest ring position
 * that is still provably intact (see observe_slot). The race is intended:
 * the caller keeps only the copies at or after that position. Word by word
 * through volatile loads, so that the compiler neither calls memcpy (which
 * ThreadSanitizer would intercept) nor reads a word twice; and not
 * instrumented by ThreadSanitizer, which knows no seqlock readers (and no
 * fences). The records are 8-byte aligned. */
__attribute__((no_sanitize("thread"))) static uint64_t copy_then_recheck(stall_record_t *dst,
                                                                         const stall_record_t *src,
                                                                         size_t n, thread_slot_t *s,
                                                                         uint64_t cap) {
    const volatile word_t *from = (const volatile word_t *)(const void *)src;
    word_t *to = (word_t *)(void *)dst;
    for (size_t i = 0; i < n * (sizeof *src / sizeof(word_t)); i++) to[i] = from[i];
    atomic_thread_fence(memory_order_acquire); /* the copy's loads come before the reloads */
    uint64_t wr = atomic_load_explicit(&s->write_pos, memory_order_relaxed);
    uint64_t rd = atomic_load_explicit(&s->read_pos, memory_order_relaxed);
    uint64_t ok = wr + 1 > cap ? wr + 1 - cap : 0; /* wr - p <= cap - 1 */
    return rd < ok ? rd : ok;                       /* or p >= rd */
}

/* Counts as an observer's losses the positions [a, b) at or after `from`
 * (records the primary had already taken when the observer first saw the
 * slot are a bonus when still there, not a loss when gone). */
static void obs_lost(rproc_t *p, const obs_slot_t *o, uint64_t a, uint64_t b) {
    if (a < o->from) a = o->from;
    if (b > a) p->info.observer_lost += b - a;
}

/* Observer: delivers the records of one slot after its private cursor.
 *
 * The producer waits for the primary's read_pos only, so the place of a
 * record the observer has not copied yet may be reused under it: a seqlock
 * check tells. The producer writes position q into ring index q % cap only
 * while its write_pos equals q (write_pos = q + 1 is published, with
 * release, once the record is complete), and only after it saw read_pos >=
 * q - cap + 1; the index of position p is next reused by position p + cap.
 * So a copy of position p is intact if, after the copy, write_pos was still
 * below p + cap (the producer had not even started on p + cap), or read_pos
 * was still at most p (it was not allowed to). Ordering: copy (plain loads),
 * acquire fence, reload both. If a copied word came from the writing of
 * p + cap or later, that writing follows, in the producer's program order,
 * its store write_pos = p + cap and its load of a read_pos > p, so the
 * reloads see them and the copy is thrown away; the acquire load of
 * write_pos before the copy makes every position below it complete.
 * Kept: write_pos_now - p <= cap - 1 or p >= read_pos_now, a suffix of each
 * batch; the thrown-away prefix is counted in observer_lost. (The read_pos
 * test keeps the oldest record of a full ring, which the producer cannot
 * touch until the primary moves.) Strictly, C11 wants a release fence in the
 * producer between that store (or load) and its record stores; x86-64 keeps
 * stores in order and is multi-copy atomic, and the compiler does not hoist
 * the stores above those atomics (other calls of the hot path). */
static ssize_t observe_slot(rproc_t *p, uint32_t i, stall_record_fn fn, void *ctx, int *stop) {
    thread_slot_t *s = rslot(p, i);
    obs_slot_t *o = &p->obs[i];
    stall_record_t *recs = slot_records(s);
    stall_record_t buf[OBS_BATCH];
    uint64_t cap = p->hdr->ring_records;
    uint64_t wr = atomic_load_explicit(&s->write_pos, memory_order_acquire);
    ssize_t total = 0;
    if (!o->seen) { /* first sight: start at the oldest record still in the ring */
        o->seen = 1;
        o->pos = wr > cap ? wr - cap : 0;
        o->from = atomic_load_explicit(&s->read_pos, memory_order_relaxed);
    }
    if (wr - o->pos > cap) { /* lagged more than a ring: those places are reused */
        obs_lost(p, o, o->pos, wr - cap);
        o->pos = wr - cap;
    }
    while (o->pos < wr && !*stop) {
        uint64_t idx = o->pos & (cap - 1);
        uint64_t run = wr - o->pos;
        if (run > cap - idx) run = cap - idx; /* stop at the wrap */
        if (run > OBS_BATCH) run = OBS_BATCH;
        uint64_t ok = copy_then_recheck(buf, &recs[idx], (size_t)run, s, cap); /* oldest intact */
        uint64_t bad = ok > o->pos ? ok - o->pos : 0;
        if (bad > run) bad = run;
        obs_lost(p, o, o->pos, o->pos + bad);
        o->pos += run;
        p->info.records_read += run - bad;
        total += deliver(&p->info, buf + bad, (size_t)(run - bad), fn, ctx, stop);
    }
    return total;
}

/* Drains every slot of one process. */
static ssize_t proc_drain(rproc_t *p, stall_record_fn fn, void *ctx, int *stop) {
    proc_hdr_t *h = p->hdr;
    uint32_t used = atomic_load_explicit(&h->slots_used, memory_order_acquire);
    if (used > h->max_threads) used = h->max_threads;
    uint64_t cap = h->ring_records;
    ssize_t total = 0;
    for (uint32_t i = 0; i < used && !*stop; i++) {
        if (p->obs) {
            total += observe_slot(p, i, fn, ctx, stop);
            continue;
        }
        thread_slot_t *s = rslot(p, i);
        stall_record_t *recs = slot_records(s);
        uint64_t rd = atomic_load_explicit(&s->read_pos, memory_order_relaxed);
        uint64_t wr = atomic_load_explicit(&s->write_pos, memory_order_acquire);
        if (wr - rd > cap) rd = wr - cap; /* cannot happen with a sane producer */
        while (rd < wr && !*stop) {
            uint64_t idx = rd & (cap - 1);
            uint64_t run = wr - rd;
            if (run > cap - idx) run = cap - idx; /* stop at the wrap */
            p->info.records_read += run;
            total += deliver(&p->info, &recs[idx], (size_t)run, fn, ctx, stop);
            rd += run;
            atomic_store_explicit(&s->read_pos, rd, memory_order_release);
        }
    }
    return total;
}

/* Builds the records of the spans open in one process: for a dead process
 * (TRUNCATED) or a live one (OPEN). Skips a span already recorded (a crash
 * between publishing the record and lowering the depth). */
static ssize_t proc_open_spans(rproc_t *p, uint16_t flag, stall_record_fn fn, void *ctx, int *stop) {
    proc_hdr_t *h = p->hdr;
    uint32_t used = atomic_load_explicit(&h->slots_used, memory_order_acquire);
    if (used > h->max_threads) used = h->max_threads;
    ssize_t total = 0;
    stall_record_t out[STALL_MAX_DEPTH];
    for (uint32_t i = 0; i < used && !*stop; i++) {
        thread_slot_t *s = rslot(p, i);
        if (atomic_load(&s->state) != SLOT_ACTIVE) continue;
        uint32_t depth = atomic_load_explicit(&s->depth, memory_order_acquire);
        if (depth > STALL_MAX_DEPTH) depth = STALL_MAX_DEPTH;
        uint64_t wr = atomic_load(&s->write_pos);
        const stall_record_t *last = wr ? &slot_records(s)[(wr - 1) & (h->ring_records - 1)] : NULL;
        size_t n = 0;
        for (uint32_t d = 0; d < depth; d++) {
            open_span_t o = s->stack[d];
            if (o.start_ns == 0) continue;
            if (last && flag == STALL_REC_TRUNCATED && last->start_ns == o.start_ns &&
                last->name == o.name && last->depth == d)
                continue;
            stall_record_t *r = &out[n++];
            memset(r, 0, sizeof *r);
            r->start_ns = o.start_ns;
            r->pid = h->pid;
            r->tid = s->tid;
            r->name = o.name;
            r->kind = o.kind;
            r->depth = (uint8_t)d;
            r->flags = flag;
        }
        total += deliver(&p->info, out, n, fn, ctx, stop);
    }
    return total;
}

/* Keeps the names of a process before its mapping goes away. */
static void save_names(rproc_t *p) {
    name_slot_t *names = (name_slot_t *)(void *)(p->base + p->hdr->names_off);
    p->saved_names = calloc(STALL_NAME_SLOTS, sizeof(char *));
    if (!p->saved_names) return;
    for (uint32_t i = 0; i < STALL_NAME_SLOTS; i++)
        if (atomic_load(&names[i].state) == NAME_READY) p->saved_names[i] = strndup(names[i].str, sizeof names[i].str);
}

static void proc_release(stall_reader_t *r, rproc_t *p) {
    save_names(p);
    munmap(p->base, p->size);
    close(p->fd);
    p->base = NULL;
    p->hdr = NULL;
    p->fd = -1;
    free(p->obs);
    p->obs = NULL;
    if (r->observer) return; /* the primary lets go of the file, not an observer */
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s", r->dir, p->file);
    unlink(path); /* emptied and dead: its memory can go back */
}

ssize_t stall_reader_drain(stall_reader_t *r, stall_record_fn fn, void *ctx) {
    if (!r || !fn) return stall__err("stall_reader_drain: reader and callback are required");
    int full = r->drains++ % FULL_CHECK_EVERY == 0;
    scan(r);
    ssize_t total = 0;
    int stop = 0;
    for (size_t i = 0; i < r->n && !stop; i++) {
        rproc_t *p = &r->procs[i];
        if (p->finalized) continue;
        /* decide liveness before draining: a process that is dead now wrote
         * its last record before we look at the rings */
        proc_update(p, full);
        int dead = !p->info.alive;
        total += proc_drain(p, fn, ctx, &stop);
        if (dead && !stop) {
            if (!p->info.closed) total += proc_open_spans(p, STALL_REC_TRUNCATED, fn, ctx, &stop);
            if (!stop) {
                proc_update(p, 1);
                p->finalized = 1;
                proc_release(r, p);
            }
        }
    }
    return total;
}

ssize_t stall_reader_open_spans(stall_reader_t *r, stall_record_fn fn, void *ctx) {
    if (!r || !fn) return stall__err("stall_reader_open_spans: reader and callback are required");
    scan(r);
    ssize_t total = 0;
    int stop = 0;
    for (size_t i = 0; i < r->n && !stop; i++) {
        rproc_t *p = &r->procs[i];
        if (p->finalized) continue;
        proc_update(p, 1);
        if (p->info.alive) total += proc_open_spans(p, STALL_REC_OPEN, fn, ctx, &stop);
    }
    return total;
}

size_t stall_reader_proc(stall_reader_t *r, size_t index, stall_reader_proc_t *out) {
    if (!r) return 0;
    if (out && index < r->n) {
        rproc_t *p = &r->procs[index];
        if (!p->finalized) proc_update(p, 1);
        *out = p->info;
    }
    return r->n;
}

const char *stall_reader_name(stall_reader_t *r, uint32_t proc_index, uint32_t name) {
    if (!r || proc_index >= r->n || name == 0 || name > STALL_NAME_SLOTS) return "";
    rproc_t *p = &r->procs[proc_index];
    if (p->finalized) {
        const char *s = p->saved_names ? p->saved_names[name - 1] : NULL;
        return s ? s : "";
    }
    name_slot_t *slot = (name_slot_t *)(void *)(p->base + p->hdr->names_off) + (name - 1);
    if (atomic_load_explicit(&slot->state, memory_order_acquire) != NAME_READY) return "";
    return slot->str;
}

const char *stall_reader_session_name(stall_reader_t *r) { return r ? r->session_name : ""; }

int stall_reader_close(stall_reader_t *r, int remove) {
    if (!r) return 0;
    int rc = 0;
    for (size_t i = 0; i < r->n; i++) {
        rproc_t *p = &r->procs[i];
        if (p->base) {
            munmap(p->base, p->size);
            close(p->fd);
        }
        if (p->saved_names) {
            for (uint32_t k = 0; k < STALL_NAME_SLOTS; k++) free(p->saved_names[k]);
            free(p->saved_names);
        }
        free(p->obs);
    }
    free(r->procs);
    if (remove && !r->observer) rc = stall__remove_dir(r->dir); /* ignored for an observer */
    if (r->lock_fd >= 0) close(r->lock_fd);
    free(r);
    return rc;
}
