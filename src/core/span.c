/*
 * span.c - the recording side of the span transport, and sessions.
 *
 * Each recording process owns one file in the session directory (see
 * layout.h), created lazily at its first span. Each thread claims one slot of
 * that file: a single-producer ring that only it writes and one reader drains.
 * The hot path (stall_begin_id / stall_end_arg) touches only the thread's own
 * slot: two clock reads, a few stores, one release store; no lock, no
 * allocation, no system call, no logging. A full ring drops the record and
 * counts it.
 *
 * One global generation number tells threads to look again at where they
 * record: it changes when this process attaches to a session, when thread
 * CPU time is switched, and in a forked child (which must not write into its
 * parent's file: it makes its own, with the same name ids).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"
#include "span.h"

#define DEFAULT_RING_RECORDS 16384u
#define DEFAULT_MAX_THREADS 64u

typedef struct proc_file_t {
    int fd;
    uint8_t *base;
    size_t size;
    proc_hdr_t *hdr;
    name_slot_t *names;
    uint32_t ring_records;
    uint32_t max_threads;
    uint64_t slot_size;
} proc_file_t;

/* Per-thread recording state: everything the hot path needs, in one place. */
typedef struct thr_t {
    uint32_t gen;         /* g_gen this state was made for */
    uint32_t depth;       /* open spans (mirrors slot->depth) */
    thread_slot_t *slot;  /* NULL: this thread records nothing */
    stall_record_t *recs;
    uint64_t mask;        /* ring_records - 1 */
    uint64_t wpos;        /* mirrors slot->write_pos */
    uint64_t rpos_cached; /* last read_pos seen: reloaded only when the ring looks full */
    uint64_t dropped;     /* mirrors slot->dropped */
    _Atomic uint64_t *noslot_dropped; /* set when the process has no free slot */
    uint32_t pid, tid;
    uint32_t file_epoch; /* g_file_epoch of the file `slot` lives in */
    int cpu;
} thr_t;

/* initial-exec: one %fs-relative load instead of a __tls_get_addr call per
 * access when libstall is linked into a shared object (the Python module);
 * it needs only sizeof(thr_t) bytes of the static TLS surplus. */
static _Thread_local thr_t t_thr __attribute__((tls_model("initial-exec")));

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint32_t g_gen = 1;
static proc_file_t *_Atomic g_proc; /* this process's file, or NULL */
static char g_dir[PATH_MAX];       /* session directory, "" when none */
static int g_env_checked;          /* STALL_SESSION_DIR looked at */
static pid_t g_pid;                /* the process g_proc belongs to */
static pid_t g_owner_pid;          /* the process that created g_dir, 0 if none here */
static int g_keep;
static uint32_t g_cfg_ring = 0, g_cfg_threads = 0;
static int g_cfg_cpu = -1;
static char g_label[32];
static _Atomic uint64_t g_session_seq;
static uint32_t g_file_epoch; /* bumped per process file made: a new mapping may reuse an old address */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_thread_key;
static int g_thread_key_made;

/* ------------------------------------------------------------ helpers */

name_slot_t *stall__shared_names(void) {
    proc_file_t *p = atomic_load(&g_proc);
    return p ? p->names : NULL;
}

static uint32_t env_u32(const char *name, uint32_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    if (*end || x == 0 || x > UINT32_MAX) return dflt;
    return (uint32_t)x;
}

static int valid_ring(uint32_t n) { return n >= 64 && n <= (1u << 24) && (n & (n - 1)) == 0; }

int stall__remove_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : stall__errno(errno, "cannot open %s", path);
    struct dirent *e;
    char child[PATH_MAX + 256];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        unlink(child);
    }
    closedir(d);
    if (rmdir(path) < 0 && errno != ENOENT) return stall__errno(errno, "cannot remove %s", path);
    return 0;
}

/* ------------------------------------------------- thread exit and fork */

static void thread_exit(void *arg) {
    thread_slot_t *s = arg;
    /* only retire slots of the current file: after a fork or re-attach the
     * slot may belong to a file of another process */
    proc_file_t *p = atomic_load(&g_proc);
    if (!s || !p || (uint8_t *)s < p->base || (uint8_t *)s >= p->base + p->size) return;
    atomic_store_explicit(&s->state, SLOT_RETIRED, memory_order_release);
}

static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_lock); }
static void atfork_child(void) {
    pthread_mutex_init(&g_lock, NULL);
    stall__intern_after_fork();
    proc_file_t *p = atomic_load(&g_proc);
    if (p) {
        /* the parent's file stays the parent's: unmap it here, make our own
         * at the first span. Only the forking thread exists now. */
        close(p->fd);
        munmap(p->base, p->size);
        free(p);
        atomic_store(&g_proc, NULL);
    }
    g_pid = 0;
    atomic_fetch_add(&g_gen, 1);
}

static void at_exit(void) {
    proc_file_t *p = atomic_load(&g_proc);
    pid_t me = getpid();
    if (p && g_pid == me) atomic_store(&p->hdr->state, PROC_CLOSED);
    if (g_owner_pid == me && !g_keep && g_dir[0]) stall__remove_dir(g_dir);
}

static void init_once(void) {
    g_thread_key_made = pthread_key_create(&g_thread_key, thread_exit) == 0;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    atexit(at_exit);
}

/* ------------------------------------------------------- process file */

/* Makes this process's file in g_dir. Called with g_lock held. */
static proc_file_t *proc_create(void) {
    uint32_t ring = g_cfg_ring ? g_cfg_ring : env_u32("STALL_RING_RECORDS", DEFAULT_RING_RECORDS);
    uint32_t nthreads = g_cfg_threads ? g_cfg_threads : env_u32("STALL_MAX_THREADS", DEFAULT_MAX_THREADS);
    if (!valid_ring(ring)) ring = DEFAULT_RING_RECORDS;
    if (nthreads > 1024) nthreads = DEFAULT_MAX_THREADS;

    uint64_t names_off = 4096;
    uint64_t names_bytes = (uint64_t)STALL_NAME_SLOTS * sizeof(name_slot_t);
    uint64_t slots_off = (names_off + names_bytes + 4095u) & ~(uint64_t)4095u;
    uint64_t slot_size = slot_bytes(ring);
    uint64_t size = slots_off + slot_size * nthreads;

    pid_t pid = getpid();
    uint64_t nonce = stall__clock_ns(CLOCK_MONOTONIC) & 0xffffffu;
    char tmp[PATH_MAX + 64], final[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.tmp-p-%d-%06llx", g_dir, (int)pid, (unsigned long long)nonce);
    snprintf(final, sizeof final, "%s/p-%d-%06llx.stall", g_dir, (int)pid, (unsigned long long)nonce);

    proc_file_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (p->fd < 0) goto fail;
    if (ftruncate(p->fd, (off_t)size) < 0) goto fail;
    /* reserve the header and names now: a full tmpfs must fail here, with an
     * error, and never later as SIGBUS on a store */
    int rc = posix_fallocate(p->fd, 0, (off_t)slots_off);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) goto fail;
    p->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (p->base == MAP_FAILED) {
        p->base = NULL;
        goto fail;
    }
    p->size = size;
    p->hdr = (proc_hdr_t *)(void *)p->base;
    p->names = (name_slot_t *)(void *)(p->base + names_off);
    p->ring_records = ring;
    p->max_threads = nthreads;
    p->slot_size = slot_size;

    proc_hdr_t *h = p->hdr;
    h->version = STALL_LAYOUT_VERSION;
    h->record_size = sizeof(stall_record_t);
    h->pid = (uint32_t)pid;
    h->start_ns = stall__clock_ns(CLOCK_MONOTONIC);
    stall__proc_stat((uint32_t)pid, &h->proc_starttime, &h->ppid, NULL, h->comm, sizeof h->comm);
    h->ring_records = ring;
    h->max_threads = nthreads;
    h->names_off = names_off;
    h->slots_off = slots_off;
    h->slot_size = slot_size;
    h->file_size = size;
    stall__strlcpy(h->label, g_label, sizeof h->label);
    atomic_store(&h->state, PROC_RUNNING);
    stall__intern_mirror_all(p->names);
    atomic_store_explicit(&h->magic, STALL_PROC_MAGIC, memory_order_release);
    if (rename(tmp, final) < 0) goto fail;
    /* publish, then mirror again: a name that became ready while we copied
     * either sees g_proc or is seen by this second pass (both seq_cst) */
    g_file_epoch++;
    atomic_store(&g_proc, p);
    stall__intern_mirror_all(p->names);
    g_pid = pid;
    return p;
fail:
    if (p->base) munmap(p->base, size);
    if (p->fd >= 0) {
        close(p->fd);
        unlink(tmp);
    }
    free(p);
    return NULL;
}

/* Claims a thread slot for the calling thread. Called with g_lock held. */
static thread_slot_t *slot_claim(proc_file_t *p, uint32_t tid) {
    for (uint32_t i = 0; i < p->max_threads; i++) {
        thread_slot_t *s = (thread_slot_t *)(void *)(p->base + p->hdr->slots_off + i * p->slot_size);
        uint32_t st = atomic_load(&s->state);
        if (st == SLOT_ACTIVE) continue;
        if (st == SLOT_RETIRED) {
            /* reuse only once the reader has taken everything out */
            if (atomic_load(&s->read_pos) != atomic_load(&s->write_pos)) continue;
        } else if (st == SLOT_FREE) {
            int rc = posix_fallocate(p->fd, (off_t)(p->hdr->slots_off + i * p->slot_size),
                                     (off_t)p->slot_size);
            if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) return NULL; /* no room: record nothing */
        }
        if (!atomic_compare_exchange_strong(&s->state, &st, SLOT_ACTIVE)) continue;
        s->tid = tid;
        atomic_store(&s->depth, 0);
        uint32_t used = atomic_load(&p->hdr->slots_used);
        while (used < i + 1 && !atomic_compare_exchange_weak(&p->hdr->slots_used, &used, i + 1)) {
        }
        return s;
    }
    return NULL;
}

/* Joins the session directory a parent exported (STALL_SESSION_DIR), once;
 * g_lock held. */
static void env_check_locked(void) {
    if (g_env_checked) return;
    g_env_checked = 1;
    const char *env = getenv("STALL_SESSION_DIR");
    struct stat st;
    if (!g_dir[0] && env && *env && stat(env, &st) == 0 && S_ISDIR(st.st_mode))
        stall__strlcpy(g_dir, env, sizeof g_dir);
}

/* Decides where the calling thread records, after g_gen changed. */
static void __attribute__((noinline)) thr_refresh(thr_t *t) {
    pthread_once(&g_once, init_once);
    pthread_mutex_lock(&g_lock);
    uint32_t gen = atomic_load(&g_gen);
    env_check_locked();
    proc_file_t *p = atomic_load(&g_proc);
    if (!p && g_dir[0]) p = proc_create();
    if (g_cfg_cpu < 0) g_cfg_cpu = env_u32("STALL_THREAD_CPU", 0) ? 1 : 0;

    int same_file = p && t->slot && t->file_epoch == g_file_epoch;
    if (!same_file) {
        memset(t, 0, sizeof *t);
        if (g_thread_key_made) pthread_setspecific(g_thread_key, NULL);
        if (p) {
            uint32_t tid = (uint32_t)gettid();
            thread_slot_t *s = slot_claim(p, tid);
            if (s) {
                t->slot = s;
                t->recs = slot_records(s);
                t->mask = p->ring_records - 1;
                t->wpos = atomic_load(&s->write_pos);
                t->rpos_cached = atomic_load(&s->read_pos);
                t->dropped = atomic_load(&s->dropped);
                if (g_thread_key_made) pthread_setspecific(g_thread_key, s);
            } else {
                t->noslot_dropped = &p->hdr->dropped;
            }
            t->pid = (uint32_t)g_pid;
            t->tid = tid;
            t->file_epoch = g_file_epoch;
        }
    }
    t->cpu = g_cfg_cpu;
    t->gen = gen;
    pthread_mutex_unlock(&g_lock);
}

/* ------------------------------------------------------------ hot path */

static inline thr_t *thr_get(void) {
    thr_t *t = &t_thr;
    if (STALL_UNLIKELY(t->gen != atomic_load_explicit(&g_gen, memory_order_relaxed))) thr_refresh(t);
    return t;
}

static inline void count_drop(thr_t *t) {
    t->dropped++;
    atomic_store_explicit(&t->slot->dropped, t->dropped, memory_order_relaxed);
}

void stall_begin_id(int kind, stall_name_t name) {
    thr_t *t = thr_get();
    thread_slot_t *s = t->slot;
    if (STALL_UNLIKELY(!s)) {
        if (t->noslot_dropped) atomic_fetch_add_explicit(t->noslot_dropped, 1, memory_order_relaxed);
        return;
    }
    uint32_t d = t->depth;
    if (STALL_LIKELY(d < STALL_MAX_DEPTH)) {
        open_span_t *o = &s->stack[d];
        int cpu = t->cpu | ((kind & STALL_WITH_CPU) != 0);
        o->name = name;
        o->kind = (uint8_t)(kind & ~STALL_WITH_CPU);
        o->has_cpu = (uint8_t)cpu;
        if (cpu) o->cpu_start_ns = stall__clock_ns(CLOCK_THREAD_CPUTIME_ID);
        o->start_ns = stall__clock_ns(CLOCK_MONOTONIC);
    }
    t->depth = d + 1;
    atomic_store_explicit(&s->depth, d + 1, memory_order_release);
}

void stall_begin(int kind, const char *name) { stall_begin_id(kind, stall_intern(name)); }

/* Appends one record; returns it, or NULL when the ring is full (counted). */
static inline stall_record_t *ring_reserve(thr_t *t) {
    /* observers (stall_reader_open_observer) detect a slot being rewritten
     * by re-reading write_pos after their copy: the record stores that follow
     * must not become visible before the previous write_pos store (free on
     * x86; a barrier on weakly ordered CPUs) */
    atomic_thread_fence(memory_order_release);
    uint64_t w = t->wpos;
    if (STALL_UNLIKELY(w - t->rpos_cached > t->mask)) {
        t->rpos_cached = atomic_load_explicit(&t->slot->read_pos, memory_order_acquire);
        if (w - t->rpos_cached > t->mask) {
            count_drop(t);
            return NULL;
        }
    }
    return &t->recs[w & t->mask];
}

static inline void ring_publish(thr_t *t) {
    t->wpos++;
    atomic_store_explicit(&t->slot->write_pos, t->wpos, memory_order_release);
}

void stall_end_arg(uint64_t arg) {
    thr_t *t = thr_get();
    thread_slot_t *s = t->slot;
    if (STALL_UNLIKELY(!s || t->depth == 0)) return;
    uint32_t d = t->depth - 1;
    if (STALL_UNLIKELY(d >= STALL_MAX_DEPTH)) {
        count_drop(t);
    } else {
        uint64_t end = stall__clock_ns(CLOCK_MONOTONIC);
        open_span_t *o = &s->stack[d];
        stall_record_t *r = ring_reserve(t);
        if (STALL_LIKELY(r != NULL)) {
            r->start_ns = o->start_ns;
            r->end_ns = end;
            r->arg = arg;
            r->pid = t->pid;
            r->tid = t->tid;
            r->name = o->name;
            r->kind = o->kind;
            r->depth = (uint8_t)d;
            if (o->has_cpu) {
                r->cpu_ns = stall__clock_ns(CLOCK_THREAD_CPUTIME_ID) - o->cpu_start_ns;
                r->flags = STALL_REC_HAS_CPU;
            } else {
                r->cpu_ns = 0;
                r->flags = 0;
            }
            ring_publish(t);
        }
    }
    t->depth = d;
    atomic_store_explicit(&s->depth, d, memory_order_release);
}

void stall_end(void) { stall_end_arg(0); }

/* Appends a record that ends now (instants and after-the-fact spans) at the
 * thread's current depth; start_ns 0 means "now" (an instant). */
static void record_now(int kind, stall_name_t name, uint64_t start_ns, uint64_t arg, uint16_t flags) {
    thr_t *t = thr_get();
    if (!t->slot) {
        if (t->noslot_dropped) atomic_fetch_add_explicit(t->noslot_dropped, 1, memory_order_relaxed);
        return;
    }
    stall_record_t *r = ring_reserve(t);
    if (!r) return;
    uint64_t now = stall__clock_ns(CLOCK_MONOTONIC);
    r->start_ns = start_ns && start_ns < now ? start_ns : now;
    r->end_ns = now;
    r->cpu_ns = 0;
    r->arg = arg;
    r->pid = t->pid;
    r->tid = t->tid;
    r->name = name;
    r->kind = (uint8_t)(kind & ~STALL_WITH_CPU);
    r->depth = (uint8_t)(t->depth < 255 ? t->depth : 255);
    r->flags = flags;
    ring_publish(t);
}

static void instant(int kind, stall_name_t name, uint64_t arg, uint16_t flags) {
    record_now(kind, name, 0, arg, (uint16_t)(STALL_REC_INSTANT | flags));
}

void stall_instant(int kind, stall_name_t name, uint64_t arg) { instant(kind, name, arg, 0); }

void stall_complete(int kind, stall_name_t name, uint64_t start_ns, uint64_t arg) {
    thr_t *t = thr_get();
    if (t->slot && t->depth >= STALL_MAX_DEPTH) { /* too deep to nest correctly: like a begin there */
        count_drop(t);
        return;
    }
    record_now(kind, name, start_ns ? start_ns : 1, arg, 0);
}

uint32_t stall_depth(void) { return thr_get()->depth; }

/* ------------------------------------------------------------ sessions */

struct stall_session_t {
    uint64_t id;
    stall_name_t name_id;
    char name[88];
};

const char *stall_kind_name(int kind) {
    static const char *const names[STALL_KIND_COUNT_] = {
        "other",    "data_loading", "preprocessing", "cpu_compute", "gpu_compute",
        "transfer", "io",           "data_wait",     "step",        "session"};
    return kind >= 0 && kind < STALL_KIND_COUNT_ ? names[kind] : "unknown";
}

static void json_escape_into(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
}

/* Creates a new session directory under the base folder. g_lock held. */
static int dir_create(const char *name, const stall_options_t *o) {
    const char *base = o && o->base_dir && *o->base_dir ? o->base_dir : getenv("STALL_DIR");
    struct stat st;
    if (!base || !*base) {
        base = "/dev/shm";
        if (stat(base, &st) < 0 || !S_ISDIR(st.st_mode) || access(base, W_OK) < 0) {
            base = getenv("TMPDIR");
            if (!base || !*base) base = "/tmp";
        }
    }
    if (stat(base, &st) < 0) return stall__errno(errno, "base_dir %s is not usable", base);
    if (!S_ISDIR(st.st_mode)) return stall__err("base_dir %s is not a directory", base);

    char safe[33];
    size_t n = 0;
    for (const char *c = name; *c && n < sizeof safe - 1; c++)
        safe[n++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                                   (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'
                               ? *c
                               : '_');
    safe[n] = '\0';
    static _Atomic uint32_t seq;
    char path[PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/stall-%u-%d-%u-%s", base, (unsigned)getuid(),
                       (int)getpid(), (unsigned)atomic_fetch_add(&seq, 1), safe);
    if (len < 0 || (size_t)len >= sizeof path - 64) return stall__err("base_dir %s is too long", base);
    if (mkdir(path, 0700) < 0) return stall__errno(errno, "cannot create session directory %s", path);
    chmod(path, 0700);

    char meta[1280], esc[6 * 128 + 8], cut[129], mpath[PATH_MAX + 16];
    stall__strlcpy(cut, name, sizeof cut); /* session names beyond 128 bytes are cut */
    json_escape_into(esc, sizeof esc, cut);
    uint64_t mono = stall__clock_ns(CLOCK_MONOTONIC), real = stall__clock_ns(CLOCK_REALTIME);
    int m = snprintf(meta, sizeof meta,
                     "{\"name\":\"%s\",\"creator_pid\":%d,\"version\":\"%s\",\"layout\":%u,"
                     "\"clock\":\"CLOCK_MONOTONIC\",\"created_monotonic_ns\":%llu,"
                     "\"created_realtime_ns\":%llu}\n",
                     esc, (int)getpid(), STALL_VERSION_STRING, STALL_LAYOUT_VERSION,
                     (unsigned long long)mono, (unsigned long long)real);
    snprintf(mpath, sizeof mpath, "%s/meta.json", path);
    int fd = open(mpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, meta, (size_t)m) != m) {
        int e = errno;
        if (fd >= 0) close(fd);
        stall__remove_dir(path);
        return stall__errno(e, "cannot write %s", mpath);
    }
    close(fd);
    stall__strlcpy(g_dir, path, sizeof g_dir);
    g_owner_pid = getpid();
    return 0;
}

stall_session_t *stall_session_start(const char *name, const stall_options_t *o) {
    if (!name || !*name) {
        stall__err("stall_session_start: name must be a non-empty string");
        return NULL;
    }
    if (o && o->ring_records && !valid_ring(o->ring_records)) {
        stall__err("stall_session_start: ring_records must be a power of two in 64..16777216 (got %u)",
                   o->ring_records);
        return NULL;
    }
    if (o && o->max_threads > 1024) {
        stall__err("stall_session_start: max_threads must be in 1..1024 (got %u)", o->max_threads);
        return NULL;
    }
    pthread_once(&g_once, init_once);
    stall_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        stall__err("stall_session_start: out of memory");
        return NULL;
    }
    pthread_mutex_lock(&g_lock);
    env_check_locked();
    int created = 0;
    if (!g_dir[0]) {
        if (dir_create(name, o) < 0) {
            pthread_mutex_unlock(&g_lock);
            free(s);
            return NULL;
        }
        if (o) {
            g_cfg_ring = o->ring_records;
            g_cfg_threads = o->max_threads;
        }
        created = 1;
        if (!(o && o->no_export)) setenv("STALL_SESSION_DIR", g_dir, 1);
    }
    if (o && o->keep) g_keep = 1;
    if (o && o->thread_cpu_time) g_cfg_cpu = 1;
    pthread_mutex_unlock(&g_lock);
    atomic_fetch_add(&g_gen, 1); /* every thread looks again at where it records */
    (void)created;

    stall__strlcpy(s->name, name, sizeof s->name);
    s->name_id = stall_intern(name);
    s->id = atomic_fetch_add(&g_session_seq, 1) + 1;
    instant(STALL_KIND_SESSION, s->name_id, s->id, STALL_REC_SESSION_BEGIN);
    return s;
}

int stall_session_stop(stall_session_t *s) {
    if (!s) return stall__err("stall_session_stop: session is NULL");
    instant(STALL_KIND_SESSION, s->name_id, s->id, STALL_REC_SESSION_END);
    free(s);
    return 0;
}

const char *stall_session_dir(const stall_session_t *s) {
    (void)s; /* every session of a process records into the same directory */
    pthread_mutex_lock(&g_lock);
    env_check_locked(); /* an inherited directory counts before the first span */
    pthread_mutex_unlock(&g_lock);
    return g_dir[0] ? g_dir : NULL;
}

int stall_set_process_label(const char *label) {
    if (!label) return stall__err("stall_set_process_label: label is NULL");
    pthread_mutex_lock(&g_lock);
    stall__strlcpy(g_label, label, sizeof g_label);
    proc_file_t *p = atomic_load(&g_proc);
    if (p) stall__strlcpy(p->hdr->label, label, sizeof p->hdr->label);
    pthread_mutex_unlock(&g_lock);
    return 0;
}
