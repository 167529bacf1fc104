/*
 * tree.c - the process-tree collector: finds the root process and all its
 * descendants again at every sample and reads each one's counters.
 *
 * Finding the tree: breadth-first from the root through
 * <proc>/<pid>/task/<tid>/children of every thread of every process (a child
 * is listed under the thread that forked it). Kernels built without
 * CONFIG_PROC_CHILDREN lack those files: then every numeric folder of <proc>
 * is read once per sample for its ppid (costlier, same result).
 *
 * Per process, stat, io, status and schedstat stay open across samples in a
 * small hash table keyed by pid; the starttime read at each sample tells a
 * reused pid (a new process) from the one seen before, and rates are only
 * computed across two samples of the same (pid, starttime). smaps_rollup is
 * opened, read and closed for a new process and when the caller says the
 * PSS is due; between two such reads the last PSS is reported moved by the
 * process's RSS change since (new private pages count whole in both). A
 * process that vanishes between listing and reading is left out silently;
 * entries of processes gone are closed and freed at the end of each sample.
 *
 * Thread states: the folder <pid>/task stays open; at each sample it is
 * listed again (getdents64), and each thread's stat is opened relative to it,
 * read (the text up to the state letter) and closed; a sleeping thread's
 * wchan is read the same way, and only for a wchan of "wait_woken" (a tcp
 * receive on 6.x kernels, but also a tty or inotify read) its syscall and,
 * for a read or write, the link of its fd tell whether it waits on a socket.
 * Nothing is kept open per thread (a tree of a few hundred threads would use
 * as many descriptors of the profiled program). The sampling thread is not
 * counted in its own process.
 *
 * Limits: schedstat of /proc/<pid> is the main thread's, so runq_wait_* cover
 * the main thread only; io is often unreadable (other users' processes), and
 * is then left unknown without retrying. A thread waiting on sockets in
 * poll/epoll (Python sockets with a timeout, asyncio) is not counted as net:
 * its wchan does not say what it polls.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "collector.h"
#include "internal.h"
#include "lx.h"

#define TREE_BUF_INIT 4096u
#define TREE_BUF_MAX (1u << 20)
#define STATUS_EVERY 5u  /* samples between reads of /proc/<pid>/status */
#define RELIST_EVERY 10u /* samples between listings of a process's threads */
/* Thread states cost about 2 us a thread that has not run since the last
 * read and 5 to 15 us one that has: they are read every wait_every samples
 * (staggered by pid), between WAIT_EVERY_MIN and WAIT_EVERY_MAX, the period
 * growing while their mean cost per sample is over WAIT_BUDGET_NS. */
#define WAIT_EVERY_MIN 2u
#define WAIT_EVERY_MAX 16u
#define WAIT_BUDGET_NS 50000u

enum { MODE_UNKNOWN = 0, MODE_CHILDREN = 1, MODE_SCAN = 2 };

/* What a thread was doing when its state was last read, and its schedstat
 * then: a thread whose run and run-queue times have not moved since has not
 * run, so it still waits where it waited. */
enum { TH_OTHER = 0, TH_RUN, TH_DISK, TH_NET, TH_SLEEP };
typedef struct thr_t {
    uint32_t tid;
    uint32_t what; /* TH_* */
    uint64_t run_ns, wait_ns;
} thr_t;

typedef struct tproc_t {
    uint32_t pid; /* 0: free slot */
    uint32_t gen; /* sample generation in which it was last found in the tree */
    uint64_t starttime;
    stall_kfile_t stat, io, status, sched;
    int io_off, status_off, sched_off; /* unreadable for good: not retried */
    stall_pid_stat_t st;                /* parsed at this sample */
    uint64_t minflt, majflt;            /* parsed at this sample */
    int has_prev, prev_io, prev_sched, has_pss, pss_tried;
    uint64_t prev_t_ns, prev_ticks, prev_read, prev_write, prev_wait, pss_bytes, pss_rss; /* pss_rss: RSS then */
    uint64_t prev_stime, prev_minflt, prev_majflt;
    /* <pid>/task kept open (O_DIRECTORY) for the thread states; task_off:
     * unreadable for good (permission), not retried. The counts of the last
     * read stand in between reads (wait_every). */
    int task_fd, task_off, wait_tried, has_wait;
    uint32_t w_run, w_disk, w_net, w_sleep;
    thr_t *thr; /* the threads of the last read, in listing order */
    uint32_t nthr, capthr;
    /* context switches: status is the costliest file, read every STATUS_EVERY samples */
    int has_ctx;
    uint64_t ctx_vol, ctx_invol;
    /* children files kept open: the main thread's, and those of threads
     * that had children when the tasks were last listed */
    stall_kfile_t *cf;
    uint32_t *cf_tid;
    uint32_t ncf, capcf;
    uint32_t listed_threads, listed_gen; /* when the tasks were last listed */
} tproc_t;

typedef struct pp_t {
    uint32_t pid, ppid;
} pp_t;

struct stall_tree_collector_t {
    char proc_root[PATH_MAX];
    uint32_t root_pid;
    long clk_tck;
    uint64_t page_size;
    int mode;
    uint32_t gen;

    tproc_t *tab; /* open addressing, linear probing, power-of-two size */
    size_t tab_cap, tab_n;

    uint32_t *order, *depth; /* the tree of this sample, breadth first */
    size_t order_n, order_cap;
    uint32_t *kids;
    size_t kids_cap;
    pp_t *scan; /* MODE_SCAN: (pid, ppid) of every process, by ppid */
    size_t scan_n, scan_cap;

    char *buf;
    size_t cap;

    /* thread states: the tids of one task folder, getdents64 records */
    int real_proc; /* proc_root is this machine's /proc: skip the sampling thread */
    uint32_t wait_every;   /* samples between two reads of a process's thread states */
    uint64_t wait_cost_ns; /* their cost per sample, moving mean (1/8) */
    uint64_t wait_spent_ns; /* in this sample */
    uint32_t self_pid, self_tid;
    uint32_t *tids;
    size_t tids_cap;
    thr_t *thr; /* scratch: the threads being read, swapped into the entry */
    size_t thr_cap;
    uint64_t dents[512]; /* 4 KiB, aligned for the records */
};

/* ------------------------------------------------------------ hash table */

static size_t slot_of(const stall_tree_collector_t *c, uint32_t pid) {
    return (size_t)((pid * 2654435761u) & (uint32_t)(c->tab_cap - 1));
}

static tproc_t *find(stall_tree_collector_t *c, uint32_t pid) {
    size_t mask = c->tab_cap - 1;
    for (size_t i = slot_of(c, pid);; i = (i + 1) & mask) {
        if (c->tab[i].pid == pid) return &c->tab[i];
        if (c->tab[i].pid == 0) return NULL;
    }
}

static void entry_init(tproc_t *e, uint32_t pid) {
    memset(e, 0, sizeof *e);
    e->pid = pid;
    e->stat.fd = e->io.fd = e->status.fd = e->sched.fd = -1;
    e->task_fd = -1;
}

static void task_close(tproc_t *e) {
    if (e->task_fd >= 0) close(e->task_fd);
    e->task_fd = -1;
    free(e->thr);
    e->thr = NULL;
    e->nthr = e->capthr = 0;
}

static void children_files_close(tproc_t *e) {
    for (uint32_t i = 0; i < e->ncf; i++) stall__kf_close(&e->cf[i]);
    free(e->cf);
    free(e->cf_tid);
    e->cf = NULL;
    e->cf_tid = NULL;
    e->ncf = e->capcf = 0;
    e->listed_threads = e->listed_gen = 0;
}

static void entry_close(tproc_t *e) {
    stall__kf_close(&e->stat);
    stall__kf_close(&e->io);
    stall__kf_close(&e->status);
    stall__kf_close(&e->sched);
    children_files_close(e);
    task_close(e);
}

static int rehash(stall_tree_collector_t *c, size_t ncap) {
    tproc_t *old = c->tab;
    size_t ocap = c->tab_cap;
    tproc_t *t = calloc(ncap, sizeof *t);
    if (!t) return -1;
    c->tab = t;
    c->tab_cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].pid) continue;
        size_t j = slot_of(c, old[i].pid);
        while (t[j].pid) j = (j + 1) & (ncap - 1);
        t[j] = old[i];
    }
    free(old);
    return 0;
}

/* A fresh entry for pid (not in the table). NULL when out of memory. */
static tproc_t *insert(stall_tree_collector_t *c, uint32_t pid) {
    if ((c->tab_n + 1) * 2 > c->tab_cap && rehash(c, c->tab_cap * 2) < 0) return NULL;
    size_t i = slot_of(c, pid);
    while (c->tab[i].pid) i = (i + 1) & (c->tab_cap - 1);
    entry_init(&c->tab[i], pid);
    c->tab_n++;
    return &c->tab[i];
}

/* Closes and removes pid's entry, shifting back the entries that follow it
 * in its probe run (no tombstones). */
static void erase(stall_tree_collector_t *c, uint32_t pid) {
    size_t mask = c->tab_cap - 1;
    size_t i = slot_of(c, pid);
    while (c->tab[i].pid != pid) {
        if (!c->tab[i].pid) return;
        i = (i + 1) & mask;
    }
    entry_close(&c->tab[i]);
    for (size_t j = (i + 1) & mask; c->tab[j].pid; j = (j + 1) & mask) {
        size_t k = slot_of(c, c->tab[j].pid);
        /* the entry at j may move to i when its home k is not in (i, j] */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            c->tab[i] = c->tab[j];
            i = j;
        }
    }
    c->tab[i].pid = 0;
    c->tab_n--;
}

/* --------------------------------------------------------------- files */

/* "<pid>/<file>" */
static int rel_of(char *rel, size_t cap, uint32_t pid, const char *file) {
    size_t l = 0;
    rel[0] = '\0';
    if (stall__lx_catu(rel, cap, &l, pid) < 0) return -1;
    if (file && (stall__lx_cat(rel, cap, &l, "/") < 0 || stall__lx_cat(rel, cap, &l, file) < 0)) return -1;
    return 0;
}

static int open_pid_file(stall_tree_collector_t *c, stall_kfile_t *f, uint32_t pid, const char *file) {
    char rel[64];
    if (rel_of(rel, sizeof rel, pid, file) < 0) return -1;
    return stall__kf_open(f, c->proc_root, rel);
}

static long rd(stall_tree_collector_t *c, stall_kfile_t *f) {
    if (f->fd < 0) return -1;
    return stall__lx_read_grow(f, &c->buf, &c->cap, TREE_BUF_MAX);
}

static int read_stat(stall_tree_collector_t *c, tproc_t *e) {
    long n = rd(c, &e->stat);
    return n < 0 ? -1 : stall__parse_pid_stat_x(c->buf, (size_t)n, &e->st, &e->minflt, &e->majflt);
}

/* Forgets everything of a previous process with the same pid. */
static void entry_reset(tproc_t *e) {
    stall__kf_close(&e->io);
    stall__kf_close(&e->status);
    stall__kf_close(&e->sched);
    children_files_close(e);
    task_close(e);
    e->io_off = e->status_off = e->sched_off = e->task_off = 0;
    e->has_prev = e->prev_io = e->prev_sched = e->has_pss = e->pss_tried = e->has_ctx = e->wait_tried = e->has_wait = 0;
}

/* Reads pid's stat and marks it part of this sample's tree. Returns 0, or -1
 * when it is already in the tree or is gone. */
static int acquire(stall_tree_collector_t *c, uint32_t pid) {
    tproc_t *e = find(c, pid);
    if (e && e->gen == c->gen) return -1;
    if (e) {
        if (read_stat(c, e) < 0) {
            /* our fd points at a process that is gone; the pid may be another's now */
            stall__kf_close(&e->stat);
            if (open_pid_file(c, &e->stat, pid, "stat") < 0 || read_stat(c, e) < 0) return -1;
        }
        if (e->st.starttime != e->starttime) {
            entry_reset(e);
            e->starttime = e->st.starttime;
        }
    } else {
        e = insert(c, pid);
        if (!e) return -1;
        if (open_pid_file(c, &e->stat, pid, "stat") < 0 || read_stat(c, e) < 0) return -1; /* freed at the end */
        e->starttime = e->st.starttime;
    }
    e->gen = c->gen;
    return 0;
}

/* ------------------------------------------------------- finding children */

static int is_number(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static uint32_t to_u32(const char *s) {
    uint64_t v = 0;
    for (; *s && v <= UINT32_MAX; s++) v = v * 10 + (uint64_t)(*s - '0');
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

static int ensure_kids(stall_tree_collector_t *c, size_t need) {
    if (need <= c->kids_cap) return 0;
    size_t ncap = c->kids_cap ? c->kids_cap : 64;
    while (ncap < need) ncap *= 2;
    uint32_t *k = realloc(c->kids, ncap * sizeof *k);
    if (!k) return -1;
    c->kids = k;
    c->kids_cap = ncap;
    return 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Keeps the children file of thread tid of e open (already open: no-op).
 * Returns its index, or -1. */
static int cf_keep(stall_tree_collector_t *c, tproc_t *e, uint32_t tid) {
    for (uint32_t i = 0; i < e->ncf; i++)
        if (e->cf_tid[i] == tid) return (int)i;
    if (e->ncf == e->capcf) {
        uint32_t ncap = e->capcf ? e->capcf * 2 : 4;
        stall_kfile_t *f = realloc(e->cf, ncap * sizeof *f);
        if (!f) return -1;
        e->cf = f;
        uint32_t *t = realloc(e->cf_tid, ncap * sizeof *t);
        if (!t) return -1;
        e->cf_tid = t;
        e->capcf = ncap;
    }
    char rel[96];
    size_t l = 0;
    rel[0] = '\0';
    if (stall__lx_catu(rel, sizeof rel, &l, e->pid) < 0 || stall__lx_cat(rel, sizeof rel, &l, "/task/") < 0 ||
        stall__lx_catu(rel, sizeof rel, &l, tid) < 0 || stall__lx_cat(rel, sizeof rel, &l, "/children") < 0)
        return -1;
    if (stall__kf_open(&e->cf[e->ncf], c->proc_root, rel) < 0) return -1; /* the thread exited */
    e->cf_tid[e->ncf] = tid;
    return (int)e->ncf++;
}

static void cf_drop(tproc_t *e, uint32_t i) {
    stall__kf_close(&e->cf[i]);
    e->cf[i] = e->cf[e->ncf - 1];
    e->cf_tid[i] = e->cf_tid[e->ncf - 1];
    e->ncf--;
}

/* Reads the kept children file i of e, appending to c->kids[nk..].
 * Returns the new count; a thread that is gone has its file dropped. */
static size_t cf_read(stall_tree_collector_t *c, tproc_t *e, uint32_t *i, size_t nk) {
    long n = rd(c, &e->cf[*i]);
    if (n < 0) {
        cf_drop(e, *i);
        (*i)--;
        return nk;
    }
    if (n > 0 && ensure_kids(c, nk + (size_t)n / 2 + 1) == 0) {
        int k = stall__parse_pid_list(c->buf, (size_t)n, c->kids + nk, c->kids_cap - nk);
        if (k > 0) nk += (size_t)k;
    }
    return nk;
}

/* Lists the threads of e again: keeps open the children files of the main
 * thread and of every thread that has children now, closes the others. */
static void cf_relist(stall_tree_collector_t *c, tproc_t *e) {
    char rel[96], path[PATH_MAX];
    e->listed_threads = e->st.threads;
    e->listed_gen = c->gen;
    if (rel_of(rel, sizeof rel, e->pid, "task") < 0 || stall__lx_join(path, sizeof path, c->proc_root, rel) < 0)
        return;
    DIR *d = opendir(path);
    if (!d) return;
    /* forget the non-main threads; those with children come back below */
    for (uint32_t i = 0; i < e->ncf; i++)
        if (e->cf_tid[i] != e->pid) cf_drop(e, i--);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_number(de->d_name)) continue;
        uint32_t tid = to_u32(de->d_name);
        int i = cf_keep(c, e, tid);
        if (i < 0 || tid == e->pid) continue;
        long n = rd(c, &e->cf[i]);
        int has_kids = 0;
        for (long k = 0; k < n; k++)
            if (c->buf[k] >= '0' && c->buf[k] <= '9') {
                has_kids = 1;
                break;
            }
        if (!has_kids) cf_drop(e, (uint32_t)i);
    }
    closedir(d);
}

/* The children of pid from the children files of its threads: the files of
 * the threads known to fork are re-read each sample; the threads are listed
 * again when their number changed, and every RELIST_EVERY samples. */
static size_t children_from_tasks(stall_tree_collector_t *c, uint32_t pid) {
    tproc_t *e = find(c, pid);
    if (!e) return 0;
    if (e->ncf == 0 || e->listed_threads != e->st.threads || c->gen - e->listed_gen >= RELIST_EVERY)
        cf_relist(c, e);
    size_t nk = 0;
    for (uint32_t i = 0; i < e->ncf; i++) nk = cf_read(c, e, &i, nk);
    return nk;
}

static int cmp_ppid(const void *a, const void *b) {
    const pp_t *x = a, *y = b;
    if (x->ppid != y->ppid) return x->ppid < y->ppid ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* MODE_SCAN: (pid, ppid) of every process of proc_root, sorted by ppid. */
static void scan_all(stall_tree_collector_t *c) {
    c->scan_n = 0;
    DIR *d = opendir(c->proc_root);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_number(de->d_name)) continue;
        uint32_t pid = to_u32(de->d_name);
        char rel[64];
        stall_pid_stat_t st;
        if (!pid || rel_of(rel, sizeof rel, pid, "stat") < 0) continue;
        long n = stall__lx_read_once(c->proc_root, rel, c->buf, c->cap);
        if (n < 0 || stall__parse_pid_stat(c->buf, (size_t)n, &st) < 0) continue;
        if (c->scan_n == c->scan_cap) {
            size_t ncap = c->scan_cap ? c->scan_cap * 2 : 256;
            pp_t *s = realloc(c->scan, ncap * sizeof *s);
            if (!s) break;
            c->scan = s;
            c->scan_cap = ncap;
        }
        c->scan[c->scan_n].pid = pid;
        c->scan[c->scan_n].ppid = st.ppid;
        c->scan_n++;
    }
    closedir(d);
    if (c->scan_n > 1) qsort(c->scan, c->scan_n, sizeof *c->scan, cmp_ppid);
}

static size_t children_from_scan(stall_tree_collector_t *c, uint32_t pid) {
    size_t lo = 0, hi = c->scan_n, nk = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->scan[mid].ppid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < c->scan_n && c->scan[i].ppid == pid; i++) {
        if (c->scan[i].pid == pid) continue;
        if (ensure_kids(c, nk + 1) < 0) break;
        c->kids[nk++] = c->scan[i].pid;
    }
    return nk;
}

static void detect_mode(stall_tree_collector_t *c) {
    char rel[96], path[PATH_MAX];
    struct stat st;
    size_t l = 0;
    rel[0] = '\0';
    if (stall__lx_catu(rel, sizeof rel, &l, c->root_pid) < 0 || stall__lx_cat(rel, sizeof rel, &l, "/task/") < 0 ||
        stall__lx_catu(rel, sizeof rel, &l, c->root_pid) < 0 || stall__lx_cat(rel, sizeof rel, &l, "/children") < 0 ||
        stall__lx_join(path, sizeof path, c->proc_root, rel) < 0)
        return;
    if (stat(path, &st) == 0) {
        c->mode = MODE_CHILDREN;
        return;
    }
    if (rel_of(rel, sizeof rel, c->root_pid, "stat") == 0 && stall__lx_join(path, sizeof path, c->proc_root, rel) == 0 &&
        stat(path, &st) == 0)
        c->mode = MODE_SCAN; /* the root is there, its children file is not: no CONFIG_PROC_CHILDREN */
}

static int push(stall_tree_collector_t *c, uint32_t pid, uint32_t depth) {
    if (c->order_n == c->order_cap) {
        size_t ncap = c->order_cap ? c->order_cap * 2 : 64;
        uint32_t *o = realloc(c->order, ncap * sizeof *o);
        if (!o) return -1;
        c->order = o;
        uint32_t *d = realloc(c->depth, ncap * sizeof *d);
        if (!d) return -1;
        c->depth = d;
        c->order_cap = ncap;
    }
    c->order[c->order_n] = pid;
    c->depth[c->order_n] = depth;
    c->order_n++;
    return 0;
}

/* ------------------------------------------------------------- sampling */

static uint64_t ticks_ns(const stall_tree_collector_t *c, uint64_t ticks) {
    uint64_t hz = (uint64_t)c->clk_tck;
    return ticks / hz * 1000000000ull + ticks % hz * 1000000000ull / hz;
}

/* Opens f on first use; -1 when it cannot be read now. Marks *off when the
 * file cannot be read at all for this process (permission, not built in). */
static long rd_opt(stall_tree_collector_t *c, tproc_t *e, stall_kfile_t *f, int *off, const char *file) {
    if (*off) return -1;
    if (f->fd < 0 && open_pid_file(c, f, e->pid, file) < 0) {
        if (errno == EACCES || errno == EPERM || errno == ENOENT) *off = 1;
        return -1;
    }
    long n = rd(c, f);
    if (n < 0 && (errno == EACCES || errno == EPERM)) {
        stall__kf_close(f);
        *off = 1;
    }
    return n;
}

/* ------------------------------------------------------- thread states */

/* A getdents64 record (linux_dirent64; glibc before 2.30 has no type). */
typedef struct lx_dirent64_t {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
} lx_dirent64_t;

/* Opens dirfd/rel, reads up to cap-1 bytes with one pread and closes it.
 * Returns the length (buf NUL-terminated) or -1 (errno kept). */
static long read_at(int dirfd, const char *rel, char *buf, size_t cap) {
    int fd;
    do
        fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    ssize_t n;
    do
        n = pread(fd, buf, cap - 1, 0);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0) {
        errno = err;
        return -1;
    }
    buf[n] = '\0';
    return (long)n;
}

/* The tids of e's task folder (opened on first use) into c->tids. Returns
 * the count, or -1 (unreadable, or the process is gone). */
static long list_tids(stall_tree_collector_t *c, tproc_t *e) {
    if (e->task_off) return -1;
    if (e->task_fd < 0) {
        char rel[64], path[PATH_MAX];
        if (rel_of(rel, sizeof rel, e->pid, "task") < 0 || stall__lx_join(path, sizeof path, c->proc_root, rel) < 0)
            return -1;
        do
            e->task_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        while (e->task_fd < 0 && errno == EINTR);
        if (e->task_fd < 0) {
            if (errno == EACCES || errno == EPERM) e->task_off = 1;
            return -1;
        }
    }
    if (lseek(e->task_fd, 0, SEEK_SET) < 0) return -1;
    size_t nt = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, e->task_fd, c->dents, sizeof c->dents);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break;
        for (long off = 0; off + (long)offsetof(lx_dirent64_t, name) < n;) {
            const lx_dirent64_t *d = (const lx_dirent64_t *)((const char *)c->dents + off);
            if (d->reclen == 0) break;
            off += d->reclen;
            if (!is_number(d->name)) continue;
            if (nt == c->tids_cap) {
                size_t ncap = c->tids_cap ? c->tids_cap * 2 : 64;
                uint32_t *t = realloc(c->tids, ncap * sizeof *t);
                if (!t) return -1;
                c->tids = t;
                c->tids_cap = ncap;
            }
            c->tids[nt++] = to_u32(d->name);
        }
    }
    return (long)nt;
}

/* System calls that wait on a socket, whatever the fd, and those that wait
 * on their fd (the first argument), which is a socket or not. */
static int is_socket_call(long nr) {
    switch (nr) {
#ifdef SYS_recvfrom
    case SYS_recvfrom:
#endif
#ifdef SYS_recvmsg
    case SYS_recvmsg:
#endif
#ifdef SYS_recvmmsg
    case SYS_recvmmsg:
#endif
#ifdef SYS_sendto
    case SYS_sendto:
#endif
#ifdef SYS_sendmsg
    case SYS_sendmsg:
#endif
#ifdef SYS_sendmmsg
    case SYS_sendmmsg:
#endif
#ifdef SYS_accept
    case SYS_accept:
#endif
#ifdef SYS_accept4
    case SYS_accept4:
#endif
#ifdef SYS_connect
    case SYS_connect:
#endif
        return 1;
    default:
        return 0;
    }
}

static int is_fd_io_call(long nr) {
    switch (nr) {
#ifdef SYS_read
    case SYS_read:
#endif
#ifdef SYS_readv
    case SYS_readv:
#endif
#ifdef SYS_pread64
    case SYS_pread64:
#endif
#ifdef SYS_preadv
    case SYS_preadv:
#endif
#ifdef SYS_preadv2
    case SYS_preadv2:
#endif
#ifdef SYS_write
    case SYS_write:
#endif
#ifdef SYS_writev
    case SYS_writev:
#endif
        return 1;
    default:
        return 0;
    }
}

/* A thread of e in wait_woken: 1 when it waits on a socket, 0 when not (a
 * tty, inotify...), -1 when that cannot be told (syscall unreadable, the
 * thread woke up). */
static int waits_on_socket(const tproc_t *e, uint32_t tid) {
    char rel[64], b[256];
    long nr;
    uint64_t fd;
    if (rel_of(rel, sizeof rel, tid, "syscall") < 0) return -1;
    long n = read_at(e->task_fd, rel, b, sizeof b);
    if (n < 0 || stall__parse_task_syscall(b, (size_t)n, &nr, &fd) < 0) return -1;
    if (is_socket_call(nr)) return 1;
    if (!is_fd_io_call(nr) || fd > INT32_MAX) return 0;
    size_t l = 0;
    rel[0] = '\0';
    if (stall__lx_catu(rel, sizeof rel, &l, tid) < 0 || stall__lx_cat(rel, sizeof rel, &l, "/fd/") < 0 ||
        stall__lx_catu(rel, sizeof rel, &l, fd) < 0)
        return -1;
    ssize_t k = readlinkat(e->task_fd, rel, b, sizeof b - 1);
    if (k < 0) return -1;
    return k >= 7 && memcmp(b, "socket:", 7) == 0;
}

/* What thread tid of e does now (TH_*): its stat, then its wchan when it
 * sleeps. Returns 0, 1 when the thread is gone, -1 when unreadable. */
static int thread_what(const tproc_t *e, uint32_t tid, uint32_t *what, int *settled) {
    char rel[64], b[160];
    char state;
    *settled = 1;
    if (rel_of(rel, sizeof rel, tid, "stat") < 0) return -1;
    long n = read_at(e->task_fd, rel, b, sizeof b);
    if ((n < 0 && (errno == ENOENT || errno == ESRCH)) || n == 0) return 1; /* exited */
    if (n < 0 || stall__parse_task_state(b, (size_t)n, &state) < 0) return -1;
    *what = TH_OTHER;
    if (state == 'R') {
        *what = TH_RUN;
    } else if (state == 'D') {
        *what = TH_DISK;
    } else if (state == 'S') {
        if (rel_of(rel, sizeof rel, tid, "wchan") < 0 || (n = read_at(e->task_fd, rel, b, sizeof b)) < 0) return -1;
        /* "0": asleep by its state but still on the run queue (going to
         * sleep, or just woken): where it waits is unknown yet */
        if (n >= 1 && b[0] == '0' && (n == 1 || b[1] == '\n')) *settled = 0;
        int w = stall__classify_wchan(b, (size_t)n);
        if (w == STALL__WCHAN_NET || (w == STALL__WCHAN_NET_MAYBE && waits_on_socket(e, tid) != 0))
            *what = TH_NET;
        else if (w == STALL__WCHAN_SLEEP)
            *what = TH_SLEEP;
    }
    return 0;
}

/* Counts e's threads by state into e->w_* and sets e->has_wait; clears it
 * when the task folder, a thread's stat or a sleeping thread's wchan cannot
 * be read. A thread gone between the listing and its read is left out. Each
 * thread's schedstat is read first (about a third of the cost of stat and
 * wchan): when its run and run-queue times are those of the last read, the
 * thread has not run since and the last verdict stands. (A thread woken but
 * not yet run is then still seen in its wait, for its run-queue delay.) */
static void read_waits(stall_tree_collector_t *c, tproc_t *e) {
    e->has_wait = 0;
    long nt = list_tids(c, e);
    if (nt <= 0) return;
    if ((size_t)nt > c->thr_cap) {
        thr_t *t = realloc(c->thr, (size_t)nt * sizeof *t);
        if (!t) return;
        c->thr = t;
        c->thr_cap = (size_t)nt;
    }
    uint32_t count[5] = {0}, seen = 0, nthr = 0, j = 0;
    for (long i = 0; i < nt; i++) {
        uint32_t tid = c->tids[i];
        if (e->pid == c->self_pid && tid == c->self_tid) {
            seen++; /* the sampling thread: there, not counted */
            continue;
        }
        char rel[64], b[128];
        thr_t *t = &c->thr[nthr];
        t->tid = tid;
        int sched = rel_of(rel, sizeof rel, tid, "schedstat") == 0;
        long n = sched ? read_at(e->task_fd, rel, b, sizeof b) : -1;
        sched = n >= 0 && stall__parse_schedstat(b, (size_t)n, &t->run_ns, &t->wait_ns) == 0;
        /* the same thread in the last read: usually at the same place */
        const thr_t *old = NULL;
        if (sched && e->nthr) {
            for (uint32_t k = 0; k < e->nthr && !old; k++, j = j + 1 < e->nthr ? j + 1 : 0)
                if (e->thr[j].tid == tid) old = &e->thr[j];
        }
        if (old && old->run_ns == t->run_ns && old->wait_ns == t->wait_ns) {
            t->what = old->what;
        } else {
            int settled;
            int rc = thread_what(e, tid, &t->what, &settled);
            if (rc > 0) continue; /* exited */
            if (rc < 0) return;
            /* a verdict is kept only while the thread does not run, and only
             * a settled one: a thread caught on its way into a wait may not
             * run again for a long time */
            if (!sched || !settled) t->run_ns = t->wait_ns = UINT64_MAX; /* never matches */
        }
        seen++;
        count[t->what]++;
        nthr++;
    }
    if (!seen) return; /* a live process has a thread: none read is not "none" */
    if (nthr > e->capthr) {
        thr_t *t = realloc(e->thr, nthr * sizeof *t);
        if (!t) {
            e->nthr = 0;
            goto counts;
        }
        e->thr = t;
        e->capthr = nthr;
    }
    if (nthr) memcpy(e->thr, c->thr, nthr * sizeof *e->thr);
    e->nthr = nthr;
counts:
    e->has_wait = 1;
    e->w_run = count[TH_RUN];
    e->w_disk = count[TH_DISK];
    e->w_net = count[TH_NET];
    e->w_sleep = count[TH_SLEEP];
}

static void fill(stall_tree_collector_t *c, tproc_t *e, uint32_t depth, uint64_t now_ns, int pss_due,
                 stall_proc_sample_t *o) {
    const stall_pid_stat_t *st = &e->st;
    memset(o, 0, sizeof *o);
    o->pid = e->pid;
    o->ppid = st->ppid;
    o->depth = depth;
    o->state = st->state;
    memcpy(o->comm, st->comm, sizeof o->comm);
    o->comm[sizeof o->comm - 1] = '\0';
    o->starttime = st->starttime;
    o->utime_ns = ticks_ns(c, st->utime);
    o->stime_ns = ticks_ns(c, st->stime);
    o->threads = st->threads;
    o->rss_bytes = st->rss_pages * c->page_size;
    o->minflt = e->minflt;
    o->majflt = e->majflt;
    o->valid = STALL_PROC_STAT;

    long n;
    stall_pid_io_t io;
    if ((n = rd_opt(c, e, &e->io, &e->io_off, "io")) >= 0 && stall__parse_pid_io(c->buf, (size_t)n, &io) == 0) {
        o->valid |= STALL_PROC_IO;
        o->read_bytes = io.read_bytes;
        o->write_bytes = io.write_bytes;
    }
    /* staggered by pid so the status reads spread over the samples */
    if (!e->has_ctx || (c->gen + e->pid) % STATUS_EVERY == 0) {
        if ((n = rd_opt(c, e, &e->status, &e->status_off, "status")) >= 0 &&
            stall__parse_pid_status(c->buf, (size_t)n, &e->ctx_vol, &e->ctx_invol) == 0)
            e->has_ctx = 1;
    }
    if (e->has_ctx) {
        o->valid |= STALL_PROC_CTXT;
        o->vol_ctx_switches = e->ctx_vol;
        o->invol_ctx_switches = e->ctx_invol;
    }
    if ((n = rd_opt(c, e, &e->sched, &e->sched_off, "schedstat")) >= 0 &&
        stall__parse_schedstat(c->buf, (size_t)n, &o->run_ns, &o->runq_wait_ns) == 0)
        o->valid |= STALL_PROC_SCHED;
    /* at once for a new process (a tree's memory must not jump when its
     * workers' PSS first comes in), then when due */
    if (pss_due || !e->pss_tried) {
        char rel[64];
        stall_kfile_t f;
        e->pss_tried = 1;
        e->has_pss = 0;
        if (rel_of(rel, sizeof rel, e->pid, "smaps_rollup") == 0 && stall__kf_open(&f, c->proc_root, rel) == 0) {
            n = rd(c, &f);
            stall__kf_close(&f);
            if (n >= 0 && stall__parse_smaps_rollup(c->buf, (size_t)n, &e->pss_bytes) == 0) {
                e->has_pss = 1;
                e->pss_rss = o->rss_bytes;
            }
        }
    }
    if (e->has_pss) {
        /* between reads: the last PSS moved by the RSS change since (pages a
         * process allocates or frees are its own), so growth shows at once */
        int64_t d = (int64_t)o->rss_bytes - (int64_t)e->pss_rss;
        o->valid |= STALL_PROC_PSS;
        o->pss_bytes = d < 0 && (uint64_t)-d > e->pss_bytes ? 0 : (uint64_t)((int64_t)e->pss_bytes + d);
    }
    /* at once for a new process, then at the cadence (unknown stays unknown
     * in between: a failed read is not retried at every sample) */
    if (!e->wait_tried || (c->gen + e->pid) % c->wait_every == 0) {
        uint64_t t0 = stall__clock_ns(CLOCK_MONOTONIC);
        e->wait_tried = 1;
        read_waits(c, e);
        c->wait_spent_ns += stall__clock_ns(CLOCK_MONOTONIC) - t0;
    }
    if (e->has_wait) {
        o->valid |= STALL_PROC_WAIT;
        o->threads_running = e->w_run;
        o->threads_disk = e->w_disk;
        o->threads_net = e->w_net;
        o->threads_sleep = e->w_sleep;
    }

    uint64_t ticks = st->utime + st->stime;
    if (e->has_prev && now_ns > e->prev_t_ns) {
        double dt_ns = (double)(now_ns - e->prev_t_ns);
        o->valid |= STALL_PROC_RATES;
        uint64_t dticks = ticks > e->prev_ticks ? ticks - e->prev_ticks : 0;
        o->cpu_util = (double)dticks / (double)c->clk_tck / (dt_ns / 1e9);
        uint64_t dsys = st->stime > e->prev_stime ? st->stime - e->prev_stime : 0;
        o->sys_util = (double)dsys / (double)c->clk_tck / (dt_ns / 1e9);
        o->minflt_per_s = (double)(e->minflt > e->prev_minflt ? e->minflt - e->prev_minflt : 0) / (dt_ns / 1e9);
        o->majflt_per_s = (double)(e->majflt > e->prev_majflt ? e->majflt - e->prev_majflt : 0) / (dt_ns / 1e9);
        if ((o->valid & STALL_PROC_IO) && e->prev_io) {
            o->read_bytes_per_s = (double)(o->read_bytes > e->prev_read ? o->read_bytes - e->prev_read : 0) / (dt_ns / 1e9);
            o->write_bytes_per_s =
                (double)(o->write_bytes > e->prev_write ? o->write_bytes - e->prev_write : 0) / (dt_ns / 1e9);
        }
        if ((o->valid & STALL_PROC_SCHED) && e->prev_sched)
            o->runq_wait_share = (double)(o->runq_wait_ns > e->prev_wait ? o->runq_wait_ns - e->prev_wait : 0) / dt_ns;
    }
    e->has_prev = 1;
    e->prev_t_ns = now_ns;
    e->prev_ticks = ticks;
    e->prev_stime = st->stime;
    e->prev_minflt = e->minflt;
    e->prev_majflt = e->majflt;
    e->prev_io = (o->valid & STALL_PROC_IO) != 0;
    e->prev_read = o->read_bytes;
    e->prev_write = o->write_bytes;
    e->prev_sched = (o->valid & STALL_PROC_SCHED) != 0;
    e->prev_wait = o->runq_wait_ns;
}

stall_tree_collector_t *stall__tree_open(const char *proc_root, uint32_t root_pid) {
    stall_tree_collector_t *c = calloc(1, sizeof *c);
    if (!c) goto fail;
    stall__strlcpy(c->proc_root, proc_root && *proc_root ? proc_root : "/proc", sizeof c->proc_root);
    c->root_pid = root_pid ? root_pid : (uint32_t)getpid();
    c->real_proc = strcmp(c->proc_root, "/proc") == 0 || strcmp(c->proc_root, "/proc/") == 0;
    c->wait_every = WAIT_EVERY_MIN;
    c->clk_tck = sysconf(_SC_CLK_TCK);
    if (c->clk_tck <= 0) c->clk_tck = 100;
    long ps = sysconf(_SC_PAGESIZE);
    c->page_size = ps > 0 ? (uint64_t)ps : 4096;
    c->tab_cap = 64;
    c->tab = calloc(c->tab_cap, sizeof *c->tab);
    c->cap = TREE_BUF_INIT;
    c->buf = malloc(c->cap);
    if (!c->tab || !c->buf) goto fail;
    detect_mode(c);
    return c;
fail:
    stall__tree_close(c);
    stall__err("tree collector: out of memory");
    return NULL;
}

size_t stall__tree_sample(stall_tree_collector_t *c, uint64_t now_ns, int pss_due, stall_proc_sample_t *out,
                          size_t cap) {
    if (!c) return 0;
    if (!out) cap = 0;
    if (++c->gen == 0) c->gen = 1;
    if (c->mode == MODE_UNKNOWN) detect_mode(c);
    if (c->mode == MODE_SCAN) scan_all(c);
    c->self_pid = c->self_tid = 0;
    if (c->real_proc) {
        c->self_pid = (uint32_t)getpid();
        c->self_tid = (uint32_t)syscall(SYS_gettid);
    }

    c->order_n = 0;
    if (acquire(c, c->root_pid) == 0) push(c, c->root_pid, 0);
    for (size_t i = 0; i < c->order_n; i++) {
        uint32_t pid = c->order[i], depth = c->depth[i];
        size_t nk = c->mode == MODE_SCAN ? children_from_scan(c, pid) : children_from_tasks(c, pid);
        if (nk > 1) qsort(c->kids, nk, sizeof *c->kids, cmp_u32);
        for (size_t k = 0; k < nk; k++) {
            if (acquire(c, c->kids[k]) < 0) continue;
            if (push(c, c->kids[k], depth + 1) < 0) {
                find(c, c->kids[k])->gen = 0;
                break;
            }
        }
    }

    c->wait_spent_ns = 0;
    for (size_t i = 0; i < c->order_n; i++) {
        stall_proc_sample_t tmp;
        tproc_t *e = find(c, c->order[i]);
        fill(c, e, c->depth[i], now_ns, pss_due, i < cap ? &out[i] : &tmp);
    }
    c->wait_cost_ns = (7 * c->wait_cost_ns + c->wait_spent_ns) / 8;
    if (c->wait_cost_ns > WAIT_BUDGET_NS && c->wait_every < WAIT_EVERY_MAX)
        c->wait_every++;
    else if (c->wait_cost_ns < WAIT_BUDGET_NS / 2 && c->wait_every > WAIT_EVERY_MIN)
        c->wait_every--;

    /* free the entries of processes that left the tree */
    size_t ngone = 0;
    for (size_t i = 0; i < c->tab_cap; i++)
        if (c->tab[i].pid && c->tab[i].gen != c->gen && ensure_kids(c, ngone + 1) == 0) c->kids[ngone++] = c->tab[i].pid;
    for (size_t i = 0; i < ngone; i++) erase(c, c->kids[i]);
    return c->order_n;
}

void stall__tree_close(stall_tree_collector_t *c) {
    if (!c) return;
    for (size_t i = 0; c->tab && i < c->tab_cap; i++)
        if (c->tab[i].pid) entry_close(&c->tab[i]);
    free(c->tab);
    free(c->order);
    free(c->depth);
    free(c->kids);
    free(c->scan);
    free(c->buf);
    free(c->tids);
    free(c->thr);
    free(c);
}
