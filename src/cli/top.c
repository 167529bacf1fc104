/*
 * top.c - `stall top [--interval S] [--once] [PID]`: a live terminal view of a
 * running `stall run` session, or of any process tree.
 *
 * Finding the session: `stall run` exports STALL_SESSION_DIR (and
 * STALL_RUN=1) to the program it starts, so the program and every process
 * below it carry the variable in /proc/<pid>/environ, while `stall run`
 * itself does not (it set the variable after it was exec'd). From the PID
 * given, we walk up while the parent carries the same directory (the topmost
 * one is the program), or, when the PID carries none (a `stall run` process,
 * a shell above it), down breadth-first to the shallowest processes that do.
 * Without a PID the most recently started program of a running `stall run`
 * session is taken. A session found is read through an observer engine
 * (stall_engine_new_observer): it runs beside `stall run`'s own reader and
 * never removes anything; its sampler follows the program's tree. With no
 * session, only the tree of PID is sampled (no spans, no findings).
 *
 * The screen: header (pid, command, uptime), the loop's batches/s and
 * data-wait share over the last refresh interval (from the spans, as the
 * status line of `stall run`), CPU, memory, PSI pressure, GPUs, the current
 * top 3 findings, then one row per process (role, pid, CPU %, RSS, state,
 * threads). Keys: q quits, c/m/p sort by CPU/memory/pid, +/- slower/faster
 * refresh. When the program exits the last screen stays, marked exited,
 * until q. When stdout is not a terminal, or with --once, one plain-text
 * snapshot is printed after one interval.
 *
 * The screen is built as a list of plain lines first (render); curses only
 * clips them to the terminal (draw), so a small or resized terminal shows
 * less, never garbage, and the snapshot mode prints the same lines.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "run.h"
#include "stall.h"

#define MAX_PROCS 512     /* process rows */
#define MAX_LABELS 512    /* process labels seen in the session */
#define MAX_GPUS 8
#define MAX_LINES (40 + MAX_PROCS)
#define LINE_BYTES 512
#define ENVIRON_MAX (4u << 20)

static const char *top_usage =
    "usage: stall top [--interval SECONDS] [--once] [PID]\n"
    "\n"
    "Shows live what a running `stall run` session, or any process tree, is doing:\n"
    "batches/s and the data-wait share of the training loop, the main process and\n"
    "each DataLoader worker (CPU, memory, state, threads), GPUs, CPU/IO/memory\n"
    "pressure and the current findings.\n"
    "\n"
    "  PID               the profiled program, any process of its tree, or the\n"
    "                    `stall run` process; a PID outside any stall session\n"
    "                    shows its process tree only. Default: the most recently\n"
    "                    started running `stall run` session.\n"
    "  --interval S      refresh interval in seconds, 0.1 to 60 (default 1)\n"
    "  --once            print one plain-text snapshot, taken over one interval,\n"
    "                    and exit (what happens too when stdout is not a terminal)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Keys: q quit, c / m / p sort the processes by CPU / memory / pid,\n"
    "+ / - slower / faster refresh. When the program exits, the last screen\n"
    "stays (marked exited) until q.\n";

static volatile sig_atomic_t g_quit = 0;

static void on_quit_signal(int sig) {
    (void)sig;
    g_quit = 1;
}

static int top_usage_error(const char *fmt, const char *arg) {
    return stall__usage_error("stall top", top_usage, fmt, arg);
}

/* ------------------------------------------------------------ /proc */

/* Reads a whole file (at most ENVIRON_MAX bytes) into a malloc'd buffer,
 * NUL-terminated; NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) goto fail;
    for (;;) {
        if (n == cap) {
            if (cap >= ENVIRON_MAX) break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* state, ppid and start time (clock ticks after boot) of a process from
 * /proc/<pid>/stat; 0, or -1 when it is gone or unreadable. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, uint64_t *start) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *buf = slurp(path, NULL);
    if (!buf) return -1;
    char *p = strrchr(buf, ')');
    int rc = -1;
    if (p) {
        char st = 0;
        int pp = 0;
        unsigned long long t = 0;
        /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
         * cmajflt utime stime cutime cstime priority nice threads itreal start */
        if (sscanf(p + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &st, &pp, &t) == 3) {
            if (state) *state = st;
            if (ppid) *ppid = pp;
            if (start) *start = t;
            rc = 0;
        }
    }
    free(buf);
    return rc;
}

/* The session directory in a process's environment: 1 found (dir filled,
 * *is_run = STALL_RUN=1 there too), 0 not there, -1 unreadable. */
static int proc_session(pid_t pid, char *dir, size_t cap, int *is_run) {
    char path[64];
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    char *buf = slurp(path, &len);
    if (!buf) return -1;
    int found = 0, run = 0;
    for (size_t i = 0; i < len;) {
        const char *e = buf + i;
        size_t l = strnlen(e, len - i);
        if (!strncmp(e, "STALL_SESSION_DIR=", 18) && e[18]) {
            snprintf(dir, cap, "%s", e + 18);
            found = 1;
        } else if (!strcmp(e, "STALL_RUN=1")) {
            run = 1;
        }
        i += l + 1;
    }
    free(buf);
    if (is_run) *is_run = run;
    return found;
}

/* Bytes a terminal can show as they are: printable ASCII, others become '?'. */
static void sanitize(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 32 || (unsigned char)*s > 126) *s = '?';
}

/* The command line of a process, arguments joined by spaces ("" if gone). */
static void proc_cmdline(pid_t pid, char *out, size_t cap) {
    char path[64];
    size_t len = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    char *buf = slurp(path, &len);
    out[0] = 0;
    if (!buf) return;
    while (len && buf[len - 1] == 0) len--;
    for (size_t i = 0; i < len; i++)
        if (!buf[i]) buf[i] = ' ';
    buf[len] = 0;
    snprintf(out, cap, "%s", buf);
    free(buf);
    sanitize(out);
}

static double boot_uptime_s(void) {
    FILE *f = fopen("/proc/uptime", "re");
    double up = NAN;
    if (!f) return NAN;
    if (fscanf(f, "%lf", &up) != 1) up = NAN;
    fclose(f);
    return up;
}

/* Every process of the machine: pid, ppid, start time. */
typedef struct pent_t {
    pid_t pid, ppid;
    uint64_t start;
} pent_t;

static pent_t *list_procs(size_t *n) {
    DIR *d = opendir("/proc");
    pent_t *v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d) return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        pent_t p = {.pid = (pid_t)pid};
        if (proc_stat(p.pid, NULL, &p.ppid, &p.start) < 0) continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 512;
            pent_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) break;
            v = nv;
            cap = nc;
        }
        v[(*n)++] = p;
    }
    closedir(d);
    return v;
}

/* ------------------------------------------------------------ state */

typedef struct label_t {
    uint32_t pid;
    char label[32];
} label_t;

typedef struct prev_t {
    uint32_t pid;
    uint64_t starttime, cpu_ns;
} prev_t;

typedef struct row_t {
    uint32_t pid;
    char role[32];
    char comm[32];
    char state;
    uint32_t threads;
    double cpu_pct;      /* NaN: unknown */
    double rss_bytes;    /* NaN: unknown */
} row_t;

/* What a line is, for a terminal too small for all of them: process rows
 * are cut at the bottom ("... N more"), blank lines go first, then the
 * extra lines, so that the figures and a few rows stay. */
enum { LN_KEEP = 0, LN_ROW = 1, LN_BLANK = 2, LN_EXTRA = 3 };

typedef struct line_t {
    char text[LINE_BYTES];
    int attr;  /* curses attributes */
    int kind;  /* LN_* */
} line_t;

typedef struct top_t {
    pid_t given, root;
    uint64_t root_start;
    char cmd[LINE_BYTES];
    char session_dir[PATH_MAX];
    char note[LINE_BYTES];       /* how the view was found, or why there is no session */
    int has_session;
    stall_engine_t *engine;      /* with a session: an observer engine */
    stall_sampler_t *sampler;    /* the engine's, or our own */
    double interval_s;
    int sort;                    /* 'c', 'm' or 'p' */
    int exited;
    double up_s;                 /* uptime of the root at the last refresh (NaN: unknown) */
    /* labels seen by the tap, on the engine's thread */
    pthread_mutex_t lock;
    label_t labels[MAX_LABELS];
    size_t nlabels;
    /* the loop over the last interval */
    int have_base;
    uint64_t base_batches, base_wait_ns, base_t_ns;
    double bps, wait_share;      /* NaN: unknown */
    double machine_busy;         /* the machine's busy share over the interval (NaN: unknown) */
    /* processes */
    prev_t prev[MAX_PROCS];
    size_t nprev;
    uint64_t prev_t_ns;
    row_t rows[MAX_PROCS];
    size_t nrows, ntree;
    stall_sys_t sys;
    int sys_ok;
    stall_gpu_t gpus[MAX_GPUS];
    size_t ngpus;
    /* findings */
    int diag_ok;
    char diag_err[LINE_BYTES];   /* why there is no diagnosis */
    char findings[3][LINE_BYTES];
    int nfindings;
    /* the screen */
    line_t lines[MAX_LINES];
    size_t nlines;
} top_t;

/* The engine's tap: keeps each process's label (set by stall's Python hook:
 * "main", "dl<pid>.<n> worker <i>", ...) for the rows. */
static int label_tap(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    top_t *t = ctx;
    (void)recs;
    (void)n;
    if (!p->label[0]) return 0;
    pthread_mutex_lock(&t->lock);
    size_t i = 0;
    while (i < t->nlabels && t->labels[i].pid != p->pid) i++;
    if (i < t->nlabels || t->nlabels < MAX_LABELS) {
        if (i == t->nlabels) t->nlabels++;
        t->labels[i].pid = p->pid;
        snprintf(t->labels[i].label, sizeof t->labels[i].label, "%s", p->label);
    }
    pthread_mutex_unlock(&t->lock);
    return 0;
}

/* The loader id of a worker's label "dl<pid>.<n> worker <i>" into id, and i;
 * 0 when the label is not a worker's. */
static int worker_label(const char *label, char *id, size_t cap, int *w) {
    char buf[32];
    if (sscanf(label, "dl%31s worker %d", buf, w) != 2) return 0;
    snprintf(id, cap, "%s", buf);
    return 1;
}

/* The role shown for a process: its label, with workers shown as
 * "worker <i>" while the session has one DataLoader with workers, else as
 * "dl<n> worker <i>"; "main" for the root of a session when it has none. */
static void role_of(top_t *t, uint32_t pid, char *out, size_t cap) {
    char label[32] = "", first[32] = "", id[32];
    int w, loaders = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nlabels; i++) {
        if (t->labels[i].pid == pid) memcpy(label, t->labels[i].label, sizeof label);
        if (loaders < 2 && worker_label(t->labels[i].label, id, sizeof id, &w) && strcmp(id, first)) {
            snprintf(first, sizeof first, "%s", id);
            loaders++;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (worker_label(label, id, sizeof id, &w)) {
        const char *dot = strrchr(id, '.');
        if (loaders < 2) snprintf(out, cap, "worker %d", w);
        else snprintf(out, cap, "dl%.12s worker %d", dot ? dot + 1 : id, w);
    } else if (label[0]) {
        snprintf(out, cap, "%s", label);
    } else {
        snprintf(out, cap, "%s", (pid_t)pid != t->root ? "-" : t->has_session ? "main" : "root");
    }
    sanitize(out);
}

/* ------------------------------------------------------------ finding what to watch */

/* Walks up from pid while the parent carries the same session directory;
 * returns the topmost process that carries it. */
static pid_t session_top(pid_t pid, const char *dir) {
    char other[PATH_MAX];
    for (int guard = 0; guard < 4096; guard++) {
        pid_t pp;
        if (proc_stat(pid, NULL, &pp, NULL) < 0 || pp <= 1) break;
        if (proc_session(pp, other, sizeof other, NULL) != 1 || strcmp(other, dir)) break;
        pid = pp;
    }
    return pid;
}

/* The program to follow for a process carrying the session: the topmost
 * carrier under `stall run`; in library mode (no STALL_RUN=1) the process
 * that created the session is the parent of the topmost carrier. */
static pid_t session_root(pid_t top, int is_run) {
    pid_t pp;
    if (is_run || proc_stat(top, NULL, &pp, NULL) < 0 || pp <= 1) return top;
    return pp;
}

/* Fills t->root, t->session_dir and t->note for the PID given. */
static void find_session(top_t *t) {
    char dir[PATH_MAX];
    int is_run = 0;
    t->root = t->given;
    if (proc_session(t->given, dir, sizeof dir, &is_run) == 1) {
        pid_t top = session_top(t->given, dir);
        t->root = session_root(top, is_run);
        snprintf(t->session_dir, sizeof t->session_dir, "%s", dir);
        t->has_session = 1;
        if (t->root != t->given)
            snprintf(t->note, sizeof t->note, "pid %d belongs to the session of pid %d", (int)t->given,
                     (int)t->root);
        return;
    }
    /* down: the shallowest descendants carrying a session (the earliest
     * started wins: `stall run` also adopts orphaned workers) */
    size_t n = 0;
    pent_t *all = list_procs(&n);
    pid_t *level = malloc((n + 1) * sizeof *level), *next = malloc((n + 1) * sizeof *next);
    size_t nl = 1;
    if (!all || !level || !next) goto out;
    level[0] = t->given;
    for (int depth = 0; depth < 64 && nl; depth++) {
        size_t nn = 0;
        pid_t best = 0;
        uint64_t best_start = UINT64_MAX;
        int best_run = 0;
        char best_dir[PATH_MAX] = "";
        for (size_t i = 0; i < n; i++) {
            int child = 0;
            for (size_t k = 0; k < nl && !child; k++) child = all[i].ppid == level[k];
            if (!child) continue;
            next[nn++] = all[i].pid;
            int run = 0;
            if (proc_session(all[i].pid, dir, sizeof dir, &run) == 1 && all[i].start < best_start) {
                best = all[i].pid;
                best_start = all[i].start;
                best_run = run;
                snprintf(best_dir, sizeof best_dir, "%s", dir);
            }
        }
        if (best) {
            t->root = session_root(best, best_run);
            snprintf(t->session_dir, sizeof t->session_dir, "%s", best_dir);
            t->has_session = 1;
            if (t->root != t->given)
                snprintf(t->note, sizeof t->note, "program pid %d, found below pid %d", (int)t->root,
                         (int)t->given);
            goto out;
        }
        pid_t *sw = level;
        level = next;
        next = sw;
        nl = nn;
    }
    snprintf(t->note, sizeof t->note, "no stall session in or below pid %d: process tree only", (int)t->given);
out:
    free(all);
    free(level);
    free(next);
}

/* With no PID: the most recently started program of a running `stall run`
 * session (carrying STALL_RUN=1, its parent not carrying the same
 * directory). 0 when there is none. */
static pid_t latest_session_program(void) {
    size_t n = 0;
    pent_t *all = list_procs(&n);
    pid_t best = 0, me = getpid();
    uint64_t best_start = 0;
    char dir[PATH_MAX], pdir[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int run = 0;
        if (all[i].pid == me || proc_session(all[i].pid, dir, sizeof dir, &run) != 1 || !run) continue;
        if (all[i].ppid > 1 && proc_session(all[i].ppid, pdir, sizeof pdir, NULL) == 1 && !strcmp(dir, pdir))
            continue; /* a worker: its parent carries the session too */
        struct stat st;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) continue; /* ended */
        if (!best || all[i].start > best_start) {
            best = all[i].pid;
            best_start = all[i].start;
        }
    }
    free(all);
    return best;
}

/* ------------------------------------------------------------ refresh */

static void update_loop(top_t *t) {
    uint64_t batches, wait_ns, now = stall_now_ns();
    stall_engine_drain(t->engine);
    stall__loop_totals(stall_engine_agg(t->engine), &batches, &wait_ns);
    if (t->have_base && now > t->base_t_ns) {
        double dt = (double)(now - t->base_t_ns) / 1e9;
        t->bps = batches >= t->base_batches ? (double)(batches - t->base_batches) / dt : NAN;
        t->wait_share = wait_ns >= t->base_wait_ns ? fmin(1.0, (double)(wait_ns - t->base_wait_ns) / 1e9 / dt) : NAN;
    }
    t->have_base = 1;
    t->base_batches = batches;
    t->base_wait_ns = wait_ns;
    t->base_t_ns = now;
}

static void update_findings(top_t *t) {
    stall_diagnosis_t *d = stall_engine_diagnose(t->engine, 0, NULL);
    t->diag_ok = d != NULL;
    t->nfindings = 0;
    if (!d) {
        snprintf(t->diag_err, sizeof t->diag_err, "%s", stall_last_error());
        sanitize(t->diag_err);
        return;
    }
    int n = stall_diagnosis_finding_count(d);
    for (int i = 0; i < n && i < 3; i++) {
        const stall_finding_t *f = stall_diagnosis_finding(d, i);
        if (!f) break;
        snprintf(t->findings[t->nfindings], LINE_BYTES, "%d. %s %.0f%%: %s", i + 1, stall_finding_type(f),
                 100 * stall_finding_severity(f), stall_finding_summary(f));
        sanitize(t->findings[t->nfindings]);
        t->nfindings++;
    }
    stall_diagnosis_free(d);
}

/* Mean of a metric's samples taken since since_ns (NaN when none is known). */
static double series_mean(stall_sampler_t *s, int metric, uint64_t since_ns) {
    enum { CAP = 1024 };
    static stall_point_t pts[CAP];
    ssize_t n = stall_sampler_series(s, metric, pts, CAP);
    double sum = 0, cnt = 0;
    for (ssize_t i = 0; i < n && i < CAP; i++) {
        if (pts[i].t_ns < since_ns || !pts[i].n || !isfinite(pts[i].avg)) continue;
        sum += pts[i].avg * pts[i].n;
        cnt += pts[i].n;
    }
    return cnt ? sum / cnt : NAN;
}

/* The machine's busy share (user + system + steal) since since_ns. */
static double machine_busy(stall_sampler_t *s, uint64_t since_ns) {
    double u = series_mean(s, STALL_M_CPU_USER, since_ns), y = series_mean(s, STALL_M_CPU_SYSTEM, since_ns);
    double st = series_mean(s, STALL_M_CPU_STEAL, since_ns);
    return u + y + (isfinite(st) ? st : 0);
}

static void update_procs(top_t *t) {
    static stall_proc_sample_t ps[MAX_PROCS];
    static prev_t cur[MAX_PROCS];
    size_t n = stall_sampler_procs(t->sampler, ps, MAX_PROCS);
    t->ntree = n;
    if (n > MAX_PROCS) n = MAX_PROCS;
    t->sys_ok = stall_sampler_latest(t->sampler, &t->sys) == 0;
    uint64_t now = t->sys_ok ? t->sys.t_ns : stall_now_ns();
    double dt = t->prev_t_ns && now > t->prev_t_ns ? (double)(now - t->prev_t_ns) : 0;
    t->machine_busy = machine_busy(t->sampler, t->prev_t_ns ? t->prev_t_ns + 1 : 0);
    if (!isfinite(t->machine_busy) && t->sys_ok && (t->sys.valid & STALL_SYS_CPU) && (t->sys.valid & STALL_SYS_RATES))
        t->machine_busy = 1 - t->sys.cpu_idle - t->sys.cpu_iowait; /* no sample since the last refresh */
    for (size_t i = 0; i < n; i++) {
        const stall_proc_sample_t *p = &ps[i];
        row_t *r = &t->rows[i];
        memset(r, 0, sizeof *r);
        r->pid = p->pid;
        snprintf(r->comm, sizeof r->comm, "%s", p->comm);
        sanitize(r->comm);
        role_of(t, p->pid, r->role, sizeof r->role);
        int stat = (p->valid & STALL_PROC_STAT) != 0;
        r->state = stat ? p->state : '?';
        r->threads = stat ? p->threads : 0;
        r->rss_bytes = stat ? (double)p->rss_bytes : NAN;
        r->cpu_pct = NAN;
        uint64_t cpu = p->utime_ns + p->stime_ns;
        cur[i] = (prev_t){p->pid, p->starttime, cpu};
        /* over the refresh interval; the sampler's own (last sample) when new
         * or when no sample was taken since the last refresh */
        for (size_t j = 0; j < t->nprev && stat && dt > 0; j++) {
            if (t->prev[j].pid != p->pid || t->prev[j].starttime != p->starttime) continue;
            if (cpu >= t->prev[j].cpu_ns) r->cpu_pct = 100.0 * (double)(cpu - t->prev[j].cpu_ns) / dt;
            break;
        }
        if (!isfinite(r->cpu_pct) && (p->valid & STALL_PROC_RATES)) r->cpu_pct = 100.0 * p->cpu_util;
    }
    t->nrows = n;
    if (!t->prev_t_ns || dt > 0) { /* a new sample: the base of the next interval */
        memcpy(t->prev, cur, n * sizeof *cur);
        t->nprev = n;
        t->prev_t_ns = now;
    }
    t->ngpus = stall_sampler_gpus(t->sampler, t->gpus, MAX_GPUS);
    if (t->ngpus > MAX_GPUS) t->ngpus = MAX_GPUS;
}

/* 1 when the root process is gone (or a zombie, or its pid reused). */
static int root_gone(top_t *t) {
    char st;
    uint64_t start;
    if (proc_stat(t->root, &st, NULL, &start) < 0) return 1;
    return st == 'Z' || st == 'X' || start != t->root_start;
}

static void refresh_data(top_t *t) {
    if (t->exited) return;
    if (root_gone(t)) { /* keep the last screen */
        t->exited = 1;
        if (t->engine) stall_engine_stop(t->engine);
        else stall_sampler_stop(t->sampler);
        return;
    }
    double up = boot_uptime_s();
    long tck = sysconf(_SC_CLK_TCK);
    t->up_s = isfinite(up) && tck > 0 ? up - (double)t->root_start / (double)tck : NAN;
    if (t->engine) {
        update_loop(t);
        update_findings(t);
    }
    update_procs(t);
}

/* ------------------------------------------------------------ rendering */

static int cmp_rows_sort = 'c';

static int cmp_rows(const void *a, const void *b) {
    const row_t *x = a, *y = b;
    if (cmp_rows_sort == 'p') return x->pid < y->pid ? -1 : x->pid > y->pid;
    double u = cmp_rows_sort == 'm' ? x->rss_bytes : x->cpu_pct;
    double v = cmp_rows_sort == 'm' ? y->rss_bytes : y->cpu_pct;
    if (isnan(u)) u = -1;
    if (isnan(v)) v = -1;
    if (u != v) return u < v ? 1 : -1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static line_t *add_line(top_t *t, int attr, int kind, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static line_t *add_line(top_t *t, int attr, int kind, const char *fmt, ...) {
    if (t->nlines >= MAX_LINES) return NULL;
    line_t *l = &t->lines[t->nlines++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    l->attr = attr;
    l->kind = kind;
    return l;
}

static void fmt_pct(char *out, size_t cap, int known, double v) {
    if (known && isfinite(v)) snprintf(out, cap, "%.1f%%", v);
    else snprintf(out, cap, "n/a");
}

static const char *sort_name(int s) { return s == 'm' ? "mem" : s == 'p' ? "pid" : "cpu"; }

/* Builds the screen's lines from the last refresh. */
static void render(top_t *t) {
    t->nlines = 0;
    char up[32] = "?";
    if (isfinite(t->up_s) && t->up_s >= 0) {
        long s = (long)t->up_s;
        snprintf(up, sizeof up, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    }
    add_line(t, A_BOLD, 0, "stall top - pid %d  up %s  refresh %.1fs  %s", (int)t->root, up, t->interval_s,
             t->exited ? "EXITED" : "running");
    add_line(t, 0, LN_EXTRA, "command: %s", t->cmd[0] ? t->cmd : "?");
    if (t->has_session)
        add_line(t, 0, LN_EXTRA, "session: %s%s%s%s", t->session_dir, t->note[0] ? "  (" : "", t->note,
                 t->note[0] ? ")" : "");
    else
        add_line(t, 0, LN_EXTRA, "session: none (%s)", t->note);
    if (!t->engine) {
        add_line(t, 0, 0, "loop: n/a (no stall session: run the program under `stall run`)");
    } else if (!isfinite(t->bps)) {
        add_line(t, 0, 0, "loop: measuring... batches/s and data wait after one interval");
    } else {
        char w[16];
        fmt_pct(w, sizeof w, 1, 100 * t->wait_share);
        add_line(t, 0, 0, "loop: %.1f batches/s  data wait %s  (last %.1fs)", t->bps, w, t->interval_s);
    }
    const stall_sys_t *y = &t->sys;
    if (t->sys_ok) {
        double tree = 0;
        int any = 0;
        for (size_t i = 0; i < t->nrows; i++)
            if (isfinite(t->rows[i].cpu_pct)) {
                tree += t->rows[i].cpu_pct;
                any = 1;
            }
        char tc[16], busy[16];
        fmt_pct(tc, sizeof tc, any, tree);
        fmt_pct(busy, sizeof busy, 1, 100 * t->machine_busy);
        char mem[64] = "mem n/a";
        if (y->valid & STALL_SYS_MEM)
            snprintf(mem, sizeof mem, "mem %.1f GiB free of %.1f", y->mem_usable_available_bytes / 1073741824.0,
                     y->mem_total_bytes / 1073741824.0);
        add_line(t, 0, 0, "cpu: tree %s of %.1f usable cores, machine %s busy  %s", tc, y->usable_cores, busy, mem);
        char pc[16], pi[16], pm[16];
        fmt_pct(pc, sizeof pc, (y->valid & STALL_SYS_PSI_CPU) != 0, y->psi_cpu_some_avg10);
        fmt_pct(pi, sizeof pi, (y->valid & STALL_SYS_PSI_IO) != 0, y->psi_io_some_avg10);
        fmt_pct(pm, sizeof pm, (y->valid & STALL_SYS_PSI_MEM) != 0, y->psi_mem_some_avg10);
        add_line(t, 0, LN_EXTRA, "pressure (some, avg10): cpu %s  io %s  mem %s", pc, pi, pm);
    } else {
        add_line(t, 0, 0, "cpu: sampling...");
    }
    for (size_t i = 0; i < t->ngpus; i++) {
        const stall_gpu_t *g = &t->gpus[i];
        char u[16], name[64];
        fmt_pct(u, sizeof u, (g->valid & STALL_GPU_UTIL) != 0, g->util_sm_pct);
        snprintf(name, sizeof name, "%s", g->name);
        sanitize(name);
        if (g->valid & STALL_GPU_MEM)
            add_line(t, 0, 0, "gpu %u %s: util %s  mem %.1f / %.1f GiB", g->index, name, u,
                     g->mem_used_bytes / 1073741824.0, g->mem_total_bytes / 1073741824.0);
        else
            add_line(t, 0, 0, "gpu %u %s: util %s  mem n/a", g->index, name, u);
    }
    add_line(t, 0, LN_BLANK, "%s", "");
    if (!t->engine) add_line(t, A_BOLD, 0, "findings: n/a (no stall session)");
    else if (!t->diag_ok) add_line(t, A_BOLD, 0, "findings: n/a (%s)", t->diag_err);
    else if (!t->nfindings) add_line(t, A_BOLD, 0, "findings: none so far");
    else {
        add_line(t, A_BOLD, 0, "findings:");
        for (int i = 0; i < t->nfindings; i++) add_line(t, 0, i ? LN_EXTRA : LN_KEEP, "  %s", t->findings[i]);
    }
    add_line(t, 0, LN_BLANK, "%s", "");
    add_line(t, A_BOLD, 0, "processes: %zu  sort: %s", t->ntree, sort_name(t->sort));
    /* the sort column in brackets */
    add_line(t, A_REVERSE, 0, "%-14s %8s %7s %9s %1s %4s %s", "ROLE", t->sort == 'p' ? "[PID]" : "PID",
             t->sort == 'c' ? "[CPU%]" : "CPU%", t->sort == 'm' ? "[RSS MiB]" : "RSS MiB", "S", "THR", "COMMAND");
    row_t *rows = malloc(t->nrows * sizeof *rows + 1);
    if (!rows) return;
    memcpy(rows, t->rows, t->nrows * sizeof *rows);
    cmp_rows_sort = t->sort;
    qsort(rows, t->nrows, sizeof *rows, cmp_rows);
    for (size_t i = 0; i < t->nrows; i++) {
        const row_t *r = &rows[i];
        char cpu[16], rss[16];
        if (isfinite(r->cpu_pct)) snprintf(cpu, sizeof cpu, "%.1f", r->cpu_pct);
        else snprintf(cpu, sizeof cpu, "-");
        if (isfinite(r->rss_bytes)) snprintf(rss, sizeof rss, "%.1f", r->rss_bytes / 1048576.0);
        else snprintf(rss, sizeof rss, "-");
        add_line(t, 0, LN_ROW, "%-14.14s %8u %7s %9s %c %4u %s", r->role, r->pid, cpu, rss, r->state ? r->state : '?',
                 r->threads, r->comm);
    }
    free(rows);
}

/* Writes text at row y, clipped to the width (the bottom-right cell is left
 * alone: writing it would scroll some terminals). */
static void put(int y, int h, int w, const char *text, int attr) {
    int n = w - (y == h - 1 ? 1 : 0);
    if (y < 0 || y >= h || n <= 0) return;
    if (attr) attron(attr);
    mvaddnstr(y, 0, text, n);
    if (attr == A_REVERSE) /* a full-width bar */
        for (int x = (int)strlen(text); x < n; x++) mvaddch(y, x, ' ');
    if (attr) attroff(attr);
}

static void draw(top_t *t) {
    int h, w;
    getmaxyx(stdscr, h, w);
    erase();
    if (h <= 0 || w <= 0) {
        refresh();
        return;
    }
    int body = h > 2 ? h - 1 : h; /* the last row is the key line */
    /* leave out blank lines, then the extra ones, until 3 rows fit */
    size_t fixed[4] = {0}, rows = 0;
    for (size_t i = 0; i < t->nlines; i++) {
        if (t->lines[i].kind == LN_ROW) rows++;
        else fixed[t->lines[i].kind]++;
    }
    size_t want = fixed[LN_KEEP] + (rows < 3 ? rows : 3);
    int drop_blank = want + fixed[LN_EXTRA] + fixed[LN_BLANK] > (size_t)body;
    int drop_extra = want + fixed[LN_EXTRA] > (size_t)body;
    int y = 0;
    for (size_t i = 0; i < t->nlines && y < body; i++) {
        const line_t *l = &t->lines[i];
        if ((l->kind == LN_BLANK && drop_blank) || (l->kind == LN_EXTRA && drop_extra)) continue;
        if (l->kind == LN_ROW && y == body - 1 && i + 1 < t->nlines) {
            char more[64];
            snprintf(more, sizeof more, "  ... %zu more", t->nlines - i);
            put(y, h, w, more, 0);
            break;
        }
        put(y, h, w, l->text, l->attr);
        y++;
    }
    if (h > 2) {
        char keys[LINE_BYTES];
        if (t->exited)
            snprintf(keys, sizeof keys, "program exited: last screen kept | q quit  c/m/p sort (%s)",
                     sort_name(t->sort));
        else
            snprintf(keys, sizeof keys, "q quit  c/m/p sort (%s)  +/- refresh (%.1fs)", sort_name(t->sort),
                     t->interval_s);
        put(h - 1, h, w, keys, A_REVERSE);
    }
    refresh();
}

/* ------------------------------------------------------------ command */

static const double steps[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60};
#define NSTEPS (sizeof steps / sizeof steps[0])

static double step_interval(double cur, int up) {
    if (up) {
        for (size_t i = 0; i < NSTEPS; i++)
            if (steps[i] > cur + 1e-9) return steps[i];
        return steps[NSTEPS - 1];
    }
    for (size_t i = NSTEPS; i-- > 0;)
        if (steps[i] < cur - 1e-9) return steps[i];
    return steps[0];
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!g_quit && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static double mono_s(void) { return (double)stall_now_ns() / 1e9; }

static int run_curses(top_t *t) {
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        fprintf(stderr, "stall top: cannot drive this terminal (TERM=%s); use --once for a snapshot\n",
                getenv("TERM") ? getenv("TERM") : "");
        return 1;
    }
    set_term(scr);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    double next = mono_s() + (t->interval_s < 0.5 ? t->interval_s : 0.5); /* a first figure soon */
    render(t);
    draw(t);
    while (!g_quit) {
        double left = next - mono_s();
        timeout(left > 0 ? (int)(left * 1000) + 1 : 0);
        int ch = getch();
        if (g_quit) break;
        int redraw = 0;
        switch (ch) {
        case 'q':
        case 'Q':
            g_quit = 1;
            break;
        case 'c':
        case 'm':
        case 'p':
            t->sort = ch;
            redraw = 1;
            break;
        case 'C':
        case 'M':
        case 'P':
            t->sort = tolower(ch);
            redraw = 1;
            break;
        case '+':
        case '=':
            t->interval_s = step_interval(t->interval_s, 1);
            next = mono_s() + t->interval_s;
            redraw = 1;
            break;
        case '-':
        case '_':
            t->interval_s = step_interval(t->interval_s, 0);
            next = mono_s() + t->interval_s;
            redraw = 1;
            break;
        case KEY_RESIZE:
        case 12: /* ^L */
            clearok(curscr, TRUE);
            redraw = 1;
            break;
        default:
            break;
        }
        if (g_quit) break;
        if (mono_s() >= next) {
            refresh_data(t);
            next += t->interval_s;
            if (next <= mono_s()) next = mono_s() + t->interval_s;
            redraw = 1;
        }
        if (redraw) {
            render(t);
            draw(t);
        }
    }
    endwin();
    delscreen(scr);
    return 0;
}

static int run_once(top_t *t) {
    sleep_s(t->interval_s < 0.5 ? t->interval_s : 0.5); /* the first rates */
    refresh_data(t);
    sleep_s(t->interval_s);
    refresh_data(t);
    render(t);
    for (size_t i = 0; i < t->nlines; i++) printf("%s\n", t->lines[i].text);
    fflush(stdout);
    return 0;
}

int stall__cmd_top(int argc, char **argv) {
    static top_t top;
    top_t *t = &top;
    memset(t, 0, sizeof *t);
    t->interval_s = 1.0;
    t->sort = 'c';
    t->bps = t->wait_share = t->up_s = NAN;
    int once = 0;
    const char *pid_arg = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(top_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--once")) {
            once = 1;
            continue;
        }
        if (!strncmp(a, "--interval", 10) && (a[10] == 0 || a[10] == '=')) {
            const char *v = a[10] == '=' ? a + 11 : i + 1 < argc ? argv[++i] : NULL;
            if (!v) return top_usage_error("--interval needs a value%s", "");
            char *end;
            double s = strtod(v, &end);
            if (end == v || *end || !isfinite(s) || s < 0.1 || s > 60)
                return top_usage_error("--interval must be seconds between 0.1 and 60, not '%s'", v);
            t->interval_s = s;
            continue;
        }
        if (a[0] == '-') return top_usage_error("unknown option '%s'", a);
        if (pid_arg) return top_usage_error("more than one PID given ('%s')", a);
        pid_arg = a;
    }
    if (pid_arg) {
        char *end;
        long pid = strtol(pid_arg, &end, 10);
        if (end == pid_arg || *end || pid <= 0 || pid > INT_MAX)
            return top_usage_error("PID must be a positive integer, not '%s'", pid_arg);
        t->given = (pid_t)pid;
        if (proc_stat(t->given, NULL, NULL, NULL) < 0) {
            fprintf(stderr, "stall top: no process with pid %ld\n", pid);
            return 2;
        }
        find_session(t);
    } else {
        t->given = latest_session_program();
        if (!t->given)
            return top_usage_error("no running `stall run` session was found; give the PID to watch%s", "");
        find_session(t);
    }
    char st;
    if (proc_stat(t->root, &st, NULL, &t->root_start) < 0) {
        fprintf(stderr, "stall top: process %d exited\n", (int)t->root);
        return 1;
    }
    proc_cmdline(t->root, t->cmd, sizeof t->cmd);
    pthread_mutex_init(&t->lock, NULL);

    /* the engine's and the sampler's threads inherit a mask without the
     * signals this thread waits for (curses' SIGWINCH among them) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit_signal;
    sigemptyset(&sa.sa_mask);
    int quit_sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t k = 0; k < sizeof quit_sigs / sizeof quit_sigs[0]; k++) sigaction(quit_sigs[k], &sa, NULL);
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    for (size_t k = 0; k < sizeof quit_sigs / sizeof quit_sigs[0]; k++) sigaddset(&mask, quit_sigs[k]);
    pthread_sigmask(SIG_BLOCK, &mask, &old);

    stall_sampler_options_t so;
    memset(&so, 0, sizeof so);
    so.root_pid = (uint32_t)t->root;
    int rc = 1;
    if (t->has_session) {
        t->engine = stall_engine_new_observer(t->session_dir, &so, 0, 0);
        if (!t->engine) {
            snprintf(t->note, sizeof t->note, "session %.200s unreadable: %.200s", t->session_dir,
                     stall_last_error());
            sanitize(t->note);
            t->has_session = 0;
        }
    }
    if (t->engine) {
        t->sampler = stall_engine_sampler(t->engine);
        stall_engine_set_tap(t->engine, label_tap, t);
        stall_engine_drain(t->engine); /* what the rings still hold: labels, and the base of the rates */
        update_loop(t);
        if (stall_engine_start(t->engine) < 0) {
            fprintf(stderr, "stall top: %s\n", stall_last_error());
            goto out;
        }
    } else {
        t->sampler = stall_sampler_new(&so);
        if (!t->sampler || stall_sampler_start(t->sampler) < 0) {
            fprintf(stderr, "stall top: %s\n", stall_last_error());
            goto out;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    rc = once || !isatty(1) ? run_once(t) : run_curses(t);
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (t->engine) stall_engine_free(t->engine, 0);
    else stall_sampler_free(t->sampler);
    pthread_mutex_destroy(&t->lock);
    return rc;
}
